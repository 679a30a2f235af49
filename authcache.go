package steward

import (
	"sync"
	"time"
)

// AuthCacheTTL is how long a verified bearer token is trusted without a store
// read. Revocations in this process (sign-out, cancellation, token revoke) clear
// the cache at once; a revocation made by another process or node takes effect
// here within AuthCacheTTL.
const AuthCacheTTL = 5 * time.Second

// authCache maps a token's keyed hash to the actor it authenticated.
type authCache struct {
	mu  sync.RWMutex
	m   map[string]authEntry
	gen uint64 // bumped by clear: a lookup begun before a revocation is not cached
}

type authEntry struct {
	actor   Actor
	expires time.Time
}

// get returns the cached actor for hash, or the generation to pass to put.
func (c *authCache) get(hash []byte, now time.Time) (Actor, uint64, bool) {
	c.mu.RLock()
	e, ok := c.m[string(hash)]
	gen := c.gen
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return Actor{}, gen, false
	}
	return e.actor, gen, true
}

// put caches a for hash unless a revocation happened since get returned gen.
func (c *authCache) put(hash []byte, a Actor, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil || len(c.m) >= 100_000 {
		c.m = map[string]authEntry{}
	}
	c.m[string(hash)] = authEntry{actor: a, expires: expires}
}

// clear forgets every cached token: called on any revocation.
func (c *authCache) clear() {
	c.mu.Lock()
	c.m = nil
	c.gen++
	c.mu.Unlock()
}

// RevokedLocally clears the authentication cache; features that revoke sessions
// or tokens call it after their transaction commits.
func (s *Service) RevokedLocally() { s.auth.clear() }

func cacheUntil(now, tokenExpiry time.Time) time.Time {
	until := now.Add(AuthCacheTTL)
	if !tokenExpiry.IsZero() && tokenExpiry.Before(until) {
		return tokenExpiry
	}
	return until
}
