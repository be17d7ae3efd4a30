package jwtguard

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestCachedTokenStillExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := hmacHandler(t)
	h.now = func() time.Time { return now }
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	token := hs256(t, claims{"sub": "u", "exp": now.Add(10 * time.Second).Unix()})
	first, err := h.verifier.verify(token)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := h.verifier.verify(token); again != first {
		t.Fatal("second verification did not come from the cache")
	}
	now = now.Add(39 * time.Second) // exp + 29s: inside the 30s leeway
	if _, err := h.verifier.verify(token); err != nil {
		t.Fatalf("inside leeway: %v", err)
	}
	now = now.Add(time.Second) // exp + leeway
	if _, err := h.verifier.verify(token); err != errExpired {
		t.Fatalf("cached token past exp+leeway: %v, want %v", err, errExpired)
	}
}

func TestCacheAgeAndSizeAreBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTokenCache(2)
	for i, tok := range []string{"a", "b", "c", "d"} {
		c.put(&identity{token: tok}, now, 0)
		if len(c.entries) > 2 {
			t.Fatalf("after %d puts the cache holds %d entries", i+1, len(c.entries))
		}
	}
	c.put(&identity{token: "e"}, now, 0)
	if c.get("e", now.Add(maxCacheAge-time.Second)) == nil {
		t.Fatal("entry gone before its age limit")
	}
	if c.get("e", now.Add(maxCacheAge)) != nil {
		t.Fatal("entry outlived the age limit")
	}
	if newTokenCache(-1).get("x", now) != nil {
		t.Fatal("a disabled cache returned an entry")
	}
}
