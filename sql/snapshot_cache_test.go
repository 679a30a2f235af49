package sql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stewardhq/steward"
)

// These tests check the purpose snapshot cache of the SQLite store
// (snapshot_cache.go): a snapshot is served from memory only while no commit has
// been made to the database, by this store, another store on the same file or
// another process, since it was read.

func snapAt(d time.Duration) time.Time {
	return time.Date(2026, 11, 29, 2, 0, 0, 123456000, time.UTC).Add(d)
}

// snapOpen opens a store on path, closed when t ends, and checks that it caches.
func snapOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.snapshots == nil || s.snapshots.shm == nil {
		t.Fatalf("the store on %s does not cache purpose snapshots (snapshots %v)", path, s.snapshots)
	}
	return s
}

func snapPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "steward.db")
}

func snapWrite(t *testing.T, s *Store, fn func(tx steward.Tx) error) {
	t.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func snapSubject(id string) *steward.Subject {
	return &steward.Subject{ID: id, Status: steward.SubjectActive, Region: "CN-SH", KeyID: "dek-" + id, CreatedAt: snapAt(0)}
}

func snapField(subject, field, value string, d time.Duration) steward.SealedField {
	return steward.SealedField{SubjectID: subject, Field: field, Value: []byte(value), UpdatedAt: snapAt(d)}
}

func snapEvent(id, subject, purpose, action string, d time.Duration) *steward.ConsentEvent {
	return &steward.ConsentEvent{ID: id, SubjectID: subject, Purpose: purpose, Action: action, Separate: true,
		NoticeVersion: "2026-11", Method: "app", Actor: "subject:" + subject, At: snapAt(d)}
}

func snapHold(id, subject string) *steward.LegalHold {
	return &steward.LegalHold{ID: id, SubjectID: subject, Fields: []string{"name"}, Case: steward.HoldLaw, Reference: "ref-" + id,
		Purpose: "accounting", KeyID: "dek-" + id, PlacedAt: snapAt(time.Hour), PlacedBy: "staff:alice"}
}

// snapSeed creates subject s1 with fields name and phone and the health purpose
// granted (event ev-1), and subject s2 with a name only.
func snapSeed(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	snapWrite(t, s, func(tx steward.Tx) error {
		for _, id := range []string{"s1", "s2"} {
			if err := tx.CreateSubject(ctx, snapSubject(id)); err != nil {
				return err
			}
		}
		if err := tx.PutFields(ctx, []steward.SealedField{
			snapField("s1", "name", "sealed-name", 0),
			snapField("s1", "phone", "sealed-phone", time.Second),
			snapField("s2", "name", "sealed-other", 0),
		}); err != nil {
			return err
		}
		return tx.AddConsentEvent(ctx, snapEvent("ev-1", "s1", "health", steward.ConsentGrant, time.Minute))
	})
}

func granted(event string, d time.Duration) *steward.ConsentState {
	return &steward.ConsentState{Purpose: "health", Granted: true, Separate: true, NoticeVersion: "2026-11", EventID: event, At: snapAt(d)}
}

func withdrawn(event string, d time.Duration) *steward.ConsentState {
	return &steward.ConsentState{Purpose: "health", Granted: false, Separate: false, NoticeVersion: "2026-11", EventID: event, At: snapAt(d)}
}

var snapCmp = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() }),
}

// snapGet calls s.PurposeSnapshot and checks the snapshot is want, and that it is
// what an uncached read in a transaction of its own returns.
func snapGet(t *testing.T, s *Store, what, subject, purpose string, fields []string, want *steward.PurposeSnapshot) *steward.PurposeSnapshot {
	t.Helper()
	ctx := context.Background()
	got, err := s.PurposeSnapshot(ctx, subject, purpose, fields)
	if err != nil {
		t.Fatalf("%s: PurposeSnapshot(%s, %s, %q): %v", what, subject, purpose, fields, err)
	}
	if diff := cmp.Diff(want, got, snapCmp); diff != "" {
		t.Errorf("%s: PurposeSnapshot(%s, %s, %q) (-want +got):\n%s", what, subject, purpose, fields, diff)
	}
	var direct *steward.PurposeSnapshot
	if err := s.Read(ctx, func(tx steward.Tx) (err error) {
		direct, err = tx.PurposeSnapshot(ctx, subject, purpose, fields)
		return err
	}); err != nil {
		t.Fatalf("%s: Tx.PurposeSnapshot: %v", what, err)
	}
	if diff := cmp.Diff(direct, got, snapCmp); diff != "" {
		t.Errorf("%s: Store.PurposeSnapshot differs from Tx.PurposeSnapshot (-tx +store):\n%s", what, diff)
	}
	return got
}

func snapHeader(t *testing.T, s *Store, what string) walIndexHeader {
	t.Helper()
	// A header is inconsistent only while a commit is writing it; nothing commits
	// concurrently in the tests that call this.
	h, ok := s.snapshots.shm.read()
	if !ok {
		t.Fatalf("%s: WAL-index header not read consistently: %v", what, h)
	}
	return h
}

// iChange is the WAL-index header's change counter (walformat.html, 2.2.1).
func iChange(h walIndexHeader) uint32 { return h[2] }

func TestSnapshotShmHeader(t *testing.T) {
	ctx := context.Background()
	path := snapPath(t)
	s := snapOpen(t, path)

	h0 := snapHeader(t, s, "fresh store")
	if h0 == (walIndexHeader{}) {
		t.Fatalf("fresh store: zero header")
	}
	if again := snapHeader(t, s, "second read"); again != h0 {
		t.Fatalf("header changed with nothing done: %v then %v", h0, again)
	}

	// Read-only transactions, through the cache or not, commit nothing.
	if err := s.Read(ctx, func(tx steward.Tx) error {
		_, err := tx.GetSubject(ctx, "nobody")
		if steward.ErrorCode(err) != steward.ENOTFOUND {
			return fmt.Errorf("GetSubject(nobody): %v, want ENOTFOUND", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurposeSnapshot(ctx, "nobody", "health", []string{"name"}); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Fatalf("PurposeSnapshot(nobody): %v, want ENOTFOUND", err)
	}
	if h := snapHeader(t, s, "after reads"); h != h0 {
		t.Fatalf("header changed by read-only transactions: %v then %v", h0, h)
	}

	// One committed write is one commit: the change counter grows by one.
	snapWrite(t, s, func(tx steward.Tx) error { return tx.CreateSubject(ctx, snapSubject("s1")) })
	h1 := snapHeader(t, s, "after a write")
	if h1 == h0 {
		t.Fatalf("header unchanged by a committed write: %v", h1)
	}
	if iChange(h1) != iChange(h0)+1 {
		t.Errorf("iChange %d after one commit, was %d", iChange(h1), iChange(h0))
	}

	// A write whose fn fails commits nothing.
	errBoom := errors.New("boom")
	if err := s.Write(ctx, func(tx steward.Tx) error {
		if err := tx.CreateSubject(ctx, snapSubject("s2")); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("failing write: %v, want %v", err, errBoom)
	}
	if h := snapHeader(t, s, "after a failed write"); h != h1 {
		t.Errorf("header changed by a write that committed nothing: %v then %v", h1, h)
	}

	// A second store on the same file maps the same header, and sees this
	// store's commits, and this store its.
	b := snapOpen(t, path)
	if hb, ha := snapHeader(t, b, "store B"), snapHeader(t, s, "store A"); hb != ha {
		t.Fatalf("two stores on one file read different headers: %v and %v", ha, hb)
	}
	snapWrite(t, b, func(tx steward.Tx) error { return tx.CreateSubject(ctx, snapSubject("s3")) })
	h2 := snapHeader(t, s, "after a write by store B")
	if h2 == h1 || iChange(h2) != iChange(h1)+1 {
		t.Errorf("store A's header after a commit by store B: %v, was %v", h2, h1)
	}
}

func TestSnapshotCacheHitAndInvalidation(t *testing.T) {
	ctx := context.Background()
	s := snapOpen(t, snapPath(t))
	snapSeed(t, s)
	name := snapField("s1", "name", "sealed-name", 0)
	phone := snapField("s1", "phone", "sealed-phone", time.Second)

	want := &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-1", time.Minute),
		Fields: []steward.SealedField{name, phone}}
	first := snapGet(t, s, "cold", "s1", "health", []string{"name", "phone"}, want)
	second := snapGet(t, s, "warm", "s1", "health", []string{"name", "phone"}, want)
	if first != second {
		t.Errorf("no write between two reads, yet the second was not served from the cache (%p, %p)", first, second)
	}

	// Other subjects, purposes and field lists are other entries, each a hit in turn.
	others := []struct {
		subject, purpose string
		fields           []string
		want             *steward.PurposeSnapshot
	}{
		{"s1", "health", []string{"name"}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-1", time.Minute),
			Fields: []steward.SealedField{name}}},
		{"s1", "health", nil, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-1", time.Minute)}},
		{"s1", "marketing", []string{"name", "phone"}, &steward.PurposeSnapshot{Status: steward.SubjectActive,
			Fields: []steward.SealedField{name, phone}}},
		{"s2", "health", []string{"name", "phone"}, &steward.PurposeSnapshot{Status: steward.SubjectActive,
			Fields: []steward.SealedField{snapField("s2", "name", "sealed-other", 0)}}},
	}
	for _, o := range others {
		what := fmt.Sprintf("%s/%s/%q", o.subject, o.purpose, o.fields)
		a := snapGet(t, s, what, o.subject, o.purpose, o.fields, o.want)
		if b := snapGet(t, s, what+" again", o.subject, o.purpose, o.fields, o.want); a != b {
			t.Errorf("%s: not served from the cache the second time, with no commit since the first (a snapshot read while others are cached must be cached too)", what)
		}
	}
	if again := snapGet(t, s, "first key again", "s1", "health", []string{"name", "phone"}, want); again != first {
		t.Errorf("first entry lost when other keys were cached")
	}

	// Each change below must be seen by the very next read.
	steps := []struct {
		what string
		fn   func(tx steward.Tx) error
		want *steward.PurposeSnapshot
	}{
		{"consent withdrawn", func(tx steward.Tx) error {
			return tx.AddConsentEvent(ctx, snapEvent("ev-2", "s1", "health", steward.ConsentWithdraw, 2*time.Minute))
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: withdrawn("ev-2", 2*time.Minute),
			Fields: []steward.SealedField{name, phone}}},
		{"consent granted again", func(tx steward.Tx) error {
			return tx.AddConsentEvent(ctx, snapEvent("ev-3", "s1", "health", steward.ConsentGrant, 3*time.Minute))
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-3", 3*time.Minute),
			Fields: []steward.SealedField{name, phone}}},
		{"field rewritten", func(tx steward.Tx) error {
			return tx.PutFields(ctx, []steward.SealedField{snapField("s1", "phone", "sealed-phone-2", 4*time.Second)})
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-3", 3*time.Minute),
			Fields: []steward.SealedField{name, snapField("s1", "phone", "sealed-phone-2", 4*time.Second)}}},
		{"field erased", func(tx steward.Tx) error {
			return tx.DeleteFields(ctx, "s1", []string{"phone"})
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-3", 3*time.Minute),
			Fields: []steward.SealedField{name}}},
		{"write to another subject only", func(tx steward.Tx) error {
			return tx.PutFields(ctx, []steward.SealedField{snapField("s2", "phone", "sealed-other-phone", 0)})
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-3", 3*time.Minute),
			Fields: []steward.SealedField{name}}},
		{"legal hold placed", func(tx steward.Tx) error {
			return tx.CreateHold(ctx, snapHold("h1", "s1"))
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-3", 3*time.Minute), Holds: 1,
			Fields: []steward.SealedField{name}}},
		{"legal hold released", func(tx steward.Tx) error {
			return tx.ReleaseHold(ctx, "h1", snapAt(2*time.Hour), "staff:alice", "case closed")
		}, &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-3", 3*time.Minute),
			Fields: []steward.SealedField{name}}},
		{"account cancelled and erased", func(tx steward.Tx) error {
			if err := tx.DeleteAllFields(ctx, "s1"); err != nil {
				return err
			}
			return tx.CancelSubject(ctx, "s1", snapAt(3*time.Hour))
		}, &steward.PurposeSnapshot{Status: steward.SubjectCancelled, Consent: granted("ev-3", 3*time.Minute)}},
	}
	prev := first
	for _, st := range steps {
		snapWrite(t, s, st.fn)
		got := snapGet(t, s, st.what, "s1", "health", []string{"name", "phone"}, st.want)
		if got == prev {
			t.Errorf("%s: the snapshot cached before the write was served after it", st.what)
		}
		if again := snapGet(t, s, st.what+", read again", "s1", "health", []string{"name", "phone"}, st.want); again != got {
			t.Errorf("%s: the new snapshot was not cached", st.what)
		}
		prev = got
	}
}

// TestSnapshotCacheSecondStore writes through a second store on the same file,
// as another process (the CLI) would: its commits never pass through the first
// store, which must still see them on its next read.
func TestSnapshotCacheSecondStore(t *testing.T) {
	ctx := context.Background()
	path := snapPath(t)
	a := snapOpen(t, path)
	snapSeed(t, a)
	b := snapOpen(t, path)
	name := snapField("s1", "name", "sealed-name", 0)
	phone := snapField("s1", "phone", "sealed-phone", time.Second)
	fields := []string{"name", "phone"}

	want := &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-1", time.Minute),
		Fields: []steward.SealedField{name, phone}}
	warm := snapGet(t, a, "A cold", "s1", "health", fields, want)
	if again := snapGet(t, a, "A warm", "s1", "health", fields, want); again != warm {
		t.Fatalf("store A does not cache")
	}
	warmB := snapGet(t, b, "B cold", "s1", "health", fields, want)
	if again := snapGet(t, b, "B warm", "s1", "health", fields, want); again != warmB {
		t.Fatalf("store B does not cache")
	}

	// Consent withdrawn through B.
	snapWrite(t, b, func(tx steward.Tx) error {
		return tx.AddConsentEvent(ctx, snapEvent("ev-2", "s1", "health", steward.ConsentWithdraw, 2*time.Minute))
	})
	want = &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: withdrawn("ev-2", 2*time.Minute),
		Fields: []steward.SealedField{name, phone}}
	if got := snapGet(t, a, "A after B withdrew consent", "s1", "health", fields, want); got == warm {
		t.Errorf("store A served its snapshot cached before store B withdrew the consent")
	}
	warm = snapGet(t, a, "A warm again", "s1", "health", fields, want)

	// Field erased through B.
	snapWrite(t, b, func(tx steward.Tx) error { return tx.DeleteFields(ctx, "s1", []string{"phone"}) })
	want = &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: withdrawn("ev-2", 2*time.Minute),
		Fields: []steward.SealedField{name}}
	if got := snapGet(t, a, "A after B erased a field", "s1", "health", fields, want); got == warm {
		t.Errorf("store A served its snapshot cached before store B erased a field")
	}

	// And the other way round: B's cache sees A's writes.
	snapGet(t, b, "B warm", "s1", "health", fields, want)
	snapWrite(t, a, func(tx steward.Tx) error { return tx.CancelSubject(ctx, "s1", snapAt(time.Hour)) })
	want = &steward.PurposeSnapshot{Status: steward.SubjectCancelled, Consent: withdrawn("ev-2", 2*time.Minute),
		Fields: []steward.SealedField{name}}
	snapGet(t, b, "B after A cancelled the account", "s1", "health", fields, want)
	snapGet(t, a, "A after A cancelled the account", "s1", "health", fields, want)
}

// snapHelperEnv names the database the helper process works on, and
// snapHelperModeEnv what it does there.
const (
	snapHelperEnv     = "STEWARD_SNAPSHOT_HELPER_DB"
	snapHelperModeEnv = "STEWARD_SNAPSHOT_HELPER_MODE"
)

// TestSnapshotHelperProcess is not a test: run by the tests below in a process
// of its own, it either (mode "write") withdraws s1's health consent and erases
// its phone, as the CLI would while the server runs, or (mode "after-close")
// reads a purpose snapshot from a closed store.
func TestSnapshotHelperProcess(t *testing.T) {
	path := os.Getenv(snapHelperEnv)
	if path == "" {
		return // run as a test, it does nothing
	}
	ctx := context.Background()
	s, err := OpenStore(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	switch mode := os.Getenv(snapHelperModeEnv); mode {
	case "write":
		if err := s.Write(ctx, func(tx steward.Tx) error {
			if err := tx.AddConsentEvent(ctx, snapEvent("ev-2", "s1", "health", steward.ConsentWithdraw, 2*time.Minute)); err != nil {
				return err
			}
			return tx.DeleteFields(ctx, "s1", []string{"phone"})
		}); err != nil {
			t.Fatal(err)
		}
	case "after-close":
		s.Close()
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		snap, err := s.PurposeSnapshot(ctx, "s1", "health", []string{"name"})
		if err == nil {
			t.Fatalf("PurposeSnapshot on a closed store: %+v, no error", snap)
		}
		t.Logf("PurposeSnapshot on a closed store: %v", err)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// snapHelper runs TestSnapshotHelperProcess in mode on path.
func snapHelper(t *testing.T, path, mode string) ([]byte, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSnapshotHelperProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), snapHelperEnv+"="+path, snapHelperModeEnv+"="+mode)
	return cmd.CombinedOutput()
}

func TestSnapshotCacheOtherProcess(t *testing.T) {
	path := snapPath(t)
	a := snapOpen(t, path)
	snapSeed(t, a)
	name := snapField("s1", "name", "sealed-name", 0)
	phone := snapField("s1", "phone", "sealed-phone", time.Second)
	fields := []string{"name", "phone"}
	want := &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-1", time.Minute),
		Fields: []steward.SealedField{name, phone}}
	warm := snapGet(t, a, "cold", "s1", "health", fields, want)
	if again := snapGet(t, a, "warm", "s1", "health", fields, want); again != warm {
		t.Fatalf("the store does not cache")
	}

	if out, err := snapHelper(t, path, "write"); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}

	want = &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: withdrawn("ev-2", 2*time.Minute),
		Fields: []steward.SealedField{name}}
	if got := snapGet(t, a, "after another process wrote", "s1", "health", fields, want); got == warm {
		t.Errorf("served the snapshot cached before another process withdrew the consent and erased a field")
	}
}

func TestSnapshotCacheFailedWrite(t *testing.T) {
	ctx := context.Background()
	s := snapOpen(t, snapPath(t))
	snapSeed(t, s)
	fields := []string{"name", "phone"}
	want := &steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted("ev-1", time.Minute),
		Fields: []steward.SealedField{snapField("s1", "name", "sealed-name", 0), snapField("s1", "phone", "sealed-phone", time.Second)}}
	warm := snapGet(t, s, "warm", "s1", "health", fields, want)

	errBoom := errors.New("boom")
	if err := s.Write(ctx, func(tx steward.Tx) error {
		if err := tx.AddConsentEvent(ctx, snapEvent("ev-2", "s1", "health", steward.ConsentWithdraw, 2*time.Minute)); err != nil {
			return err
		}
		if err := tx.DeleteFields(ctx, "s1", []string{"phone"}); err != nil {
			return err
		}
		// Inside the transaction the change is visible, not committed.
		if snap, err := tx.PurposeSnapshot(ctx, "s1", "health", fields); err != nil || snap.Consent.Granted || len(snap.Fields) != 1 {
			return fmt.Errorf("inside the failing write: %+v, %v", snap, err)
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("failing write: %v, want %v", err, errBoom)
	}
	if got := snapGet(t, s, "after a failed write", "s1", "health", fields, want); got != warm {
		t.Logf("a write that committed nothing turned the cached snapshot out (allowed, only slower)")
	}

	// A failed write queued with a good one: only the good one is seen.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = s.Write(ctx, func(tx steward.Tx) error {
			if err := tx.DeleteAllFields(ctx, "s1"); err != nil {
				return err
			}
			return errBoom
		})
	}()
	go func() {
		defer wg.Done()
		errs[1] = s.Write(ctx, func(tx steward.Tx) error {
			return tx.AddConsentEvent(ctx, snapEvent("ev-3", "s1", "health", steward.ConsentWithdraw, 3*time.Minute))
		})
	}()
	wg.Wait()
	if !errors.Is(errs[0], errBoom) || errs[1] != nil {
		t.Fatalf("writes: %v, %v; want %v, nil", errs[0], errs[1], errBoom)
	}
	want.Consent = withdrawn("ev-3", 3*time.Minute)
	snapGet(t, s, "after a failed and a good write", "s1", "health", fields, want)
}

func TestSnapshotCacheErrorsNotCached(t *testing.T) {
	ctx := context.Background()
	path := snapPath(t)
	s := snapOpen(t, path)
	b := snapOpen(t, path)
	fields := []string{"name"}
	for i := range 2 {
		snap, err := s.PurposeSnapshot(ctx, "s1", "health", fields)
		if steward.ErrorCode(err) != steward.ENOTFOUND || snap != nil {
			t.Fatalf("read %d of an unknown subject: %+v, %v; want ENOTFOUND", i+1, snap, err)
		}
	}
	s.snapshots.mu.RLock()
	n := len(s.snapshots.m)
	s.snapshots.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d snapshots cached after reads that failed", n)
	}

	snapWrite(t, s, func(tx steward.Tx) error { return tx.CreateSubject(ctx, snapSubject("s1")) })
	snapGet(t, s, "created here", "s1", "health", fields, &steward.PurposeSnapshot{Status: steward.SubjectActive})

	// Created by another store, after this one found no such subject.
	for i := range 2 {
		if _, err := s.PurposeSnapshot(ctx, "s2", "health", fields); steward.ErrorCode(err) != steward.ENOTFOUND {
			t.Fatalf("read %d of s2: %v; want ENOTFOUND", i+1, err)
		}
	}
	snapWrite(t, b, func(tx steward.Tx) error {
		if err := tx.CreateSubject(ctx, snapSubject("s2")); err != nil {
			return err
		}
		return tx.PutFields(ctx, []steward.SealedField{snapField("s2", "name", "sealed-s2", 0)})
	})
	snapGet(t, s, "created by another store", "s2", "health", fields, &steward.PurposeSnapshot{Status: steward.SubjectActive,
		Fields: []steward.SealedField{snapField("s2", "name", "sealed-s2", 0)}})
}

// TestSnapshotCacheConcurrent reads while two stores on one file commit consent
// changes: a read that starts after a write returned must see that write or a
// later one, never a snapshot cached before it.
func TestSnapshotCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	path := snapPath(t)
	a := snapOpen(t, path)
	b := snapOpen(t, path)
	snapWrite(t, a, func(tx steward.Tx) error {
		if err := tx.CreateSubject(ctx, snapSubject("s1")); err != nil {
			return err
		}
		return tx.AddConsentEvent(ctx, snapEvent("ev-00000", "s1", "health", steward.ConsentGrant, 0))
	})

	const writes = 300
	var done atomic.Int64 // highest event number whose write returned
	var wg sync.WaitGroup
	stop := make(chan struct{})
	failed := make(chan string, 16)
	fail := func(format string, args ...any) {
		select {
		case failed <- fmt.Sprintf(format, args...):
		default:
		}
	}
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				before := done.Load()
				snap, err := a.PurposeSnapshot(ctx, "s1", "health", nil)
				if err != nil {
					fail("reader %d: %v", r, err)
					return
				}
				var n int64
				if _, err := fmt.Sscanf(snap.Consent.EventID, "ev-%d", &n); err != nil {
					fail("reader %d: event id %q", r, snap.Consent.EventID)
					return
				}
				if n < before {
					fail("reader %d: read event %d after write %d had returned (stale snapshot)", r, n, before)
					return
				}
				if wantGranted := n%2 == 0; snap.Consent.Granted != wantGranted {
					fail("reader %d: event %d granted %v", r, n, snap.Consent.Granted)
					return
				}
			}
		}()
	}
	for i := int64(1); i <= writes; i++ {
		w := a
		if i%3 != 0 {
			w = b // most writes from the other store
		}
		action := steward.ConsentWithdraw
		if i%2 == 0 {
			action = steward.ConsentGrant
		}
		if err := w.Write(ctx, func(tx steward.Tx) error {
			return tx.AddConsentEvent(ctx, snapEvent(fmt.Sprintf("ev-%05d", i), "s1", "health", action, time.Duration(i)*time.Second))
		}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("write %d: %v", i, err)
		}
		done.Store(i)
		select {
		case msg := <-failed:
			close(stop)
			wg.Wait()
			t.Fatal(msg)
		default:
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-failed:
		t.Fatal(msg)
	default:
	}
	snap, err := a.PurposeSnapshot(ctx, "s1", "health", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&steward.PurposeSnapshot{Status: steward.SubjectActive, Consent: granted(fmt.Sprintf("ev-%05d", writes), writes*time.Second)}, snap, snapCmp); diff != "" {
		t.Errorf("final snapshot (-want +got):\n%s", diff)
	}
}

// TestSnapshotCacheAfterClose reads from a closed store (or one being closed
// while a request is still in flight): an error, not the end of the process.
func TestSnapshotCacheAfterClose(t *testing.T) {
	path := snapPath(t)
	s := snapOpen(t, path)
	snapSeed(t, s)
	s.Close()
	if out, err := snapHelper(t, path, "after-close"); err != nil {
		if len(out) > 1500 {
			out = out[:1500]
		}
		t.Errorf("PurposeSnapshot on a closed store ended the process: %v\n%s", err, out)
	}
}
