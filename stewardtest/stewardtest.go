// Package stewardtest builds Steward services on real stores for tests: SQLite in
// a temporary directory always, PostgreSQL when STEWARD_TEST_POSTGRES_URL is set
// (each test gets its own pair of databases, dropped afterwards). It also holds the
// conformance suite every store must pass.
package stewardtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/contacts"
	"github.com/stewardhq/steward/declaration"
	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/outbox"
	stsql "github.com/stewardhq/steward/sql"
)

// PostgresEnv names the variable holding a PostgreSQL URL for tests.
const PostgresEnv = "STEWARD_TEST_POSTGRES_URL"

// Engines returns the engines to test on: "sqlite" always, "postgres" when
// STEWARD_TEST_POSTGRES_URL is set. With STEWARD_REQUIRE_POSTGRES=1 a missing URL
// fails the test instead of skipping PostgreSQL (CI sets it).
func Engines(t testing.TB) []string {
	if os.Getenv(PostgresEnv) != "" {
		return []string{stsql.SQLite, stsql.Postgres}
	}
	if os.Getenv("STEWARD_REQUIRE_POSTGRES") == "1" {
		t.Fatalf("%s is not set but STEWARD_REQUIRE_POSTGRES=1", PostgresEnv)
	}
	return []string{stsql.SQLite}
}

// Clock is a settable clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set sets the clock.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Env is a Service on a real store with everything a test needs to look inside.
type Env struct {
	Engine   string
	Dir      string // temporary directory (SQLite files live here)
	DataDSN  string
	KeysDSN  string
	Store    *stsql.Store
	KeyStore *stsql.KeyStore
	KeyFile  *keyring.KeyFile
	Keyring  *keyring.Keyring
	Service  *steward.Service
	Outbox   *outbox.Worker
	SMS      *outbox.MemorySink
	Clock    *Clock
	Decl     *steward.Declaration
	opts     Options
}

// Options adjust New.
type Options struct {
	Declaration *steward.Declaration // default: the embedded default declaration
	Now         time.Time            // default: 2026-11-29T10:00:00+08:00
	OTP         steward.OTPPolicy
	WeChat      steward.WeChatProvider // e.g. a *wechat.Fake; default nil: WeChat sign-in off
}

// New returns an Env on engine ("sqlite" or "postgres"), closed when t ends.
func New(t testing.TB, engine string, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{Engine: engine, Dir: t.TempDir()}
	if o.Declaration == nil {
		o.Declaration = declaration.Default()
	}
	if o.Now.IsZero() {
		o.Now = time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)
	}
	e.Decl, e.Clock = o.Declaration, NewClock(o.Now)
	switch engine {
	case stsql.SQLite:
		e.DataDSN = filepath.Join(e.Dir, "steward.db")
		e.KeysDSN = filepath.Join(e.Dir, "keys.db")
	case stsql.Postgres:
		e.DataDSN, e.KeysDSN = PostgresDatabases(t)
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	var err error
	// An instance id as `steward serve` has: the Service's messages are claimed
	// for e.Outbox, which delivers them without a write to claim them.
	if e.Store, err = stsql.OpenStore(ctx, e.DataDSN, stsql.Options{Instance: steward.NewID()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Store.Close() })
	if e.KeyStore, err = stsql.OpenKeyStore(ctx, e.KeysDSN, stsql.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.KeyStore.Close() })
	if e.KeyFile, _, err = keyring.LoadOrCreateKeyFile(filepath.Join(e.Dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	e.Keyring = keyring.New(e.KeyFile, keyring.CachedKeyStore(e.KeyStore, 0, 0))
	e.Keyring.Now = e.Clock.Now
	e.KeyStore.Now = e.Clock.Now
	e.SMS = &outbox.MemorySink{}
	e.Outbox = &outbox.Worker{Store: e.Store, Keys: keyring.Steward{Keyring: e.Keyring}, Sinks: map[string]outbox.Sink{"sms": e.SMS}, Now: e.Clock.Now}
	e.opts = o
	e.Service = e.ServiceWith(nil, nil)
	return e
}

// ServiceWith returns a Service configured as e.Service but on store and keys
// instead of e's own where they are not nil: for tests that wrap the store or
// the key store to inject failures.
func (e *Env) ServiceWith(store steward.Store, keys steward.Keys) *steward.Service {
	if store == nil {
		store = e.Store
	}
	if keys == nil {
		keys = keyring.Steward{Keyring: e.Keyring}
	}
	return steward.NewService(steward.Config{Declaration: e.Decl, Store: store, Keys: keys,
		NormalizePhone: contacts.Normalize, SMSCapable: contacts.CanReceiveSMS, Now: e.Clock.Now, OTP: e.opts.OTP, WeChat: e.opts.WeChat})
}

// PostgresDatabases creates a fresh data database and key database on the server
// at STEWARD_TEST_POSTGRES_URL and drops both when t ends. It skips t when the
// variable is unset.
func PostgresDatabases(t testing.TB) (data, keys string) {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("%s is not set", PostgresEnv)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	name := "steward_test_" + hex.EncodeToString(b[:])
	for _, db := range []string{name, name + "_keys"} {
		if _, err := admin.Exec("CREATE DATABASE " + db); err != nil {
			t.Fatalf("create database %s: %v", db, err)
		}
		t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)") })
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	data = u.String()
	u.Path = "/" + name + "_keys"
	keys = u.String()
	return data, keys
}

// Ctx returns a context acting as actor a.
func Ctx(a steward.Actor) context.Context { return steward.WithActor(context.Background(), a) }

// App returns a context acting as client app id.
func App(id string) context.Context { return Ctx(steward.Actor{Kind: steward.ActorApp, ID: id}) }

// Subject returns a context acting as subject id.
func Subject(id string) context.Context {
	return Ctx(steward.Actor{Kind: steward.ActorSubject, ID: id})
}

// LastCode delivers the outbox and returns the last one-time code sent to e164.
func (e *Env) LastCode(t testing.TB, e164 string) string {
	t.Helper()
	if _, err := e.Outbox.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, ok := e.SMS.Last(e164)
	if !ok {
		t.Fatalf("no message was sent to %s", e164)
	}
	i := strings.Index(m.Body, "code is ")
	if i < 0 || len(m.Body) < i+14 {
		t.Fatalf("message to %s has no code", e164)
	}
	return m.Body[i+8 : i+14]
}

// DefaultConsents returns consents for every required purpose of d.
func DefaultConsents(d *steward.Declaration) []steward.ConsentChoice {
	var out []steward.ConsentChoice
	for _, p := range d.RequiredPurposes() {
		pp, _ := d.Purpose(p)
		out = append(out, steward.ConsentChoice{Purpose: p, Separate: d.Sensitive(pp)})
	}
	return out
}

// Register sends a code to phone and registers with fields (JSON values) and the
// required consents plus extra, failing t on error.
func (e *Env) Register(t testing.TB, phone string, fields map[string]string, extra ...steward.ConsentChoice) *steward.Registered {
	t.Helper()
	r, err := e.TryRegister(t, phone, fields, extra...)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return r
}

// TryRegister is Register returning the error.
func (e *Env) TryRegister(t testing.TB, phone string, fields map[string]string, extra ...steward.ConsentChoice) (*steward.Registered, error) {
	t.Helper()
	ctx := context.Background()
	e.Clock.Advance(time.Minute) // a person takes a while; and codes to one number are spaced
	if _, err := e.Service.SendCode(ctx, phone, steward.CodeRegister); err != nil {
		return nil, err
	}
	e164, err := contacts.Normalize(phone, e.Decl.PhoneRegion)
	if err != nil {
		return nil, err
	}
	code := e.LastCode(t, e164)
	fv := steward.FieldValues{}
	for k, v := range fields {
		fv[k] = []byte(v)
	}
	if _, ok := fv["birthday"]; !ok {
		fv["birthday"] = []byte(`"1990-05-17"`)
	}
	return e.Service.Register(ctx, steward.Registration{Phone: phone, Code: code, Fields: fv, Consents: append(DefaultConsents(e.Decl), extra...)})
}

// ReportWritesPerCommit runs the benchmark body run and reports how many writes
// the stores' group commits held on average while it ran ("writes/commit"; the
// counters are process-wide, so run one benchmark at a time).
func ReportWritesPerCommit(b *testing.B, run func()) {
	batches0, writes0 := stsql.BatchStats()
	run()
	if batches, writes := stsql.BatchStats(); batches > batches0 {
		b.ReportMetric(float64(writes-writes0)/float64(batches-batches0), "writes/commit")
	}
}
