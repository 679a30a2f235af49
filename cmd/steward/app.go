package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/contacts"
	"github.com/stewardhq/steward/declaration"
	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/outbox"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/wechat"
)

// app is Steward wired from a Config: stores, keys, declaration, service, outbox.
type app struct {
	cfg        Config
	log        *slog.Logger
	decl       *steward.Declaration
	store      *stsql.Store
	keyStore   *stsql.KeyStore
	keyFile    *keyring.KeyFile
	keyCreated bool
	keys       steward.Keys
	svc        *steward.Service
	outbox     *outbox.Worker
	rec        *recipientFeatures      // recipients.go: recipients, holds, certificates
	requests   *steward.RequestService // requests.go: rights requests and automated decisions
}

// openApp opens everything cfg names. serve is true for `steward serve`: it
// allows generating a development key file when none exists (admin commands never
// do), and gives the data store an instance id of its own, so that this process's
// outbox worker owns the messages it queues, and processes sharing a database
// each deliver a message once (steward.OutboxMessage). Admin commands queue
// messages unclaimed, for whichever serve process takes them.
func openApp(ctx context.Context, cfg Config, log *slog.Logger, serve bool) (*app, error) {
	a := &app{cfg: cfg, log: log}
	var err error
	if cfg.Declaration == "" {
		a.decl = declaration.Default()
	} else if a.decl, err = declaration.Load(cfg.Declaration); err != nil {
		return nil, err
	}
	if serve {
		a.keyFile, a.keyCreated, err = keyring.LoadOrCreateKeyFile(cfg.KeyFile)
	} else {
		a.keyFile, err = keyring.LoadKeyFile(cfg.KeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", cfg.KeyFile, err)
	}
	opts := stsql.Options{Synchronous: cfg.Synchronous, Logger: log}
	dataOpts := opts
	if serve {
		dataOpts.Instance = steward.NewID()
	}
	if a.store, err = stsql.OpenStore(ctx, cfg.DataDSN(), dataOpts); err != nil {
		return nil, fmt.Errorf("data store: %w", err)
	}
	if a.keyStore, err = stsql.OpenKeyStore(ctx, cfg.KeysDSN(), opts); err != nil {
		a.store.Close()
		return nil, fmt.Errorf("key store: %w", err)
	}
	if same, err := a.keyStore.SharesDatabaseWith(ctx, a.store); err != nil || same {
		a.Close()
		if err == nil {
			err = errors.New("keys_database names the same database as database; the key store must be a database of its own, or destroying a key would not reach the copies of the data")
		}
		return nil, fmt.Errorf("key store: %w", err)
	}
	kr := keyring.New(a.keyFile, keyring.CachedKeyStore(a.keyStore, 0, 0))
	a.keys = keyring.Steward{Keyring: kr}
	a.outbox = &outbox.Worker{Store: a.store, Keys: a.keys, Logger: log,
		Sinks: map[string]outbox.Sink{"sms": &outbox.FileSink{Path: cfg.DevSink}, "email": &outbox.FileSink{Path: cfg.DevSink}, "push": &outbox.FileSink{Path: cfg.DevSink}, "staff": &outbox.FileSink{Path: cfg.DevSink}}}
	a.svc = steward.NewService(steward.Config{Declaration: a.decl, Store: a.store, Keys: a.keys, NormalizePhone: contacts.Normalize, SMSCapable: contacts.CanReceiveSMS,
		Logger: log, Notify: a.outbox.Notify, OTP: steward.OTPPolicy{PerPhonePerHour: cfg.OTP.PerPhonePerHour,
			PerClientPerHour: cfg.OTP.PerClientPerHour, ResendInterval: cfg.OTP.ResendInterval}, WeChat: cfg.wechatProvider()})
	a.svc.EnableShield() // shield.go, link.go, location.go: contacts, links and location hooks
	a.rec = wireRecipients(a, kr)
	if a.requests, err = steward.NewRequestService(a.svc); err != nil {
		a.Close()
		return nil, fmt.Errorf("rights requests: %w", err)
	}
	a.rec.attach(a.requests)
	return a, nil
}

// ready reports whether both stores answer.
func (a *app) ready(ctx context.Context) error {
	return errors.Join(a.store.Ping(ctx), a.keyStore.Ping(ctx))
}

func (a *app) Close() error {
	return errors.Join(a.store.Close(), a.keyStore.Close())
}

// printError writes err as {"error":{"code","message"}} plus, for internal errors,
// the cause, which the operator running the CLI may see.
func printError(w io.Writer, prefix string, err error) {
	code := steward.ErrorCode(err)
	if code == steward.EINTERNAL || code == steward.EUNAVAILABLE {
		fmt.Fprintf(w, "%s: %v\n", prefix, err)
		return
	}
	fmt.Fprintf(w, "%s: %s: %s\n", prefix, code, steward.ErrorMessage(err))
}

// wechatProvider returns WeChat's open API for the configured app, or nil (not a
// typed nil) when no app is configured: WeChat sign-in is then off.
func (c *Config) wechatProvider() steward.WeChatProvider {
	if c.WeChatAppID == "" || c.WeChatAppSecret == "" {
		return nil
	}
	return &wechat.Provider{AppID: c.WeChatAppID, AppSecret: c.WeChatAppSecret}
}
