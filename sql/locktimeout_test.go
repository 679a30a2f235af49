package sql_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
)

// TestPostgresLockTimeout: a process stuck while holding the chain head (found
// by a tester: a SIGSTOPped server stalled another's write for as long as it
// stayed stopped) delays other writers by LockTimeout, then they fail with
// EUNAVAILABLE; once it lets go, writes succeed again.
func TestPostgresLockTimeout(t *testing.T) {
	dataDSN, _ := stewardtest.PostgresDatabases(t)
	ctx := context.Background()
	store, err := stsql.OpenStore(ctx, dataDSN, stsql.Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stuck, err := sql.Open("pgx", dataDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	tx, err := stuck.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	write := func() error {
		done := make(chan error, 1)
		go func() {
			done <- store.Write(ctx, func(tx steward.Tx) error {
				return tx.CreateSubject(ctx, &steward.Subject{ID: steward.NewID(), Status: steward.SubjectActive, Region: "CN-SH", KeyID: "k", CreatedAt: time.Now()})
			})
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			// A started write ignores its caller's context: without a lock
			// timeout it waits as long as the lock is held.
			t.Fatal("the write still waits for the lock after 10 s; LockTimeout is 300 ms")
			return nil
		}
	}
	if err := write(); steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Fatalf("write while another process holds the chain head: %v, want EUNAVAILABLE", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := write(); err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
}
