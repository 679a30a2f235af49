package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
)

// TestRunRetention stores a location written 91 days ago and one written now, runs
// `steward retention run` and checks only the old one went, with its audit entry.
func TestRunRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, _, err := keyring.LoadOrCreateKeyFile(filepath.Join(dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Data = dir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	old, fresh := steward.NewID(), steward.NewID()
	err = a.store.Write(ctx, func(tx steward.Tx) error {
		for id, at := range map[string]time.Time{old: now.Add(-91 * 24 * time.Hour), fresh: now} {
			if err := tx.CreateSubject(ctx, &steward.Subject{ID: id, Status: steward.SubjectActive, Region: "cn", KeyID: "k", CreatedAt: at}); err != nil {
				return err
			}
			// Retention goes by the time written; the value is not opened.
			if err := tx.PutFields(ctx, []steward.SealedField{{SubjectID: id, Field: "location", Value: []byte("sealed"), UpdatedAt: at}}); err != nil {
				return err
			}
		}
		return nil
	})
	a.Close()
	if err != nil {
		t.Fatal(err)
	}

	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"retention"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := cli("run", "--json", "--data", dir)
	var rep steward.RetentionReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("retention run: %d %s %s", code, out, errs)
	}
	if len(rep.Fields) != 2 || rep.Fields[0].Field != "location" || rep.Fields[0].Items != 1 || rep.Fields[0].Subjects != 1 ||
		rep.Fields[1].Field != "link_clicks" || rep.Fields[1].Items != 0 {
		t.Fatalf("report = %s", out)
	}
	code, out, _ = cli("run", "--data", dir)
	if code != 0 || !strings.Contains(out, "location: kept 90 days; deleted 0 items of 0 subjects older than ") {
		t.Fatalf("second run: %d %s", code, out)
	}
	if code, _, _ := cli("purge"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d, want 2", code)
	}

	a, err = openApp(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.store.Read(ctx, func(tx steward.Tx) error {
		for id, want := range map[string]int{old: 0, fresh: 1} {
			f, err := tx.GetFields(ctx, id, []string{"location"})
			if err != nil {
				return err
			}
			if len(f) != want {
				t.Errorf("subject %s: %d locations, want %d", id, len(f), want)
			}
		}
		audit, err := tx.AuditBySubject(ctx, old)
		if err != nil {
			return err
		}
		if len(audit) != 1 || audit[0].Action != "retention.expire" || audit[0].ActorID != "cli:retention run" || audit[0].Detail != "rule=duration days=90 items=1" {
			t.Errorf("audit of the old subject = %+v", audit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
