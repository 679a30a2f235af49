package sql

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestCancelledWriteInGroup: a client that hangs up while its write runs must not
// fail the writes grouped with it. The writer's statements ignore cancellation,
// so the cancelled write completes too (it had started).
func TestCancelledWriteInGroup(t *testing.T) {
	ctx := context.Background()
	db, err := open(ctx, filepath.Join(t.TempDir(), "steward.db"), Options{}, dataMigrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ins := func(tx *Tx, c context.Context, id string) error {
		_, err := tx.exec(c, "insert", `INSERT INTO outbox (id, channel, subject_id, kind, payload, created_at, next_attempt_at) VALUES (?, 'sms', '', 'otp', X'00', 0, 0)`, id)
		return err
	}
	results := map[string]chan error{}
	start := func(name string, c context.Context, fn func(*Tx) error) {
		ch := make(chan error, 1)
		results[name] = ch
		go func() { ch <- db.writeTx(c, fn) }()
	}
	// X holds the writer while A, B and C queue behind it: one group.
	start("X", ctx, func(tx *Tx) error { time.Sleep(200 * time.Millisecond); return ins(tx, ctx, "x") })
	time.Sleep(20 * time.Millisecond)
	start("A", ctx, func(tx *Tx) error { return ins(tx, ctx, "a") })
	time.Sleep(20 * time.Millisecond)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start("B", bctx, func(tx *Tx) error {
		if err := ins(tx, bctx, "b"); err != nil {
			return err
		}
		go func() { time.Sleep(5 * time.Millisecond); cancel() }() // the client hangs up mid-statement
		_, err := tx.exec(bctx, "slow insert", `INSERT INTO outbox (id, channel, subject_id, kind, payload, created_at, next_attempt_at)
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100000) SELECT 'slow'||i, 'sms', '', 'otp', X'00', 0, 0 FROM n`)
		return err
	})
	time.Sleep(20 * time.Millisecond)
	start("C", ctx, func(tx *Tx) error { return ins(tx, ctx, "c") })
	for _, name := range []string{"X", "A", "B", "C"} {
		if err := <-results[name]; err != nil {
			t.Errorf("write %s: %v", name, err)
		}
	}
	var n int
	if err := db.readTx(ctx, func(tx *Tx) error { return tx.row(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n) }); err != nil {
		t.Fatal(err)
	}
	if n != 4+100000 {
		t.Errorf("%d outbox rows, want %d: every write of the group committed", n, 4+100000)
	}
}
