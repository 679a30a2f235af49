//go:build linux

package sql

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// These tests check the access journal (journal.go): an acknowledged Audit is
// never lost, whatever moment the process dies at, and never moved twice.
// A crash is simulated by copying the data directory while the store is open
// (the copy holds what the disk holds; no process holds its segments).

var journalModes = []string{"FULL", "NORMAL"}

func jOpen(t *testing.T, path, mode string, window time.Duration) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), path, Options{Synchronous: mode, JournalWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.journal == nil {
		t.Fatal("the SQLite store has no access journal")
	}
	return s
}

func jEntry(i int) *steward.AuditEntry {
	return &steward.AuditEntry{ID: fmt.Sprintf("e-%05d", i), At: snapAt(time.Duration(i) * time.Millisecond), ActorKind: "app",
		ActorID: "risk-engine", Action: steward.AuditRead, SubjectID: fmt.Sprintf("s-%d", i%7), Purpose: "risk_control",
		Fields: []string{"imei", "imsi"}}
}

func jAudit(t *testing.T, s *Store, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Audit(context.Background(), jEntry(i)); err != nil {
			t.Fatalf("Audit %d: %v", i, err)
		}
	}
}

// jChain returns the ids in the access log, in chain order, after verifying
// the chain.
func jChain(t *testing.T, s *Store) []string {
	t.Helper()
	var ids []string
	err := s.ReadAccess(context.Background(), func(tx steward.Tx) error {
		seq, hash, err := tx.AuditHead(context.Background())
		if err != nil {
			return err
		}
		var v steward.AuditVerifier
		if err := tx.ScanAudit(context.Background(), 0, func(e steward.AuditEntry) error {
			ids = append(ids, e.ID)
			return v.Check(e)
		}); err != nil {
			return err
		}
		return v.CheckHead(seq, hash)
	})
	if err != nil {
		t.Fatalf("read the access log: %v", err)
	}
	return ids
}

func jWantIDs(t *testing.T, what string, got []string, from, to int) {
	t.Helper()
	want := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		want = append(want, jEntry(i).ID)
	}
	sorted := append([]string(nil), got...)
	sort.Strings(sorted)
	if strings.Join(sorted, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: access log holds %d entries, want %d (e-%05d…e-%05d), each once", what, len(got), len(want), from, to-1)
	}
}

// jCrashCopy copies dir's files, as a crash would leave them, to a new dir and
// returns the data store's path there.
func jCrashCopy(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		if strings.HasSuffix(path, "-shm") {
			return nil // shared memory does not survive a crash
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(to, rel), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(to, "steward.db")
}

// jRows counts the access_journal rows (segments with moved entries).
func jRows(t *testing.T, s *Store) int {
	t.Helper()
	var rows int
	if err := s.access.readTx(context.Background(), func(tx *Tx) error {
		return tx.row(context.Background(), `SELECT COUNT(*) FROM access_journal`).Scan(&rows)
	}); err != nil {
		t.Fatalf("count access_journal rows: %v", err)
	}
	return rows
}

func jSegments(t *testing.T, path string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(JournalDir(AccessDSN(path)), "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestJournalAcknowledgedEntriesSurviveACrash(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "steward.db")
			// The mover waits an hour: only a reader makes it move.
			s := jOpen(t, path, mode, time.Hour)
			jAudit(t, s, 0, 40)
			if got := jChain(t, s); len(got) != 40 { // moves 0–39, records moved_to
				t.Fatalf("after ReadAccess the access log holds %d entries, want 40", len(got))
			}
			jAudit(t, s, 40, 100) // acknowledged, in the journal only
			if n := len(jSegments(t, path)); n != 1 {
				t.Fatalf("%d journal segments, want 1", n)
			}

			crashed := jCrashCopy(t, filepath.Dir(path))
			r := jOpen(t, crashed, mode, time.Hour)
			jWantIDs(t, "after recovery", jChain(t, r), 0, 100)
			if segs := jSegments(t, crashed); len(segs) != 0 {
				t.Errorf("recovery left segments %v", segs)
			}
			if rows := jRows(t, r); rows != 0 {
				t.Errorf("access_journal rows after recovery: %d; want 0", rows)
			}

			// The original goes on, and a clean close leaves nothing behind.
			jAudit(t, s, 100, 110)
			jWantIDs(t, "the original", jChain(t, s), 0, 110)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if segs := jSegments(t, path); len(segs) != 0 {
				t.Errorf("a clean close left segments %v", segs)
			}
		})
	}
}

// A crash mid-write leaves a torn group after the last acknowledged one: it was
// never acknowledged and is ignored, as is anything after it.
func TestJournalIgnoresATornTail(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "steward.db")
			s := jOpen(t, path, mode, time.Hour)
			jAudit(t, s, 0, 30)
			crashed := jCrashCopy(t, filepath.Dir(path))
			segs := jSegments(t, crashed)
			if len(segs) != 1 {
				t.Fatalf("%d segments in the copy, want 1", len(segs))
			}
			// The next group, as a crash could leave it: a header announcing more
			// payload than was written, then the start of a record.
			seg := s.journal.seg
			f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			torn := make([]byte, 64)
			copy(torn, "SAJG")
			putU64(torn[4:], seg.id)
			putU64(torn[12:], seg.n+1)
			putU32(torn[20:], 500)
			copy(torn[28:], `{"i":"e-99999"`)
			if _, err := f.WriteAt(torn, seg.off); err != nil {
				t.Fatal(err)
			}
			f.Close()
			r := jOpen(t, crashed, mode, time.Hour)
			jWantIDs(t, "after recovery", jChain(t, r), 0, 30)
		})
	}
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

func putU32(b []byte, v uint32) {
	for i := range 4 {
		b[i] = byte(v >> (8 * i))
	}
}

// A segment another live store writes is not recovered by a second store on
// the same files: it waits for its owner, which moves it.
func TestJournalLeavesALiveSegmentAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	a := jOpen(t, path, "FULL", time.Hour)
	jAudit(t, a, 0, 20)
	b := jOpen(t, path, "FULL", time.Hour)
	if got := jChain(t, b); len(got) != 0 {
		t.Fatalf("the second store moved %d entries of the first's live segment", len(got))
	}
	if n := len(jSegments(t, path)); n != 1 {
		t.Fatalf("%d segments, want the first store's one", n)
	}
	jAudit(t, b, 20, 25)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	jWantIDs(t, "after the first store closed", jChain(t, b), 0, 25)
}

// Full segments are recycled: the journal keeps at most two files however much
// is written, and a recycled segment's earlier groups are never read again.
func TestJournalRecyclesSegments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	s := jOpen(t, path, "NORMAL", time.Hour)
	big := strings.Repeat("x", 20000) // five groups a megabyte: a segment in ~200
	n := 0
	audit := func(count int) {
		for range count {
			e := jEntry(n)
			e.Detail = big
			if err := s.Audit(context.Background(), e); err != nil {
				t.Fatalf("Audit %d: %v", n, err)
			}
			n++
		}
	}
	seen := map[string]bool{}
	for range 5 {
		audit(150)
		jChain(t, s) // moves, so full segments are finished
		segs := jSegments(t, path)
		if len(segs) > 2 {
			t.Fatalf("%d segment files, want at most 2", len(segs))
		}
		for _, name := range segs {
			seen[name] = true
		}
	}
	if len(seen) < 3 {
		t.Fatalf("only %d segment names over 750 large entries: segments were not rotated", len(seen))
	}
	audit(10) // unmoved, in a recycled segment full of older groups
	crashed := jCrashCopy(t, filepath.Dir(path))
	r := jOpen(t, crashed, "NORMAL", time.Hour)
	jWantIDs(t, "after recovery", jChain(t, r), 0, n)
}

// errWriter fails every write, as a full or failing disk does.
type errWriter struct{}

func (errWriter) WriteAt([]byte, int64) (int, error) {
	return 0, errors.New("injected: no space left on device")
}

// A failed write fails its appends with EUNAVAILABLE and seals the segment;
// the next appends go to a new segment, and nothing of the failed group is moved.
func TestJournalWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	s := jOpen(t, path, "FULL", time.Hour)
	jAudit(t, s, 0, 5)
	failed := s.journal.seg
	failed.w = errWriter{} // the writer is idle: Audit returned
	err := s.Audit(context.Background(), jEntry(5))
	if steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Fatalf("Audit on a failing disk: %v, want EUNAVAILABLE", err)
	}
	jAudit(t, s, 6, 10)
	if s.journal.seg == failed {
		t.Fatal("the journal still writes to the segment whose write failed")
	}
	ids := jChain(t, s)
	for _, id := range ids {
		if id == jEntry(5).ID {
			t.Fatal("the entry whose append failed reached the access log")
		}
	}
	if len(ids) != 9 {
		t.Fatalf("access log holds %d entries, want 9", len(ids))
	}
}

// Appends waiting in the journal when the store closes are moved, and Audit
// after Close fails cleanly.
func TestJournalCloseMovesEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	s := jOpen(t, path, "FULL", time.Hour)
	jAudit(t, s, 0, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(context.Background(), jEntry(50)); steward.ErrorCode(err) != steward.EUNAVAILABLE {
		t.Errorf("Audit after Close: %v, want EUNAVAILABLE", err)
	}
	r := jOpen(t, path, "FULL", time.Hour)
	jWantIDs(t, "after reopening", jChain(t, r), 0, 50)
}

const journalHelperEnv = "STEWARD_JOURNAL_HELPER_PATH"

// TestJournalHelperProcess is not a test: run by the tests below in a process
// of its own, it appends e-00000…e-00039 to the access log at the path in its
// environment (moving the first ten), says "ready" and waits to be killed.
func TestJournalHelperProcess(t *testing.T) {
	path := os.Getenv(journalHelperEnv)
	if path == "" {
		return // run as a test, it does nothing
	}
	s, err := OpenStore(context.Background(), path, Options{JournalWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	jAudit(t, s, 0, 10)
	jChain(t, s)
	jAudit(t, s, 10, 40)
	fmt.Println("ready")
	time.Sleep(time.Minute)
}

// A process that dies while another runs: the running one moves what the dead
// one acknowledged, within the sweep interval, without a restart.
func TestJournalRunningStoreRecoversADeadProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	defer func(d time.Duration) { journalSweepInterval = d }(journalSweepInterval)
	journalSweepInterval = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "steward.db")
	live := jOpen(t, path, "FULL", 20*time.Millisecond)

	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), journalHelperEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper process said %q", line)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for len(jChain(t, live)) < 40 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	jWantIDs(t, "after the sweep", jChain(t, live), 0, 40)
	if segs := jSegments(t, path); len(segs) != 0 {
		t.Errorf("the dead process's segments are still there: %v", segs)
	}
}

// A store opening while another creates a segment (and its moved_to row) must
// not take that row for a finished segment's: without it, a crash of the other
// store would move the segment's entries a second time.
func TestJournalRecoveryKeepsANewSegmentsRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	a := jOpen(t, path, "FULL", time.Hour)
	defer func() { journalListed = nil }()
	journalListed = func() {
		journalListed = nil
		jAudit(t, a, 0, 10)
		jChain(t, a) // moves: the new segment gets its row
	}
	jOpen(t, path, "FULL", time.Hour)
	if rows := jRows(t, a); rows != 1 {
		t.Fatalf("access_journal rows after the second store opened: %d; want the first store's 1", rows)
	}
	jAudit(t, a, 10, 15)
	crashed := jCrashCopy(t, filepath.Dir(path))
	r := jOpen(t, crashed, "FULL", time.Hour)
	jWantIDs(t, "after the first store crashed", jChain(t, r), 0, 15)
}

// A .tmp segment is removed only when no process holds it and it is old: its
// creator locks it just after creating it.
func TestJournalRemovesOnlyDeadTmpFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	dir := JournalDir(AccessDSN(path))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fresh, old := filepath.Join(dir, "fresh.tmp"), filepath.Join(dir, "old.tmp")
	for _, p := range []string{fresh, old} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	jOpen(t, path, "FULL", time.Hour)
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh .tmp (maybe being created) was removed: %v", err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dead .tmp was left: %v", err)
	}
}

// ReadAccess sees every entry this store appended before it, the last one
// included, even when the mover would wait an hour.
func TestJournalReadAccessSeesOwnAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.db")
	s := jOpen(t, path, "FULL", time.Hour)
	for i := range 5 {
		jAudit(t, s, i, i+1)
		jWantIDs(t, fmt.Sprintf("after append %d", i), jChain(t, s), 0, i+1)
	}
}

// An append that finds no room while the mover cannot keep up (here it waits an
// hour) fails with EUNAVAILABLE after journalWaitLimit instead of hanging, and
// leaves nothing in the access log; the appends before it are kept.
func TestJournalAppendWaitIsBounded(t *testing.T) {
	defer func(q int, w time.Duration) { journalMaxQueued, journalWaitLimit = q, w }(journalMaxQueued, journalWaitLimit)
	journalMaxQueued, journalWaitLimit = 5, 200*time.Millisecond
	path := filepath.Join(t.TempDir(), "steward.db")
	s := jOpen(t, path, "FULL", time.Hour)
	jAudit(t, s, 0, 5)
	done := make(chan error, 1)
	go func() { done <- s.Audit(context.Background(), jEntry(5)) }()
	select {
	case err := <-done:
		if steward.ErrorCode(err) != steward.EUNAVAILABLE {
			t.Fatalf("Audit with the journal full: %v, want EUNAVAILABLE", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Audit with the journal full still waits after 10 s; the limit is 200 ms")
	}
	jWantIDs(t, "access log", jChain(t, s), 0, 5)
}

// With every segment waiting for the mover, the writer waits journalWaitLimit
// for one, then fails the group's appends with EUNAVAILABLE instead of holding
// every later read forever.
func TestJournalSegmentWaitIsBounded(t *testing.T) {
	defer func(w time.Duration, z int64) { journalWaitLimit, journalSegmentSize = w, z }(journalWaitLimit, journalSegmentSize)
	journalWaitLimit = 200 * time.Millisecond
	path := filepath.Join(t.TempDir(), "steward.db")
	s := jOpen(t, path, "FULL", time.Hour)
	// Segments of three blocks: the header, then two groups of one block each
	// with direct I/O (more groups where writes are aligned to 8 bytes).
	journalSegmentSize = 3 * journalBlock
	const most = 5000
	n := 0
	for ; n < most; n++ {
		done := make(chan error, 1)
		go func() { done <- s.Audit(context.Background(), jEntry(n)) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Audit %d still waits after 10 s; the limit is 200 ms", n)
		}
		if err != nil {
			if steward.ErrorCode(err) != steward.EUNAVAILABLE {
				t.Fatalf("Audit %d with every segment in use: %v, want EUNAVAILABLE", n, err)
			}
			break
		}
	}
	if n == most {
		t.Fatalf("%d appends fitted into %d segments of three blocks", n, journalMaxSegments)
	}
	// Appends arriving one after another while the segments stay full each wait
	// about the limit from their own arrival, not a limit more for every group
	// ahead of them (found by a tester: reads failed after 5 to 9.6 s with a
	// limit of 5 s).
	journalWaitLimit = time.Second
	waits := make(chan time.Duration, 6)
	for i := range 6 {
		go func() {
			start := time.Now()
			if err := s.Audit(context.Background(), jEntry(most+i)); steward.ErrorCode(err) != steward.EUNAVAILABLE {
				t.Errorf("Audit with every segment in use: %v, want EUNAVAILABLE", err)
			}
			waits <- time.Since(start)
		}()
		time.Sleep(150 * time.Millisecond)
	}
	for range 6 {
		if w := <-waits; w > 1500*time.Millisecond {
			t.Errorf("an append waited %v for room; the limit is 1 s", w)
		}
	}
	jWantIDs(t, "access log", jChain(t, s), 0, n)
}
