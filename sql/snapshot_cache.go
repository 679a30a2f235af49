package sql

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/stewardhq/steward"
)

// snapshotCacheMax bounds the purpose snapshots kept; when it is reached the
// cache starts again empty. An entry holds sealed values only (ciphertext), a
// consent state and a status: a few hundred bytes.
const snapshotCacheMax = 1 << 16

// snapshotCache keeps purpose snapshots read from a SQLite data store for as
// long as the database provably has not changed since they were read.
//
// Every commit to a database in WAL mode, by any connection of any process,
// rewrites the WAL-index header at the start of the database's "-shm" file
// (https://www.sqlite.org/walformat.html, section 2.2.1): its change counter
// (iChange) grows by one and its checksum changes. Readers of SQLite rely on this
// to see new commits. A cached snapshot carries the header read before the
// snapshot's own read began, and is served only while the header is still
// exactly that: any commit since, or a header being rewritten at the moment of
// the check, is a miss and the snapshot is read again. A consent withdrawn, a
// field erased or an account cancelled, here or by another process, is therefore
// seen by the very next read.
type snapshotCache struct {
	shm *shmHeader // nil when the mapping is not available: no caching

	mu  sync.RWMutex
	hdr walIndexHeader
	m   map[string]*steward.PurposeSnapshot
}

// snapshotKey encodes its parts length-prefixed, so no choice of strings (a
// subject id from a URL may hold anything) makes two different reads one key.
func snapshotKey(subjectID, purpose string, fields []string) string {
	var b strings.Builder
	for _, part := range append([]string{subjectID, purpose}, fields...) {
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return b.String()
}

// get returns the cached snapshot for key if the database has not changed since
// it was read, and the header to store a fresh read under (ok false: the header
// could not be read consistently, or the store is closed; do not store).
func (c *snapshotCache) get(key string) (snap *steward.PurposeSnapshot, h walIndexHeader, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if h, ok = c.shm.read(); !ok {
		return nil, h, false
	}
	if c.hdr == h {
		snap = c.m[key]
	}
	return snap, h, true
}

// close unmaps the header; later gets miss and nothing more is stored.
func (c *snapshotCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shm.close()
	c.shm, c.m = nil, nil
}

// put stores snap, read after header h was read. Entries read under another
// header are dropped first: none of them can be served again.
func (c *snapshotCache) put(h walIndexHeader, key string, snap *steward.PurposeSnapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shm == nil {
		return
	}
	if c.hdr != h || len(c.m) >= snapshotCacheMax {
		c.hdr, c.m = h, make(map[string]*steward.PurposeSnapshot)
	}
	c.m[key] = snap
}

// PurposeSnapshot returns what Tx.PurposeSnapshot returns, in a read transaction
// of its own, or on SQLite from memory while no commit has been made to the data
// store since the same snapshot was last read (see snapshotCache). The snapshot
// returned is shared: callers must not modify it.
func (s *Store) PurposeSnapshot(ctx context.Context, subjectID, purpose string, fields []string) (*steward.PurposeSnapshot, error) {
	c := s.snapshots
	if c == nil {
		return s.readSnapshot(ctx, subjectID, purpose, fields)
	}
	key := snapshotKey(subjectID, purpose, fields)
	snap, h, ok := c.get(key)
	if snap != nil {
		return snap, nil
	}
	snap, err := s.readSnapshot(ctx, subjectID, purpose, fields)
	if err == nil && ok {
		c.put(h, key, snap)
	}
	return snap, err
}

func (s *Store) readSnapshot(ctx context.Context, subjectID, purpose string, fields []string) (snap *steward.PurposeSnapshot, err error) {
	err = s.readTx(ctx, func(tx *Tx) error {
		snap, err = tx.PurposeSnapshot(ctx, subjectID, purpose, fields)
		return err
	})
	return snap, err
}
