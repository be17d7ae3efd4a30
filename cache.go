package jwtguard

import (
	"sync"
	"time"
)

// Verified-token cache. Clients send the same token on many requests; a
// hit skips parsing and the signature check (tens of microseconds for
// RS256/ES256) and only re-checks expiry. Only successes are cached, keyed
// by the exact token string: strict base64 gives every token one spelling.
const (
	defaultTokenCacheSize = 1024
	// maxCacheAge bounds how long a verdict is reused, so that a key
	// removed from a JWKS stops verifying its tokens soon after.
	maxCacheAge = 5 * time.Minute
)

type cacheEntry struct {
	id *identity
	// until is when the entry stops being usable: the earlier of
	// exp+leeway and the cache age limit.
	until time.Time
}

type tokenCache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry
	max     int
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{entries: make(map[string]cacheEntry, max), max: max}
}

// get returns the cached identity for token if it is still valid at now.
func (c *tokenCache) get(token string, now time.Time) *identity {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	e, ok := c.entries[token]
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	if !now.Before(e.until) {
		c.mu.Lock()
		delete(c.entries, token)
		c.mu.Unlock()
		return nil
	}
	return e.id
}

// put remembers a verified identity; when full it evicts an arbitrary
// entry (Go's map iteration order is randomized), which needs no
// bookkeeping and cannot be steered by an attacker.
func (c *tokenCache) put(id *identity, now time.Time, leeway time.Duration) {
	if c == nil {
		return
	}
	until := now.Add(maxCacheAge)
	if !id.expires.IsZero() && id.expires.Add(leeway).Before(until) {
		until = id.expires.Add(leeway)
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[id.token] = cacheEntry{id: id, until: until}
	c.mu.Unlock()
}
