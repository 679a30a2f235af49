package sql

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stewardhq/steward"
)

// upTo returns the migrations of src in dir named before stop.
func upTo(t *testing.T, src fs.FS, dir, stop string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	names, err := fs.Glob(src, dir+"/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if filepath.Base(name) >= stop {
			continue
		}
		body, err := fs.ReadFile(src, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: body}
	}
	return out
}

// TestLeanTablesMigration upgrades a data store and an access log made before
// the lean-tables migrations: every row is kept, the tables are rebuilt, and
// foreign keys hold and are enforced again afterwards.
func TestLeanTablesMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "steward.db")
	old, err := open(ctx, path, Options{}, upTo(t, dataMigrations, "migrations", "0005"), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	event := &steward.ConsentEvent{ID: "ev-1", SubjectID: "s1", Purpose: "service", Action: steward.ConsentGrant, NoticeVersion: "v1", Method: "app", Actor: "subject:s1", At: at}
	entry := &steward.AuditEntry{ActorKind: "subject", ActorID: "s1", Action: steward.AuditRegister, SubjectID: "s1", At: at}
	if err := old.writeTx(ctx, func(tx *Tx) error {
		for _, err := range []error{
			tx.CreateSubject(ctx, &steward.Subject{ID: "s1", Status: steward.SubjectActive, Region: "CN-SH", KeyID: "dek-1", CreatedAt: at}),
			tx.PutIndex(ctx, "phone", []byte("blind-1"), "s1"),
			tx.PutFields(ctx, []steward.SealedField{{SubjectID: "s1", Field: "nickname", Value: []byte("sealed"), UpdatedAt: at}}),
			tx.AddConsentEvent(ctx, event),
			tx.CreateSession(ctx, &steward.Session{ID: "sess-1", TokenHash: []byte("token-hash"), SubjectID: "s1", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}),
			tx.CreateCode(ctx, &steward.OneTimeCode{ID: "code-1", Purpose: steward.CodeRegister, Target: []byte("blind-1"), CodeHash: []byte("h"), CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}),
			tx.AppendAudit(ctx, entry),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	oldAccess, err := open(ctx, AccessDSN(path), Options{}, upTo(t, accessMigrations, "accessmigrations", "0003"), "accessmigrations")
	if err != nil {
		t.Fatal(err)
	}
	oldAccess.chain = "access"
	read := &steward.AuditEntry{ActorKind: "app", ActorID: "risk", Action: steward.AuditRead, SubjectID: "s1", At: at}
	if err := oldAccess.writeTx(ctx, func(tx *Tx) error { return tx.AppendAudit(ctx, read) }); err != nil {
		t.Fatal(err)
	}
	oldAccess.Close()

	s, err := OpenStore(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open after the migration: %v", err)
	}
	defer s.Close()
	if err := s.readTx(ctx, func(tx *Tx) error {
		for _, table := range []string{"subjects", "subject_indexes", "consent_events", "consents", "one_time_codes", "sessions"} {
			var ddl string
			if err := tx.row(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&ddl); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			if !strings.HasSuffix(ddl, "WITHOUT ROWID") {
				t.Errorf("%s is not WITHOUT ROWID after the migration: %s", table, ddl)
			}
		}
		if id, err := tx.LookupIndex(ctx, "phone", []byte("blind-1")); err != nil || id != "s1" {
			t.Errorf("LookupIndex after the migration: %q, %v", id, err)
		}
		if f, err := tx.GetFields(ctx, "s1", nil); err != nil || len(f) != 1 || string(f[0].Value) != "sealed" {
			t.Errorf("GetFields after the migration: %+v, %v", f, err)
		}
		if st, err := tx.ConsentState(ctx, "s1", "service"); err != nil || !st.Granted || st.EventID != "ev-1" {
			t.Errorf("ConsentState after the migration: %+v, %v", st, err)
		}
		if sess, err := tx.SessionByHash(ctx, []byte("token-hash")); err != nil || sess.ID != "sess-1" {
			t.Errorf("SessionByHash after the migration: %+v, %v", sess, err)
		}
		if c, err := tx.LatestCode(ctx, steward.CodeRegister, []byte("blind-1")); err != nil || c.ID != "code-1" {
			t.Errorf("LatestCode after the migration: %+v, %v", c, err)
		}
		var n int
		if err := tx.row(ctx, `SELECT COUNT(*) FROM audit_log WHERE seq = 1 AND hash = ?`, entry.Hash).Scan(&n); err != nil || n != 1 {
			t.Errorf("audit entry 1 after the migration: %d rows, %v", n, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadAccess(ctx, func(tx steward.Tx) error {
		seq, hash, err := tx.AuditHead(ctx)
		if err != nil || seq != 1 || string(hash) != string(read.Hash) {
			t.Errorf("access head after the migration: %d, %x, %v", seq, hash, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Foreign keys are enforced again.
	err = s.Write(ctx, func(tx steward.Tx) error {
		return tx.PutFields(ctx, []steward.SealedField{{SubjectID: "nobody", Field: "nickname", Value: []byte("x"), UpdatedAt: at}})
	})
	if err == nil {
		t.Errorf("a field of an unknown subject was stored after the migration: foreign keys are off")
	}
}

// TestOutboxClaimsMigration upgrades a data store with a message queued before
// outbox claims: the message is unclaimed, due for every process, and the first
// to claim it gets it.
func TestOutboxClaimsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "steward.db")
	old, err := open(ctx, path, Options{}, upTo(t, dataMigrations, "migrations", "0007"), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	if err := old.writeTx(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, "insert outbox", `INSERT INTO outbox (id, channel, subject_id, kind, payload, attempts, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			"m-old", "sms", "", "otp", []byte("sealed"), 0, at.UnixMicro(), at.UnixMicro())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s, err := OpenStore(ctx, path, Options{Instance: "node-a"})
	if err != nil {
		t.Fatalf("open after the migration: %v", err)
	}
	defer s.Close()
	for _, instance := range []string{"node-a", "node-b"} {
		if err := s.Read(ctx, func(tx steward.Tx) error {
			due, err := tx.DueMessages(ctx, instance, at, 10)
			if err != nil || len(due) != 1 || due[0].ID != "m-old" || due[0].ClaimedBy != "" || !due[0].ClaimedUntil.IsZero() || !due[0].NextAttemptAt.Equal(at) {
				t.Errorf("DueMessages(%s) after the migration = %+v, %v; want m-old, unclaimed", instance, due, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		instance string
		want     int
	}{{"node-b", 1}, {"node-a", 0}} {
		var won []string
		if err := s.Write(ctx, func(tx steward.Tx) (err error) {
			won, err = tx.ClaimMessages(ctx, c.instance, []string{"m-old"}, at, at.Add(steward.OutboxLease))
			return err
		}); err != nil || len(won) != c.want {
			t.Errorf("ClaimMessages(%s) after the migration = %v, %v; want %d claimed", c.instance, won, err, c.want)
		}
	}
}
