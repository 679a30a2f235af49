package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
	stsql "github.com/stewardhq/steward/sql"
)

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("steward serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := registerConfigFlags(fs)
	fs.String("addr", "", "listen address HOST:PORT; env STEWARD_ADDR; default 127.0.0.1:8080 (port 0 picks a free port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(fs, *configPath)
	if err != nil {
		fmt.Fprintln(stderr, "steward serve:", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	a, err := openApp(ctx, cfg, log, true)
	if err != nil {
		printError(stderr, "steward serve", err)
		return 1
	}
	defer a.Close()

	srv := stewardhttp.NewServer(a.svc, stewardhttp.Options{Logger: log, Ready: a.ready, TrustProxy: cfg.TrustProxy, Registry: a.metricsRegistry()})
	srv.SetRequestService(a.requests)
	srv.SetRecipientFeatures(a.rec.http())
	srv.SetLinkOptions(stewardhttp.LinkOptions{PublicURL: cfg.PublicURL})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintln(stderr, "steward serve:", err)
		return 1
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { a.outbox.Run(workerCtx); close(done) }()
	jobsDone := a.startRequestJobs(workerCtx)
	maintDone := a.startMaintenance(workerCtx)

	url := "http://" + ln.Addr().String()
	if a.keyCreated {
		fmt.Fprintf(stderr, "\n%s\n  WARNING: generated a DEVELOPMENT key file at %s (mode 0600).\n  It protects every subject's data key. Production needs its own key file,\n  kept apart from the databases and backed up separately (doc/operations.md).\n%s\n\n",
			strings.Repeat("!", 78), cfg.KeyFile, strings.Repeat("!", 78))
	}
	store := "SQLite in " + cfg.Data + " (steward.db; data keys apart in keys.db)"
	if a.store.Dialect() == stsql.Postgres {
		store = "PostgreSQL (data keys in a database of their own)"
	}
	fmt.Fprintf(stdout, "Steward is listening on %s\n  API:            %s/v1 (OpenAPI document: %s/v1/openapi.json)\n  Declaration:    %s (version %s)\n  Storage:        %s\n  One-time codes: development message sink %s (one JSON object per line)\n",
		url, url, url, declName(cfg.Declaration), a.decl.Version, store, cfg.DevSink)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	stopWorker()
	<-done
	<-jobsDone
	<-maintDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "steward serve:", err)
		return 1
	}
	return 0
}

func declName(path string) string {
	if path == "" {
		return "embedded default"
	}
	return path
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("steward migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := registerConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(fs, *configPath)
	if err != nil {
		fmt.Fprintln(stderr, "steward migrate:", err)
		return 2
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, cfg.LogLevel), false)
	if err != nil {
		printError(stderr, "steward migrate", err)
		return 1
	}
	a.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return 0
}

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("steward config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := registerConfigFlags(fs)
	fs.String("addr", "", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(fs, *configPath)
	if err != nil {
		fmt.Fprintln(stderr, "steward config:", err)
		return 2
	}
	fmt.Fprint(stdout, cfg.Redacted())
	return 0
}

// startMaintenance runs, every MaintenanceInterval, what the declaration's
// retention rules and legal holds need without anyone asking: fields past their
// retention are deleted (policy §8), erasures whose key destruction failed are
// finished (P20), and holds past their end are released.
func (a *app) startMaintenance(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.cfg.MaintenanceInterval)
		defer t.Stop()
		jctx := steward.SystemContext(ctx, "maintenance")
		for {
			if rep, err := a.svc.RunRetention(jctx); err != nil && ctx.Err() == nil {
				a.log.Error("retention", "err", err)
			} else if err == nil {
				a.log.Info("retention run", "report", rep)
			}
			if n, err := a.svc.FinishErasures(jctx); err != nil && ctx.Err() == nil {
				a.log.Error("finish erasures: data keys of cancelled subjects not destroyed yet", "finished", n, "err", err)
			} else if n > 0 {
				a.log.Info("erasures finished: data keys of cancelled subjects destroyed", "count", n)
			}
			if n, err := a.rec.holds.ReleaseExpired(jctx); err != nil && ctx.Err() == nil {
				a.log.Error("release expired holds", "err", err)
			} else if n > 0 {
				a.log.Info("expired legal holds released", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done
}
