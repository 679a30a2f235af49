package keyring

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// Keys for new subjects are made ahead, poolBatch at a time in one key-store
// transaction, and a new batch is started in the background once fewer than
// poolLow are left. A registration then costs no key-store commit of its own.
const (
	poolBatch = 128
	poolLow   = 64
)

// keyPool holds wrapped keys stored for subject ids that no subject has yet.
type keyPool struct {
	mu      sync.Mutex
	ready   []WrappedKey
	filling bool
	filled  chan struct{} // closed when the fill in progress ends
	err     error         // the last fill's error, for those who waited on it
	last    string        // the largest subject id made, read and set by one fill at a time
}

// NewSubjectKey returns the data key of a new subject, whose id is
// k.SubjectID() (steward.NewID: a UUIDv7), already stored. Keys are made ahead
// in batches, so most calls cost no key-store write; a process that stops
// leaves up to poolBatch+poolLow-1 stored keys that no subject ever used, which
// protect nothing. It returns the key store's errors, or ctx's while it waits
// for a batch.
func (r *Keyring) NewSubjectKey(ctx context.Context) (*SubjectKey, error) {
	p := &r.pool
	for {
		p.mu.Lock()
		if n := len(p.ready); n > 0 {
			w := p.ready[0]
			p.ready = p.ready[1:]
			if n-1 < poolLow && !p.filling {
				r.startFill(context.WithoutCancel(ctx))
			}
			p.mu.Unlock()
			if c, ok := r.store.(*cachedKeyStore); ok {
				c.put(w, c.now()) // read at once to seal the new subject's fields, and soon after
			}
			return r.unwrap(w)
		}
		if !p.filling {
			r.startFill(context.WithoutCancel(ctx))
		}
		wait := p.filled
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p.mu.Lock()
		err := p.err
		empty := len(p.ready) == 0
		p.mu.Unlock()
		if err != nil && empty {
			return nil, err
		}
	}
}

// newIDs returns n new subject ids, sorted.
func newIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = steward.NewID()
	}
	slices.Sort(ids)
	return ids
}

// startFill makes and stores a batch of keys in the background. p.mu is held.
func (r *Keyring) startFill(ctx context.Context) {
	p := &r.pool
	p.filling = true
	p.filled = make(chan struct{})
	go func() {
		// Ids handed out in ascending order keep the data store's inserts at the
		// right edge of its indexes, where a commit's rows share pages.
		// NewID is ordered by millisecond only, so a batch made within the
		// millisecond of the last could start below it: it is made again a
		// millisecond later (once: a clock set back is not waited for, the order
		// only saves pages).
		ids := newIDs(poolBatch)
		if ids[0] <= p.last {
			time.Sleep(time.Millisecond)
			ids = newIDs(poolBatch)
		}
		p.last = ids[len(ids)-1]
		batch := make([]WrappedKey, poolBatch)
		for i, id := range ids {
			batch[i] = r.wrapNew(id)
		}
		err := r.store.PutKeys(ctx, batch)
		p.mu.Lock()
		if err == nil {
			p.ready = append(p.ready, batch...)
			p.err = nil
		} else {
			p.err = fmt.Errorf("keyring: store keys for new subjects: %w", err)
		}
		p.filling = false
		close(p.filled)
		p.mu.Unlock()
	}()
}
