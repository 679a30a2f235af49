package keyring

import (
	"context"
	"sync"
	"time"
)

// CachedKeyStore keeps recently read wrapped keys in memory in front of ks, so a
// read of a subject's data costs no key-store round trip. It holds wrapped keys
// only (useless without the KEK), for at most ttl, and at most max of them.
// DestroyKey through it evicts at once; a key destroyed by another process stays
// usable here for at most ttl, while that process has already deleted the data
// it protected. ttl 0 means 5 seconds; max 0 means 100,000.
func CachedKeyStore(ks KeyStore, ttl time.Duration, max int) KeyStore {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	if max <= 0 {
		max = 100_000
	}
	return &cachedKeyStore{ks: ks, ttl: ttl, max: max, now: time.Now, m: map[string]cachedKey{}}
}

type cachedKeyStore struct {
	ks  KeyStore
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.RWMutex
	m  map[string]cachedKey
}

type cachedKey struct {
	k       WrappedKey
	expires time.Time
}

func (c *cachedKeyStore) PutKey(ctx context.Context, k WrappedKey) error {
	if err := c.ks.PutKey(ctx, k); err != nil {
		return err
	}
	c.put(k, c.now()) // a new key is read at once to seal the new subject's fields
	return nil
}

// PutKeys stores keys made ahead; they are cached only when handed out.
func (c *cachedKeyStore) PutKeys(ctx context.Context, keys []WrappedKey) error {
	return c.ks.PutKeys(ctx, keys)
}

func (c *cachedKeyStore) put(k WrappedKey, now time.Time) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m) // rare; a full sweep is simpler than an LRU and refills in ttl
	}
	c.m[k.SubjectID] = cachedKey{k: k, expires: now.Add(c.ttl)}
	c.mu.Unlock()
}

func (c *cachedKeyStore) GetKey(ctx context.Context, subjectID string) (WrappedKey, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.m[subjectID]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.k, nil
	}
	k, err := c.ks.GetKey(ctx, subjectID)
	if err != nil {
		return k, err
	}
	c.put(k, now)
	return k, nil
}

func (c *cachedKeyStore) DestroyKey(ctx context.Context, subjectID string) ([]string, error) {
	c.mu.Lock()
	delete(c.m, subjectID)
	c.mu.Unlock()
	ids, err := c.ks.DestroyKey(ctx, subjectID)
	c.mu.Lock()
	delete(c.m, subjectID) // a read may have refilled it meanwhile
	c.mu.Unlock()
	return ids, err
}
