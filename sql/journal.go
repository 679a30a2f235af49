package sql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/stewardhq/steward"
)

// The access journal makes access-log entries durable cheaply on SQLite.
//
// Every purpose-bound read appends an entry to the access log before its answer
// leaves. Through the data path that is a SQLite transaction per group of
// appends on the access log's writer: statements, B-tree updates and a WAL
// commit, one group at a time, all on the readers' critical path. The journal
// takes the database off that path: appends waiting at the same moment form a
// group, which the writer goroutine writes to the end of a segment file with one
// write, and then their callers return. A mover moves written groups into the
// access_log table in large transactions, where the entries join the hash chain
// (Seq, PrevHash and Hash are assigned then), and records in the same
// transaction how far into the segment it has moved (access_journal.moved_to).
// A full segment whose groups are all moved is recycled for a later segment (its
// blocks are already written, so a write need not change the file's metadata),
// or deleted.
//
// Durability follows the store's synchronous setting. With FULL (the default) a
// group is written with O_DIRECT|O_DSYNC (or, where the file system refuses
// direct I/O, a write and fdatasync), so an entry is on disk before its read is
// answered. With NORMAL the write goes to the operating system's cache: an
// entry survives a crash of Steward, not of the machine, as SQLite's WAL
// commits do in that mode.
//
// Files. Segments live in a directory beside the access log
// (steward-access.journal/), mode 0600, journalSegmentSize bytes, zero-filled
// when created. Block 0 (journalBlock bytes) is the segment header; groups
// follow, each starting at a multiple of the segment's alignment (journalBlock
// for direct writes, 8 otherwise):
//
//	segment header  "SAJS", segment id uint64, alignment uint32,
//	                CRC-32C of the 16 bytes before it
//	group header    "SAJG", segment id uint64, group number uint64 (1, 2, 3…),
//	                payload length uint32, CRC-32C of header bytes 0–23 and payload
//	payload         records: length uint32, then JSON of journalRecord
//
// all integers little-endian; zeros pad a group to the alignment.
//
// Crashes. A group is acknowledged only after its write, so after a crash a
// segment holds every acknowledged group. Reading stops at the first group
// whose header or checksum is wrong, whose segment id is not the segment's, or
// whose number is not the next: that was never acknowledged, or is left from
// the segment's earlier use (a recycled segment gets a new id in its header
// before it gets its new name). When a store is opened it moves every segment no
// live process holds (recover), from the segment's moved_to on, so nothing is
// moved twice.
//
// Processes. A segment is locked (flock, exclusive) by the process writing it,
// from before it gets its name until after it is deleted; recovery skips
// segments it cannot lock, and segments deleted or renamed while it waited.
// Entries appended by another process reach the access_log table within that
// process's mover window (Options.JournalWindow); ReadAccess first waits until
// this process's own appends are in the table, so a process reads its own.
type accessJournal struct {
	db     *DB // the access log
	dir    string
	window time.Duration
	direct bool // FULL: synchronous writes
	log    *slog.Logger

	writeKick chan struct{} // cap 1: a group is waiting to be written
	moveKick  chan struct{} // cap 1: a written group is waiting to be moved
	urgent    chan struct{} // cap 1: a reader waits; move without waiting the window
	stopWrite chan struct{}
	stopMove  chan struct{}
	wrote     chan struct{} // closed when the writer has returned
	movedAll  chan struct{} // closed when the mover has returned

	mu       sync.Mutex
	closed   bool
	next     *journalGroup   // filling: written by the writer's next round
	groups   uint64          // groups created so far; a group's number is its order
	moved    uint64          // every group numbered up to here is moved, or failed
	queue    []*journalGroup // written (or failed), not yet moved; in number order
	queued   int             // entries in queue
	segs     []*journalSegment
	free     *journalSegment // recycled, ready for the writer
	moveErr  error           // the mover's last failure; nil after a success
	progress chan struct{}   // closed and replaced whenever moved, queue or moveErr change

	seg *journalSegment // the writer's current segment; writer only
	buf []byte          // the writer's block-aligned scratch
}

// journalBlock is the size of a segment's header and the alignment of groups
// written with direct I/O, which needs block-aligned offsets, lengths and
// buffers.
const journalBlock = 4096

// journalSegmentSize is the size of a segment file, a multiple of 256 KiB. A
// variable for tests.
var journalSegmentSize int64 = 4 << 20

// journalMaxGroup bounds a group's payload; a larger single append fails.
const journalMaxGroup = 1 << 20

// journalSweepInterval is how often a running store looks for segments left by
// a process that died, and moves them. A variable for tests.
var journalSweepInterval = 5 * time.Second

// journalListed, when set (by tests), runs in recover just after the journal
// directory is listed.
var journalListed func()

// journalMaxSegments bounds the segments in use (written to and not yet all
// moved): when the mover cannot keep up or the access log cannot be written,
// appends wait rather than fill the disk.
const journalMaxSegments = 8

// journalMaxQueued bounds the entries written but not yet moved; appends wait
// beyond it, so a stalled mover cannot grow memory without limit. A variable for
// tests.
var journalMaxQueued = 1 << 16

// journalWaitLimit bounds how long an append waits for room (journalMaxQueued,
// journalMaxSegments) while the mover cannot keep up, for instance when the
// access log's disk is full. Then the append fails with EUNAVAILABLE, and so
// does the read it records, instead of hanging. A variable for tests.
var journalWaitLimit = 5 * time.Second

const groupHeaderSize = 28

// journalRecord is the payload of one record: an access-log entry before it
// joins the chain. Short keys: the journal is written on every read.
type journalRecord struct {
	ID        string   `json:"i"`
	At        int64    `json:"t"` // microseconds since the Unix epoch, UTC
	ActorKind string   `json:"k"`
	ActorID   string   `json:"a"`
	Action    string   `json:"x"`
	SubjectID string   `json:"s,omitempty"`
	Purpose   string   `json:"p,omitempty"`
	Fields    []string `json:"f,omitempty"`
	Detail    string   `json:"d,omitempty"`
}

type journalGroup struct {
	num     uint64
	at      time.Time             // when the earliest of its appends arrived
	buf     []byte                // records
	entries []*steward.AuditEntry // copies owned by the journal
	done    chan struct{}         // closed when written, or failed
	err     error
	seg     *journalSegment // where it was written
	end     int64           // offset in seg after it
}

type journalSegment struct {
	name    string // file name in the journal directory
	lock    *os.File
	w       journalWriter
	align   int
	id      uint64
	off     int64  // end of the groups written
	n       uint64 // groups written
	sealed  bool   // no more groups will be written to it; mu
	pending int    // groups written to it and not yet moved; mu
}

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// JournalDir returns the directory of the access journal of the SQLite access log
// at path (steward-access.db → steward-access.journal).
func JournalDir(accessPath string) string {
	return strings.TrimSuffix(accessPath, filepath.Ext(accessPath)) + ".journal"
}

// openJournal recovers the segments no live process holds into db, then starts
// the journal's writer and mover. direct asks for synchronous writes.
func openJournal(ctx context.Context, db *DB, window time.Duration, direct bool) (*accessJournal, error) {
	if window <= 0 {
		window = 20 * time.Millisecond
	}
	j := &accessJournal{db: db, dir: JournalDir(db.name), window: window, direct: direct, log: db.opts.Logger,
		writeKick: make(chan struct{}, 1), moveKick: make(chan struct{}, 1), urgent: make(chan struct{}, 1),
		stopWrite: make(chan struct{}), stopMove: make(chan struct{}), wrote: make(chan struct{}), movedAll: make(chan struct{}),
		progress: make(chan struct{})}
	if err := j.recover(ctx); err != nil {
		return nil, err
	}
	go j.writer()
	go j.mover()
	return j, nil
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// append makes entries durable in the journal and returns; they reach the
// access_log table later (see accessJournal). It assigns missing IDs.
func (j *accessJournal) append(ctx context.Context, entries []*steward.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	arrived := time.Now()
	var buf []byte
	copies := make([]*steward.AuditEntry, len(entries))
	for i, e := range entries {
		if e.ID == "" {
			e.ID = steward.NewID()
		}
		c := *e
		c.At = c.At.UTC().Truncate(time.Microsecond)
		c.Fields = append([]string(nil), e.Fields...)
		copies[i] = &c
		payload, err := json.Marshal(journalRecord{ID: c.ID, At: micros(c.At), ActorKind: c.ActorKind, ActorID: c.ActorID,
			Action: c.Action, SubjectID: c.SubjectID, Purpose: c.Purpose, Fields: c.Fields, Detail: c.Detail})
		if err != nil {
			return steward.WrapError(steward.EINTERNAL, "encode an access-log entry", err)
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
		buf = append(buf, payload...)
	}
	if len(buf) > journalMaxGroup {
		return steward.Errorf(steward.EINTERNAL, "an access-log append of %d bytes is larger than a journal group", len(buf))
	}
	j.mu.Lock()
	// Wait while the mover lags far behind, or the group filling is full.
	var limit <-chan time.Time
	for !j.closed && (j.queued >= journalMaxQueued || j.next != nil && len(j.next.buf)+len(buf) > journalMaxGroup) {
		if limit == nil {
			t := time.NewTimer(journalWaitLimit)
			defer t.Stop()
			limit = t.C
		}
		ch := j.progress
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-limit:
			return steward.Errorf(steward.EUNAVAILABLE, "the access log cannot take more entries now (it is not being written); try again later")
		}
		j.mu.Lock()
	}
	if j.closed {
		j.mu.Unlock()
		return steward.Errorf(steward.EUNAVAILABLE, "the store is closed")
	}
	g := j.next
	if g == nil {
		j.groups++
		g = &journalGroup{num: j.groups, done: make(chan struct{}), at: arrived}
		j.next = g
	}
	if arrived.Before(g.at) {
		g.at = arrived // it waited for room longer than the group's first append
	}
	g.buf = append(g.buf, buf...)
	g.entries = append(g.entries, copies...)
	j.mu.Unlock()
	kick(j.writeKick)
	// Once queued, the entries will be written whatever ctx does: wait for the
	// outcome, so that the caller's answer matches the log.
	<-g.done
	return g.err
}

// writer writes groups, one at a time, until stopped; then it writes what is
// left (appends stop before the writer does).
func (j *accessJournal) writer() {
	defer close(j.wrote)
	for {
		stopping := false
		select {
		case <-j.writeKick:
		case <-j.stopWrite:
			stopping = true
		}
		j.mu.Lock()
		g := j.next
		j.next = nil
		j.mu.Unlock()
		if g != nil {
			g.err = j.write(g)
			j.mu.Lock()
			j.queue = append(j.queue, g) // one writer: groups arrive in number order
			j.queued += len(g.entries)
			j.broadcastLocked()
			j.mu.Unlock()
			close(g.done)
			kick(j.moveKick)
		}
		if stopping {
			return
		}
	}
}

// write appends g to the current segment with one write. After a failure the
// segment is sealed: after a failed synchronous write the file's state is
// unknown, so nothing more is written to it.
func (j *accessJournal) write(g *journalGroup) error {
	seg := j.seg
	if seg != nil && seg.off+int64(roundUp(groupHeaderSize+len(g.buf), seg.align)) > journalSegmentSize {
		j.seal(seg)
		seg = nil
	}
	if seg == nil {
		var err error
		// No append waits much longer than journalWaitLimit in all: the group's
		// first one has waited since g.at.
		if seg, err = j.segment(g.at.Add(journalWaitLimit)); err != nil {
			j.log.Error("access journal: no segment to write to", "err", err)
			return steward.WrapError(steward.EUNAVAILABLE, "the access journal cannot be written", err)
		}
		j.seg = seg
	}
	size := roundUp(groupHeaderSize+len(g.buf), seg.align)
	if cap(j.buf) < size {
		j.buf = alignedBuffer(max(size, 64<<10))
	}
	b := j.buf[:size]
	copy(b[0:4], "SAJG")
	binary.LittleEndian.PutUint64(b[4:12], seg.id)
	binary.LittleEndian.PutUint64(b[12:20], seg.n+1)
	binary.LittleEndian.PutUint32(b[20:24], uint32(len(g.buf)))
	copy(b[groupHeaderSize:], g.buf)
	clear(b[groupHeaderSize+len(g.buf):])
	binary.LittleEndian.PutUint32(b[24:28], crc32.Update(crc32.Checksum(b[0:24], journalCRC), journalCRC, g.buf))
	if _, err := seg.w.WriteAt(b, seg.off); err != nil {
		j.log.Error("access journal write failed; the segment is sealed", "segment", seg.name, "err", err)
		j.seal(seg)
		return steward.WrapError(steward.EUNAVAILABLE, "the access journal cannot be written", err)
	}
	seg.n++
	seg.off += int64(size)
	g.seg, g.end = seg, seg.off
	j.mu.Lock()
	seg.pending++
	j.mu.Unlock()
	return nil
}

func roundUp(n, align int) int { return (n + align - 1) / align * align }

// alignedBuffer returns n bytes (rounded up to journalBlock) starting on a
// journalBlock boundary in memory, as direct I/O needs.
func alignedBuffer(n int) []byte {
	n = roundUp(n, journalBlock)
	b := make([]byte, n+journalBlock)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & (journalBlock - 1)); r != 0 {
		off = journalBlock - r
	}
	return b[off : off+n : off+n]
}

// seal ends writes to seg; the mover recycles it once its groups are moved.
func (j *accessJournal) seal(seg *journalSegment) {
	j.mu.Lock()
	seg.sealed = true
	j.mu.Unlock()
	if j.seg == seg {
		j.seg = nil
	}
	kick(j.moveKick)
}

// segment returns the recycled segment or a new one, after waiting, until
// deadline at most, while journalMaxSegments are in use.
func (j *accessJournal) segment(deadline time.Time) (*journalSegment, error) {
	j.mu.Lock()
	var limit <-chan time.Time
	for len(j.segs) >= journalMaxSegments && !j.closed {
		if limit == nil {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			limit = t.C
		}
		ch := j.progress
		j.mu.Unlock()
		kick(j.moveKick)
		select {
		case <-ch:
		case <-limit:
			return nil, fmt.Errorf("every journal segment (%d) is waiting for the mover", journalMaxSegments)
		}
		j.mu.Lock()
	}
	if len(j.segs) >= journalMaxSegments {
		j.mu.Unlock()
		return nil, errors.New("the store closed while every journal segment was waiting for the mover")
	}
	seg := j.free
	j.free = nil
	j.mu.Unlock()
	if seg == nil {
		var err error
		if seg, err = j.create(); err != nil {
			return nil, err
		}
	}
	j.mu.Lock()
	j.segs = append(j.segs, seg)
	j.mu.Unlock()
	return seg, nil
}

// create makes a new segment: locked, zero-filled and given its header under a
// temporary name that recovery ignores, then renamed, so no other process can
// take it for a dead one.
func (j *accessJournal) create() (*journalSegment, error) {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, err
	}
	tmp := filepath.Join(j.dir, steward.NewID()+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	seg := &journalSegment{lock: f, w: f, align: 8}
	fail := func(err error) (*journalSegment, error) {
		os.Remove(tmp)
		seg.close()
		return nil, err
	}
	if err := lockFile(f, false); err != nil {
		return fail(err)
	}
	// Written blocks, so that a synchronous write later changes data only.
	zeros := make([]byte, 256<<10)
	for off := int64(0); off < journalSegmentSize; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			return fail(err)
		}
	}
	if j.direct {
		if w, err := openDirect(tmp); err == nil {
			seg.w, seg.align = w, journalBlock
		} else {
			// The file system refuses direct I/O: write, then fdatasync.
			seg.w = &syncedFile{f}
		}
	}
	if err := j.rename(seg, tmp); err != nil {
		return fail(err)
	}
	return seg, nil
}

// rename gives seg a new id and name: first the header, synced, then the name,
// so a segment is never found under a name with the groups of its earlier use.
func (j *accessJournal) rename(seg *journalSegment, from string) error {
	var id [8]byte
	rand.Read(id[:])
	seg.id = binary.LittleEndian.Uint64(id[:])
	seg.off, seg.n, seg.sealed, seg.pending = journalBlock, 0, false, 0
	hdr := make([]byte, journalBlock)
	copy(hdr[0:4], "SAJS")
	binary.LittleEndian.PutUint64(hdr[4:12], seg.id)
	binary.LittleEndian.PutUint32(hdr[12:16], uint32(seg.align))
	binary.LittleEndian.PutUint32(hdr[16:20], crc32.Checksum(hdr[0:16], journalCRC))
	if _, err := seg.lock.WriteAt(hdr, 0); err != nil {
		return err
	}
	if err := seg.lock.Sync(); err != nil {
		return err
	}
	name := steward.NewID() + "-" + strconv.Itoa(os.Getpid()) + ".seg"
	if err := os.Rename(from, filepath.Join(j.dir, name)); err != nil {
		return err
	}
	seg.name = name
	return syncDir(j.dir)
}

func (s *journalSegment) close() {
	if d, ok := s.w.(*os.File); ok && d != s.lock {
		d.Close()
	}
	s.lock.Close() // last: the lock goes with it
}

// journalWriter writes a segment's groups: the locked descriptor itself
// (NORMAL), a direct one (O_DIRECT|O_DSYNC), or a syncedFile.
type journalWriter interface {
	WriteAt(b []byte, off int64) (int, error)
}

// syncedFile writes, then fdatasyncs.
type syncedFile struct{ f *os.File }

func (s *syncedFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := s.f.WriteAt(b, off)
	if err == nil {
		err = fdatasync(s.f)
	}
	return n, err
}

// mover moves written groups into the access_log table, gathering what arrives
// within the window into one transaction, until stopped; then it moves what is
// left.
func (j *accessJournal) mover() {
	defer close(j.movedAll)
	backoff := 50 * time.Millisecond
	sweep := time.NewTicker(journalSweepInterval)
	defer sweep.Stop()
	for {
		stopping := false
		select {
		case <-sweep.C:
			// Segments of a process that died while this one runs.
			if err := j.recover(context.Background()); err != nil {
				j.log.Error("access journal: recovering a dead process's segments failed", "err", err)
			}
			continue
		case <-j.moveKick:
			select {
			case <-time.After(j.window):
			case <-j.urgent:
			case <-j.stopMove:
				stopping = true
			}
		case <-j.urgent:
		case <-j.stopMove:
			stopping = true
		}
		err := j.moveQueued()
		if err != nil && !stopping {
			j.log.Error("access journal: moving entries into the access log failed; retrying", "err", err)
			select {
			case <-time.After(backoff):
			case <-j.stopMove:
				stopping = true
			}
			backoff = min(2*backoff, 5*time.Second)
			kick(j.moveKick)
		} else if err == nil {
			backoff = 50 * time.Millisecond
		}
		if stopping {
			if err == nil {
				err = j.moveQueued() // what the writer wrote while stopping
			}
			if err != nil {
				j.log.Error("access journal: entries left in the journal for recovery", "dir", j.dir, "err", err)
			}
			return
		}
	}
}

// moveQueued moves every queued group in one transaction and recycles the
// segments it finishes.
func (j *accessJournal) moveQueued() error {
	j.mu.Lock()
	groups, queued := j.queue, j.queued
	j.queue, j.queued = nil, 0
	j.mu.Unlock()
	var entries []*steward.AuditEntry
	ends := map[string]int64{}
	for _, g := range groups {
		if g.err != nil {
			continue
		}
		entries = append(entries, g.entries...)
		ends[g.seg.name] = max(ends[g.seg.name], g.end)
	}
	if len(entries) > 0 {
		if err := j.db.writeTx(context.Background(), func(tx *Tx) error { return tx.moveJournal(entries, ends) }); err != nil {
			j.mu.Lock()
			j.queue = append(groups, j.queue...)
			j.queued += queued
			j.moveErr = err
			j.broadcastLocked()
			j.mu.Unlock()
			return err
		}
	}
	j.mu.Lock()
	j.moveErr = nil
	if len(groups) > 0 {
		j.moved = groups[len(groups)-1].num
	}
	for _, g := range groups {
		if g.err == nil {
			g.seg.pending--
		}
	}
	var done []*journalSegment
	keep := j.segs[:0]
	for _, s := range j.segs {
		if s.sealed && s.pending == 0 {
			done = append(done, s)
		} else {
			keep = append(keep, s)
		}
	}
	j.segs = keep
	j.broadcastLocked()
	closed := j.closed
	j.mu.Unlock()
	return j.finish(done, !closed)
}

// finish recycles one finished segment (deletes the others) and
// then forgets their moved_to rows.
func (j *accessJournal) finish(segs []*journalSegment, recycle bool) error {
	if len(segs) == 0 {
		return nil
	}
	names := make([]string, len(segs))
	for i, s := range segs {
		names[i] = s.name
		path := filepath.Join(j.dir, s.name)
		j.mu.Lock()
		keep := recycle && j.free == nil
		j.mu.Unlock()
		if keep {
			if err := j.rename(s, path); err == nil {
				j.mu.Lock()
				j.free = s
				j.mu.Unlock()
				continue
			}
		}
		os.Remove(path)
		s.close() // after the removal: the lock is held until the name is gone
	}
	syncDir(j.dir)
	return j.db.writeTx(context.Background(), func(tx *Tx) error { return tx.forgetJournal(names) })
}

func (j *accessJournal) broadcastLocked() {
	close(j.progress)
	j.progress = make(chan struct{})
}

// sync waits until every entry appended before it was called is in the
// access_log table.
func (j *accessJournal) sync(ctx context.Context) error {
	j.mu.Lock()
	target := j.groups
	j.mu.Unlock()
	kicked := false
	for {
		j.mu.Lock()
		moved, err, ch := j.moved, j.moveErr, j.progress
		j.mu.Unlock()
		if moved >= target {
			return nil
		}
		if err != nil && kicked {
			return steward.WrapError(steward.EUNAVAILABLE, "the access log cannot take the journal's entries", err)
		}
		kick(j.urgent)
		kicked = true
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close writes and moves what is pending, deletes this process's segments and
// stops the journal. Entries the mover could not move stay in their segment for
// the next open to recover.
func (j *accessJournal) close() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	j.closed = true
	j.broadcastLocked() // appends waiting for room give up
	j.mu.Unlock()
	// The writer writes what is left before it returns; the mover starts its last
	// move only after that, so it sees every written group.
	close(j.stopWrite)
	<-j.wrote
	close(j.stopMove)
	<-j.movedAll
	j.mu.Lock()
	var done []*journalSegment
	if j.free != nil {
		done = append(done, j.free)
	}
	for _, s := range j.segs {
		if s.pending == 0 {
			done = append(done, s)
		} else {
			s.close() // left for recovery: the lock goes with the descriptor
		}
	}
	j.segs, j.free = nil, nil
	j.mu.Unlock()
	if err := j.finish(done, false); err != nil {
		j.log.Error("access journal: finished segments not forgotten", "err", err)
	}
}

// moveJournal appends entries to the chain and records how far into each segment
// (name → offset) the journal has been moved, in one transaction.
func (t *Tx) moveJournal(entries []*steward.AuditEntry, ends map[string]int64) error {
	ctx := context.Background()
	if err := t.AppendAudit(ctx, entries...); err != nil {
		return err
	}
	for seg, end := range ends {
		if _, err := t.exec(ctx, "record journal progress", `INSERT INTO access_journal (segment, moved_to) VALUES (?, ?)
			ON CONFLICT (segment) DO UPDATE SET moved_to = excluded.moved_to`, seg, end); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) forgetJournal(names []string) error {
	for _, name := range names {
		if _, err := t.exec(context.Background(), "forget journal segment", `DELETE FROM access_journal WHERE segment = ?`, name); err != nil {
			return err
		}
	}
	return nil
}

// recover moves the groups of every segment no live process holds, then deletes
// the segment, and removes segments that died while being created. A segment
// that cannot be read is an error: its groups are acknowledged reads that must
// not be lost silently.
func (j *accessJournal) recover(ctx context.Context) error {
	// The rows are read before the directory is listed: a segment gets its row
	// only while its file exists, and loses its file only when it is finished, so
	// a row read first whose file the listing lacks is finished. (Read after the
	// listing, a row could belong to a segment a live process created since.)
	var rowNames []string
	if err := j.db.readTx(ctx, func(tx *Tx) error {
		rows, err := tx.rows(ctx, "select journal", `SELECT segment FROM access_journal`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return mapErr(err, "scan journal")
			}
			rowNames = append(rowNames, s)
		}
		return mapErr(rows.Err(), "select journal")
	}); err != nil {
		return err
	}
	dirents, err := os.ReadDir(j.dir)
	if errors.Is(err, os.ErrNotExist) {
		dirents, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("sql: read the access journal %s: %w", j.dir, err)
	}
	if journalListed != nil {
		journalListed()
	}
	var names []string
	present := map[string]bool{}
	for _, d := range dirents {
		present[d.Name()] = true
		switch {
		case strings.HasSuffix(d.Name(), ".seg"):
			names = append(names, d.Name())
		case strings.HasSuffix(d.Name(), ".tmp"):
			j.removeDead(filepath.Join(j.dir, d.Name()))
		}
	}
	sort.Strings(names) // segment names begin with their creation time
	for _, name := range names {
		if err := j.recoverSegment(ctx, name); err != nil {
			return fmt.Errorf("sql: recover access journal segment %s: %w", filepath.Join(j.dir, name), err)
		}
	}
	// Rows of segments deleted before their row was: nothing left to move.
	var stale []string
	for _, name := range rowNames {
		if !present[name] {
			stale = append(stale, name)
		}
	}
	if len(stale) > 0 {
		return j.db.writeTx(ctx, func(tx *Tx) error { return tx.forgetJournal(stale) })
	}
	return nil
}

// removeDead removes a segment that died while being created: a .tmp file no
// live process holds, older than a minute (its creator locks it at once, but
// not in the same system call that creates it).
func (j *accessJournal) removeDead(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || time.Since(fi.ModTime()) < time.Minute {
		return
	}
	if lockFile(f, true) == nil {
		os.Remove(path)
	}
}

func (j *accessJournal) recoverSegment(ctx context.Context, name string) error {
	path := filepath.Join(j.dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // finished and deleted by its owner meanwhile
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(f, true); err != nil {
		if errors.Is(err, errLocked) {
			return nil // a live process writes it
		}
		return err
	}
	// Locked: but the owner may have deleted or renamed it after we opened it
	// and before it let go of the lock; then it is not this segment any more.
	if fi, err := f.Stat(); err != nil {
		return err
	} else if pi, err := os.Stat(path); err != nil || !os.SameFile(fi, pi) {
		return nil
	}
	var movedTo int64
	if err := j.db.readTx(ctx, func(tx *Tx) error {
		err := tx.row(ctx, `SELECT moved_to FROM access_journal WHERE segment = ?`, name).Scan(&movedTo)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return mapErr(err, "read journal progress")
	}); err != nil {
		return err
	}
	recs, ends, err := readSegment(f, movedTo)
	if err != nil {
		return err
	}
	recovered := len(recs)
	for len(recs) > 0 {
		n := min(len(recs), 4096)
		batch, end := recs[:n], ends[n-1]
		if err := j.db.writeTx(ctx, func(tx *Tx) error { return tx.moveJournal(batch, map[string]int64{name: end}) }); err != nil {
			return err
		}
		recs, ends = recs[n:], ends[n:]
	}
	if recovered > 0 {
		j.log.Info("access journal segment recovered", "segment", name, "entries", recovered)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	syncDir(j.dir)
	return j.db.writeTx(ctx, func(tx *Tx) error { return tx.forgetJournal([]string{name}) })
}

// readSegment reads the entries of a segment's groups that end after offset
// movedTo, each with the offset after its group. It stops at the first group
// that is not whole, not this segment's or out of order: the end of what was
// acknowledged.
func readSegment(f *os.File, movedTo int64) ([]*steward.AuditEntry, []int64, error) {
	hdr := make([]byte, groupHeaderSize)
	if _, err := f.ReadAt(hdr[:20], 0); err != nil {
		return nil, nil, nil // never got a header: nothing was written
	}
	if string(hdr[0:4]) != "SAJS" || binary.LittleEndian.Uint32(hdr[16:20]) != crc32.Checksum(hdr[0:16], journalCRC) {
		return nil, nil, nil
	}
	id, align := binary.LittleEndian.Uint64(hdr[4:12]), int(binary.LittleEndian.Uint32(hdr[12:16]))
	if align != 8 && align != journalBlock {
		return nil, nil, fmt.Errorf("segment header gives alignment %d", align)
	}
	var out []*steward.AuditEntry
	var ends []int64
	off := int64(journalBlock)
	for n := uint64(1); ; n++ {
		if _, err := f.ReadAt(hdr, off); err != nil {
			return out, ends, nil
		}
		size := binary.LittleEndian.Uint32(hdr[20:24])
		if string(hdr[0:4]) != "SAJG" || binary.LittleEndian.Uint64(hdr[4:12]) != id ||
			binary.LittleEndian.Uint64(hdr[12:20]) != n || size > journalMaxGroup {
			return out, ends, nil
		}
		payload := make([]byte, size)
		if _, err := f.ReadAt(payload, off+groupHeaderSize); err != nil {
			return out, ends, nil
		}
		if crc32.Update(crc32.Checksum(hdr[0:24], journalCRC), journalCRC, payload) != binary.LittleEndian.Uint32(hdr[24:28]) {
			return out, ends, nil
		}
		end := off + int64(roundUp(groupHeaderSize+int(size), align))
		if end > movedTo {
			for p := payload; len(p) > 0; {
				if len(p) < 4 || int(binary.LittleEndian.Uint32(p)) > len(p)-4 {
					return nil, nil, fmt.Errorf("group %d at offset %d holds a truncated record", n, off)
				}
				rec, rest := p[4:4+binary.LittleEndian.Uint32(p)], p[4+binary.LittleEndian.Uint32(p):]
				var r journalRecord
				if err := json.Unmarshal(rec, &r); err != nil {
					// A whole group with a good checksum that does not decode was
					// written by something else: refuse rather than guess.
					return nil, nil, fmt.Errorf("group %d at offset %d does not decode: %w", n, off, err)
				}
				out = append(out, &steward.AuditEntry{ID: r.ID, At: fromMicros(r.At), ActorKind: r.ActorKind, ActorID: r.ActorID,
					Action: r.Action, SubjectID: r.SubjectID, Purpose: r.Purpose, Fields: r.Fields, Detail: r.Detail})
				ends = append(ends, end)
				p = rest
			}
		}
		off = end
	}
}
