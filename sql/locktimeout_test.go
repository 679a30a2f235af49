package sql_test

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
)

// TestLockTimeout: another process stuck while holding the write lock (found by
// testers: a SIGSTOPped server stalled another's writes for as long as it stayed
// stopped; then, with a timeout, 40 writes queued behind the lock waited one
// timeout after another, up to four times as long) delays every write by about
// LockTimeout, then they fail with EUNAVAILABLE; once it lets go, writes succeed.
func TestLockTimeout(t *testing.T) {
	const timeout = time.Second
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			store, _, dsn := openEngine(t, engine, stsql.Options{LockTimeout: timeout})
			other := openRaw(t, engine, dsn)
			stuck, err := other.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer stuck.Close()
			if engine == stsql.SQLite {
				_, err = stuck.ExecContext(ctx, `BEGIN IMMEDIATE`)
			} else {
				_, err = stuck.ExecContext(ctx, `BEGIN`)
				if err == nil {
					_, err = stuck.ExecContext(ctx, `SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE`)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			write := func() error {
				return store.Write(ctx, func(tx steward.Tx) error {
					return tx.CreateSubject(ctx, &steward.Subject{ID: steward.NewID(), Status: steward.SubjectActive, Region: "CN-SH", KeyID: "k", CreatedAt: time.Now()})
				})
			}
			// Twelve writers at once, more than the writer goroutines.
			start := time.Now()
			done := make(chan error, 12)
			for range 12 {
				go func() { done <- write() }()
			}
			for i := range 12 {
				select {
				case err := <-done:
					if steward.ErrorCode(err) != steward.EUNAVAILABLE {
						t.Fatalf("write %d while another process holds the lock: %v, want EUNAVAILABLE", i, err)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("%d of 12 writes still wait after 30 s; the lock timeout is %v", 12-i, timeout)
				}
			}
			// Each waited one timeout, not one per write queued ahead of it
			// (without the fix: 3 timeouts on PostgreSQL's four writers, 12 on SQLite's one).
			if waited := time.Since(start); waited > 2*timeout+timeout/2 {
				t.Errorf("the last of 12 writes failed after %v; the lock timeout is %v", waited, timeout)
			}
			if _, err := stuck.ExecContext(ctx, `ROLLBACK`); err != nil {
				t.Fatal(err)
			}
			if err := write(); err != nil {
				t.Fatalf("write after the lock was released: %v", err)
			}
		})
	}
}
