package jwtguard

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// jwksServer is a real JWKS (and OpenID discovery) server on loopback
// whose keys and failure mode a test changes as it goes.
type jwksServer struct {
	srv          *httptest.Server
	mu           sync.Mutex
	keys         []map[string]any
	mode         string // "" (serve keys), "500", "garbage", "hang", "huge", "loop"
	cacheControl string
	issuer       string // issuer in the discovery document; default the server URL
	jwksURI      string // jwks_uri in the discovery document; default /jwks
	release      chan struct{}
	// fetches counts JWKS requests, failures those answered with a
	// failure, discoveries discovery requests.
	fetches, failures, discoveries atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys, release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

func (s *jwksServer) URL() string    { return s.srv.URL + "/jwks" }
func (s *jwksServer) Issuer() string { return s.srv.URL }

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *jwksServer) setKeys(keys ...map[string]any) {
	s.set(func(s *jwksServer) { s.keys = append([]map[string]any{}, keys...) })
}
func (s *jwksServer) setMode(mode string) { s.set(func(s *jwksServer) { s.mode = mode }) }

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	mode, keys, cc := s.mode, s.keys, s.cacheControl
	issuer, jwksURI := cmp.Or(s.issuer, s.srv.URL), cmp.Or(s.jwksURI, s.srv.URL+"/jwks")
	s.mu.Unlock()
	switch r.URL.Path {
	case discoveryPath:
		s.discoveries.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": jwksURI})
		return
	case "/jwks":
	default:
		http.NotFound(w, r)
		return
	}
	s.fetches.Add(1)
	if mode != "" {
		s.failures.Add(1)
	}
	switch mode {
	case "500":
		http.Error(w, "down", http.StatusInternalServerError)
	case "garbage":
		_, _ = w.Write([]byte(`{"keys": [`))
	case "hang":
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
	case "huge":
		_, _ = w.Write([]byte(`{"keys":[], "pad":"` + strings.Repeat("x", 2<<20) + `"}`))
	case "loop":
		http.Redirect(w, r, "/jwks", http.StatusFound)
	default:
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf is the public JWK of a test key; alg may be empty.
func jwkOf(kid string, priv any, alg string) map[string]any {
	m := map[string]any{"kid": kid, "use": "sig"}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PrivateKey:
		raw, err := k.PublicKey.Bytes()
		if err != nil {
			panic(err)
		}
		size := (len(raw) - 1) / 2
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PrivateKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(k.Public().(ed25519.PublicKey))
	default:
		panic(fmt.Sprintf("jwkOf: %T", priv))
	}
	return m
}

// with returns a copy of a JWK with members changed (nil deletes).
func with(m map[string]any, kv ...any) map[string]any {
	c := map[string]any{}
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJWKBindsEachKeyToOneAlgorithm(t *testing.T) {
	k := testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaJWK := jwkOf("r", k.rsa, "")
	tests := []struct {
		name    string
		jwk     map[string]any
		wantAlg string // "" = skipped
		level   string // problem level when skipped
	}{
		{"RSA without alg is RS256", rsaJWK, "RS256", ""},
		{"RSA with alg PS384 stays PS384", with(rsaJWK, "alg", "PS384"), "PS384", ""},
		{"EC P-256 without alg is ES256", jwkOf("e", k.ec256, ""), "ES256", ""},
		{"EC P-384 without alg is ES384", jwkOf("e", k.ec384, ""), "ES384", ""},
		{"EC P-521 without alg is ES512", jwkOf("e", k.ec521, ""), "ES512", ""},
		{"Ed25519 without alg is EdDSA", jwkOf("o", k.ed, ""), "EdDSA", ""},
		{"padded base64 is tolerated", with(rsaJWK, "e", "AQAB"), "RS256", ""},
		{"oct is refused", map[string]any{"kty": "oct", "kid": "s", "k": b64([]byte(k.hmac))}, "", "warn"},
		{"oct with alg HS256 is refused", map[string]any{"kty": "oct", "kid": "s", "alg": "HS256", "k": b64([]byte(k.hmac))}, "", "warn"},
		{"RSA claiming HS256 is refused", with(rsaJWK, "alg", "HS256"), "", "warn"},
		{"RSA claiming none is refused", with(rsaJWK, "alg", "none"), "", "warn"},
		{"RSA claiming ES256 is refused", with(rsaJWK, "alg", "ES256"), "", "warn"},
		{"EC P-256 claiming ES384 is refused", jwkOf("e", k.ec256, "ES384"), "", "warn"},
		{"RSA 1024 is refused", jwkOf("s", small, ""), "", "warn"},
		{"RSA with exponent 1 is refused", with(rsaJWK, "e", "AQ"), "", "warn"},
		{"EC point off the curve is refused", with(jwkOf("e", k.ec256, ""), "y", b64(make([]byte, 32))), "", "warn"},
		{"unknown kty is skipped", map[string]any{"kty": "PQC", "kid": "q"}, "", "debug"},
		{"Ed448 is skipped", map[string]any{"kty": "OKP", "crv": "Ed448", "x": "AA"}, "", "debug"},
		{"encryption key is skipped", with(rsaJWK, "use", "enc"), "", "debug"},
		{"key_ops without verify is skipped", with(rsaJWK, "key_ops", []string{"encrypt"}), "", "debug"},
		{"missing n is refused", with(rsaJWK, "n", nil), "", "warn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"keys": []any{tt.jwk}})
			set, problems, err := parseJWKS(body, keyTemplate{label: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantAlg == "" {
				if len(set.keys) != 0 || len(problems) != 1 || problems[0].level != tt.level {
					t.Fatalf("keys %d, problems %+v; want the key skipped at level %s", len(set.keys), problems, tt.level)
				}
				return
			}
			if len(set.keys) != 1 || len(problems) != 0 {
				t.Fatalf("keys %d, problems %+v; want one key", len(set.keys), problems)
			}
			if got := set.keys[0].alg; got != tt.wantAlg {
				t.Fatalf("alg = %s, want %s", got, tt.wantAlg)
			}
			for alg := range algorithms {
				if got := set.lookup(alg, set.keys[0].kid, nil); (len(got) == 1) != (alg == tt.wantAlg) {
					t.Errorf("lookup(%s) = %d keys; the key must verify %s only", alg, len(got), tt.wantAlg)
				}
			}
		})
	}
}

func TestJWKSDocumentErrors(t *testing.T) {
	k := testKeys(t)
	a, b := jwkOf("same", k.rsa, ""), jwkOf("same", k.rsa2, "")
	body, _ := json.Marshal(map[string]any{"keys": []any{a, b, jwkOf("other", k.ec256, "")}})
	set, problems, err := parseJWKS(body, keyTemplate{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.keys) != 2 || set.byKID["same"][0].key.(*rsa.PublicKey).N.Cmp(k.rsa.N) != 0 {
		t.Fatalf("duplicate kid: want the first key kept and the second dropped, got %d keys", len(set.keys))
	}
	if len(problems) != 1 || problems[0].level != "error" || problems[0].kid != "same" {
		t.Fatalf("duplicate kid: problems %+v, want one error for kid same", problems)
	}
	for _, doc := range []string{``, `[]`, `null`, `{"keys": {}}`, `{}`, `{"keys": [`} {
		if _, _, err := parseJWKS([]byte(doc), keyTemplate{}); err == nil {
			t.Errorf("parseJWKS(%q) accepted a malformed document", doc)
		}
	}
	pinned, _, _ := parseJWKS(body, keyTemplate{kid: "other"})
	if len(pinned.keys) != 1 || pinned.keys[0].kid != "other" {
		t.Errorf("kid option: got %d keys, want only kid other", len(pinned.keys))
	}
}

func TestNextRefreshHonoursMaxAgeWithinBounds(t *testing.T) {
	tests := []struct {
		name, cc   string
		refresh    time.Duration
		minRefetch time.Duration
		want       time.Duration
	}{
		{"no header uses refresh_interval", "", 10 * time.Minute, 30 * time.Second, 10 * time.Minute},
		{"shorter max-age is honoured", "public, max-age=300", 10 * time.Minute, 30 * time.Second, 5 * time.Minute},
		{"longer max-age is capped at refresh_interval", "max-age=21600", 10 * time.Minute, 30 * time.Second, 10 * time.Minute},
		{"max-age=0 is raised to 1m", "max-age=0", 10 * time.Minute, 30 * time.Second, time.Minute},
		{"Auth0's 15s is raised to 1m", "public, max-age=15, stale-while-revalidate=15", 10 * time.Minute, 30 * time.Second, time.Minute},
		{"floor is min_refetch_interval when longer", "max-age=10", 10 * time.Minute, 2 * time.Minute, 2 * time.Minute},
		{"floor never exceeds refresh_interval", "max-age=1", 20 * time.Second, 30 * time.Second, 20 * time.Second},
		{"no-cache uses refresh_interval", "no-cache", 10 * time.Minute, 30 * time.Second, 10 * time.Minute},
		{"no-store wins over max-age", "max-age=60, no-store", 10 * time.Minute, 30 * time.Second, 10 * time.Minute},
		{"garbage max-age uses refresh_interval", "max-age=soon", 10 * time.Minute, 30 * time.Second, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.cc != "" {
				h.Set("Cache-Control", tt.cc)
			}
			if got := nextRefresh(h, tt.refresh, tt.minRefetch); got != tt.want {
				t.Fatalf("nextRefresh = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 40; n++ {
		d := backoff(n, 10*time.Minute)
		if d > 6*time.Minute || d < 800*time.Millisecond {
			t.Fatalf("backoff(%d) = %s, out of bounds", n, d)
		}
		if n <= 8 && d < prev/2 {
			t.Fatalf("backoff(%d) = %s shrank from %s", n, d, prev)
		}
		prev = d
	}
	if d := backoff(30, 2*time.Second); d > 3*time.Second {
		t.Fatalf("backoff exceeds a short refresh_interval: %s", d)
	}
}

func TestRemoteURLPolicy(t *testing.T) {
	tests := []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://example.auth0.com/.well-known/jwks.json", false, true},
		{"http://127.0.0.1:8080/jwks", false, true},
		{"http://localhost/jwks", false, true},
		{"http://[::1]:9/jwks", false, true},
		{"http://keycloak.internal/realms/x/protocol/openid-connect/certs", false, false},
		{"http://keycloak.internal/realms/x/protocol/openid-connect/certs", true, true},
		{"https://user:pass@example.com/jwks", false, false},
		{"ftp://example.com/jwks", false, false},
		{"/jwks", false, false},
		{"example.com/jwks", false, false},
	}
	for _, tt := range tests {
		_, err := parseRemoteURL(tt.url, tt.allowHTTP)
		if (err == nil) != tt.ok {
			t.Errorf("parseRemoteURL(%q, allow_http=%v) err = %v, want ok=%v", tt.url, tt.allowHTTP, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pass") {
			t.Errorf("error leaks URL credentials: %v", err)
		}
	}
}

// remoteFor provisions a remote source outside Caddy, against a real
// server, and releases it when the test ends.
func remoteFor(t *testing.T, s *Secret) *remoteKeys {
	t.Helper()
	alg, _ := canonicalAlg(s.Alg)
	cfg, err := remoteConfigFor(s, alg, s.Value)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := newTestContext()
	t.Cleanup(cancel)
	r, err := acquireRemote(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = remotePool.Delete(cfg.poolKey()) })
	return r
}

func TestRemoteKeysOutageKeepsLastGoodKeys(t *testing.T) {
	k := testKeys(t)
	for _, mode := range []string{"500", "garbage", "hang", "huge", "loop", "empty set", "connection refused"} {
		t.Run(mode, func(t *testing.T) {
			srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
			secret := &Secret{Alg: "jwks", Value: srv.URL(), Timeout: caddyDuration("300ms"), MaxResponseSize: 1 << 20}
			if mode == "connection refused" {
				r := remoteFor(t, secret)
				r.mu.Lock()
				r.jwksURI = deadURL(t)
				r.mu.Unlock()
				checkOutage(t, r, srv, "connect")
				return
			}
			r := remoteFor(t, secret)
			if mode == "empty set" {
				srv.setKeys()
			} else {
				srv.setMode(mode)
			}
			checkOutage(t, r, srv, map[string]string{
				"500": "status 500", "garbage": "decoding JWKS", "hang": "", "huge": "max_response_size",
				"loop": "redirects", "empty set": "no usable signing keys",
			}[mode])
		})
	}
}

func checkOutage(t *testing.T, r *remoteKeys, srv *jwksServer, wantErr string) {
	t.Helper()
	if got := r.lookup("RS256", "a", nil); len(got) != 1 {
		t.Fatalf("before the outage: %d keys for kid a, want 1", len(got))
	}
	c := r.fetch(false)
	<-c.done
	if c.err == nil || !strings.Contains(c.err.Error(), wantErr) {
		t.Fatalf("fetch error = %v, want one mentioning %q", c.err, wantErr)
	}
	if got := r.lookup("RS256", "a", nil); len(got) != 1 {
		t.Fatalf("after a failed fetch: %d keys for kid a, want the last good key kept", len(got))
	}
	if got := r.lookup("RS256", "a", nil)[0]; got.removed.Load() {
		t.Fatal("a failed fetch marked the last good key removed")
	}
}

func TestRedirectToPlainHTTPIsRefused(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 192.0.2.0/24 is TEST-NET-1: never dialled, the redirect is refused first.
		http.Redirect(w, r, "http://192.0.2.1/jwks", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	r := remoteFor(t, &Secret{Alg: "jwks", Value: srv.URL()})
	r.mu.Lock()
	r.jwksURI = redirect.URL
	r.mu.Unlock()
	c := r.fetch(false)
	<-c.done
	if c.err == nil || !strings.Contains(c.err.Error(), "plain http") {
		t.Fatalf("fetch error = %v, want the redirect to plain http refused", c.err)
	}
}

// TestUnknownKIDFloodFetchesOnce sends 1,000 tokens with random kids from
// 50 goroutines; the provider must see at most one extra request.
func TestUnknownKIDFloodFetchesOnce(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	h := provisioned(t, &Handler{TokenCacheSize: -1, Secrets: []*Secret{{Alg: "jwks", Value: srv.URL()}}}, time.Now())
	t.Cleanup(func() { _ = h.Cleanup() })
	before := srv.fetches.Load()
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				tok := sign(t, jwt.SigningMethodES256, k.ec256, validClaims(), "kid", fmt.Sprintf("random-%d-%d-%s", g, i, randomHex(8)))
				if _, err := h.verifier.verify(tok); err == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	got := srv.fetches.Load() - before
	t.Logf("1000 unknown kids: %d JWKS fetch(es)", got)
	if got > 1 || accepted.Load() != 0 {
		t.Fatalf("1000 unknown kids caused %d fetches (want at most 1) and %d acceptances (want 0)", got, accepted.Load())
	}
	// The source still works for its real key.
	if _, err := h.verifier.verify(sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a")); err != nil {
		t.Fatalf("known key after the flood: %v", err)
	}
}

func TestUnknownKIDRefetchIsRateLimited(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	r := remoteFor(t, &Secret{Alg: "jwks", Value: srv.URL(), MinRefetchInterval: caddyDuration("30s")})
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	r.mu.Lock()
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r.mu.Unlock()
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	base := srv.fetches.Load()
	steps := []struct {
		name    string
		advance time.Duration
		kid     string
		alg     string
		fetches int64 // cumulative
	}{
		{"first unknown kid fetches", 0, "x1", "RS256", 1},
		{"second within the interval does not", 10 * time.Second, "x2", "RS256", 1},
		{"a known kid never fetches", 0, "a", "RS256", 1},
		{"an HMAC alg never fetches", 30 * time.Second, "x3", "HS256", 1},
		{"after the interval it fetches again", 0, "x4", "RS256", 2},
		{"and is limited again", 29 * time.Second, "x5", "ES256", 2},
	}
	for _, s := range steps {
		advance(s.advance)
		r.refetch(s.alg, s.kid)
		if got := srv.fetches.Load() - base; got != s.fetches {
			t.Fatalf("%s: %d fetches, want %d", s.name, got, s.fetches)
		}
	}
}

func TestRemovedKeyInvalidatesCachedTokens(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""), jwkOf("b", k.rsa2, ""))
	h := provisioned(t, &Handler{Secrets: []*Secret{{Alg: "jwks", Value: srv.URL()}}}, time.Now())
	t.Cleanup(func() { _ = h.Cleanup() })
	tokA := sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a")
	tokB := sign(t, jwt.SigningMethodRS256, k.rsa2, validClaims(), "kid", "b")
	for _, tok := range []string{tokA, tokB} {
		if _, err := h.verifier.verify(tok); err != nil {
			t.Fatalf("before rotation: %v", err)
		}
	}
	idB, _ := h.verifier.verify(tokB)
	srv.setKeys(jwkOf("b", k.rsa2, ""))
	r := h.verifier.sources[1].(*remoteKeys)
	c := r.fetch(false)
	<-c.done
	if c.err != nil {
		t.Fatal(c.err)
	}
	if _, err := h.verifier.verify(tokA); !errors.Is(err, errNoKey) {
		t.Fatalf("cached token of a removed key: err = %v, want %v", err, errNoKey)
	}
	id, err := h.verifier.verify(tokB)
	if err != nil || id != idB {
		t.Fatalf("token of a kept key: err = %v, cached identity reused = %v", err, id == idB)
	}
}

func TestOIDCDiscovery(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		name    string
		setup   func(s *jwksServer)
		iss     string // token iss; "" = the issuer
		wantErr error
	}{
		{"discovery document followed", nil, "", nil},
		{"token from another issuer refused", nil, "https://evil.example", errIssuer},
		{"document naming another issuer refused", func(s *jwksServer) { s.issuer = "https://evil.example" }, "", errNoKey},
		{"document with trailing-slash issuer refused", func(s *jwksServer) { s.issuer = s.srv.URL + "/" }, "", errNoKey},
		{"jwks_uri over plain http to a remote host refused", func(s *jwksServer) { s.jwksURI = "http://192.0.2.1/jwks" }, "", errNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, jwkOf("a", k.ec256, "ES256"))
			if tt.setup != nil {
				srv.set(tt.setup)
			}
			h := provisioned(t, &Handler{Secrets: []*Secret{{Alg: "oidc", Value: srv.Issuer(), MinRefetchInterval: caddyDuration("1h")}}}, time.Now())
			t.Cleanup(func() { _ = h.Cleanup() })
			c := validClaims()
			c["iss"] = cmp.Or(tt.iss, srv.Issuer())
			_, err := h.verifier.verify(sign(t, jwt.SigningMethodES256, k.ec256, c, "kid", "a"))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("verify: err = %v, want %v", err, tt.wantErr)
			}
			if srv.discoveries.Load() == 0 {
				t.Fatal("the discovery document was never read")
			}
		})
	}
}

func TestRemoteSecretConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		secret Secret
		want   string
	}{
		{"plain http to a remote host", Secret{Alg: "jwks", Value: "http://idp.example/jwks"}, "plain http"},
		{"not a URL", Secret{Alg: "jwks", Value: "idp.example/jwks"}, "not an absolute"},
		{"empty", Secret{Alg: "oidc", Value: ""}, "URL is empty"},
		{"oidc issuer differs", Secret{Alg: "oidc", Value: "https://a.example", Issuer: "https://b.example"}, "differs"},
		{"refresh too short", Secret{Alg: "jwks", Value: "https://a.example/jwks", RefreshInterval: caddyDuration("10ms")}, "refresh_interval"},
		{"timeout too long", Secret{Alg: "jwks", Value: "https://a.example/jwks", Timeout: caddyDuration("2m")}, "timeout"},
		{"short secret option", Secret{Alg: "jwks", Value: "https://a.example/jwks", AllowShortSecret: true}, "HMAC"},
		{"response size over the cap", Secret{Alg: "jwks", Value: "https://a.example/jwks", MaxResponseSize: 1 << 30}, "max_response_size 1073741824 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alg, _ := canonicalAlg(tt.secret.Alg)
			_, err := remoteConfigFor(&tt.secret, alg, tt.secret.Value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	h := &Handler{Secrets: []*Secret{{Alg: "HS256", Value: strings.Repeat("k", 32), AllowHTTP: true}}}
	ctx, cancel := newTestContext()
	defer cancel()
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "for jwks and oidc") {
		t.Fatalf("remote option on a static secret: err = %v", err)
	}
}

// A closed loopback port, for a source that is down.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/jwks"
}

func TestRemoteSecretCaddyfileErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, site string
		want       []string
	}{
		{"plain http to a remote host", "jwt_guard {\n secret jwks http://idp.example/jwks\n}", []string{"uses plain http", "allow_http", "Caddyfile:3"}},
		{"relative URL", "jwt_guard {\n secret oidc idp.example\n}", []string{"not an absolute http(s) URL", "Caddyfile:3"}},
		{"bad refresh_interval", "jwt_guard {\n secret jwks https://idp.example/jwks {\n  refresh_interval often\n }\n}", []string{"refresh_interval \"often\" is not a duration", "Caddyfile:4"}},
		{"refresh_interval too short", "jwt_guard {\n secret jwks https://idp.example/jwks {\n  refresh_interval 1ms\n }\n}", []string{"refresh_interval 1ms is too short", "Caddyfile:3"}},
		{"bad max_response_size", "jwt_guard {\n secret jwks https://idp.example/jwks {\n  max_response_size big\n }\n}", []string{"max_response_size \"big\"", "Caddyfile:4"}},
		{"allow_http with an argument", "jwt_guard {\n secret jwks https://idp.example/jwks {\n  allow_http yes\n }\n}", []string{"Caddyfile:4"}},
		{"remote option on a static secret", "jwt_guard {\n secret HS256 " + testKeys(t).hmac + " {\n  refresh_interval 1m\n }\n}", []string{"are for jwks and oidc secrets", "Caddyfile:3"}},
		{"oidc issuer mismatch", "jwt_guard {\n secret oidc https://a.example {\n  issuer https://b.example\n }\n}", []string{"differs from the oidc issuer", "Caddyfile:3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := adaptError(t, tc.site)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("error %q does not contain %q", got, w)
				}
			}
		})
	}
}

// End-to-end through a real Caddy.

// refresherGoroutines counts the running refreshers, by their stacks.
func refresherGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "caddy-jwt-guard.(*remoteKeys).refresher(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// unloadAtEnd replaces the config when the test ends, before its JWKS
// servers close, so no refresher keeps polling a dead server.
func unloadAtEnd(t *testing.T) {
	t.Cleanup(func() {
		cfg := fmt.Sprintf("%s\n%s {\n\trespond idle\n}\n", globalOptions(), baseURL)
		resp, err := http.Post(fmt.Sprintf("http://localhost:%d/load", adminPort), "text/caddyfile", strings.NewReader(cfg))
		if err != nil {
			t.Errorf("unloading: %v", err)
			return
		}
		resp.Body.Close()
	})
}

func status(t *testing.T, tester *caddytest.Tester, path, token string) int {
	t.Helper()
	resp, _ := get(t, tester, baseURL+path, bearer(token))
	return resp.StatusCode
}

func TestJWKSThroughCaddy(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, "RS256"), jwkOf("b", k.ec256, ""))
	idp := newJWKSServer(t, jwkOf("o", k.ed, ""))
	unloadAtEnd(t)
	tester := startCaddy(t, fmt.Sprintf(`
	handle /jwks/* {
		jwt_guard {
			secret jwks %s
			token_cache_size -1
		}
		respond "ok {http.auth.user.id}"
	}
	handle /oidc/* {
		jwt_guard {
			secret oidc %s {
				audience api
			}
		}
		respond "ok"
	}`, srv.URL(), idp.Issuer()))

	oidcClaims := func(iss, aud string) claims {
		c := validClaims()
		c["iss"], c["aud"] = iss, aud
		return c
	}
	steps := []struct {
		name   string
		before func()
		path   string
		token  string
		want   int
	}{
		{"RSA key picked by kid", nil, "/jwks/x", sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a"), 200},
		{"EC key without alg picked by kid", nil, "/jwks/x", sign(t, jwt.SigningMethodES256, k.ec256, validClaims(), "kid", "b"), 200},
		{"kid of one key, signed by another", nil, "/jwks/x", sign(t, jwt.SigningMethodRS256, k.rsa2, validClaims(), "kid", "a"), 401},
		{"kid a with another RSA algorithm", nil, "/jwks/x", sign(t, jwt.SigningMethodPS256, k.rsa, validClaims(), "kid", "a"), 401},
		{"kid b with a wider curve algorithm", nil, "/jwks/x", sign(t, jwt.SigningMethodES384, k.ec384, validClaims(), "kid", "b"), 401},
		{"rotation: new kid picked up by the unknown-kid refetch",
			func() { srv.setKeys(jwkOf("b", k.ec256, ""), jwkOf("c", k.ed, "EdDSA")) },
			"/jwks/x", sign(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), "kid", "c"), 200},
		{"rotation: removed key refused", nil, "/jwks/x", sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a"), 401},
		{"rotation: kept key still accepted", nil, "/jwks/x", sign(t, jwt.SigningMethodES256, k.ec256, validClaims(), "kid", "b"), 200},
		{"oidc: issuer and audience match", nil, "/oidc/x", sign(t, jwt.SigningMethodEdDSA, k.ed, oidcClaims(idp.Issuer(), "api"), "kid", "o"), 200},
		{"oidc: token from another issuer", nil, "/oidc/x", sign(t, jwt.SigningMethodEdDSA, k.ed, oidcClaims("https://evil.example", "api"), "kid", "o"), 401},
		{"oidc: token without iss", nil, "/oidc/x", sign(t, jwt.SigningMethodEdDSA, k.ed, claims{"aud": "api", "exp": time.Now().Add(time.Hour).Unix()}, "kid", "o"), 401},
		{"oidc: wrong audience", nil, "/oidc/x", sign(t, jwt.SigningMethodEdDSA, k.ed, oidcClaims(idp.Issuer(), "web"), "kid", "o"), 401},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := status(t, tester, s.path, s.token); got != s.want {
			t.Errorf("%s: status %d, want %d", s.name, got, s.want)
		}
	}
	if idp.discoveries.Load() == 0 {
		t.Error("the OIDC discovery document was never read")
	}
}

func TestJWKSTimerPicksUpRotation(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	unloadAtEnd(t)
	tester := startCaddy(t, fmt.Sprintf(`
	jwt_guard {
		secret jwks %s {
			refresh_interval 1s
			min_refetch_interval 1h
		}
		token_cache_size -1
	}
	respond "ok"`, srv.URL()))
	tokA := sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a")
	tokC := sign(t, jwt.SigningMethodES256, k.ec256, validClaims(), "kid", "c")
	// Spend the unknown-kid budget for the hour, so only the timer can
	// pick up the rotation.
	if got := status(t, tester, "/", sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "spent")); got != 401 {
		t.Fatalf("unknown kid: status %d", got)
	}
	if got := status(t, tester, "/", tokA); got != 200 {
		t.Fatalf("before rotation: status %d", got)
	}
	srv.setKeys(jwkOf("c", k.ec256, ""))
	waitFor(t, "the refresh timer to add kid c", func() bool { return status(t, tester, "/", tokC) == 200 })
	if got := status(t, tester, "/", tokA); got != 401 {
		t.Fatalf("after rotation, removed key: status %d, want 401", got)
	}
}

func TestJWKSOutageThroughCaddyKeepsKnownKeys(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	unloadAtEnd(t)
	tester := startCaddy(t, fmt.Sprintf(`
	jwt_guard {
		secret jwks %s {
			refresh_interval 1s
			timeout 300ms
		}
		token_cache_size -1
	}
	respond "ok"`, srv.URL()))
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a")
	for _, mode := range []string{"500", "garbage", "hang", "huge"} {
		srv.setMode(mode)
		failed := srv.failures.Load()
		waitFor(t, "a failed refresh ("+mode+")", func() bool { return srv.failures.Load() > failed })
		if got := status(t, tester, "/", tok); got != 200 {
			t.Errorf("during outage %q: status %d, want 200 with the last good key", mode, got)
		}
	}
}

func TestJWKSDownAtStartup(t *testing.T) {
	k := testKeys(t)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "a")
	for _, mode := range []string{"500", "hang", "connection refused"} {
		t.Run(mode, func(t *testing.T) {
			srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
			url := srv.URL()
			if mode == "connection refused" {
				url = deadURL(t)
			} else {
				srv.setMode(mode)
			}
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			unloadAtEnd(t)
			global := strings.Replace(globalOptions(), "grace_period 1ns",
				"grace_period 1ns\n\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}", 1)
			start := time.Now()
			tester := startCaddyfile(t, fmt.Sprintf(`%s
%s {
	jwt_guard {
		secret jwks %s {
			timeout 500ms
		}
	}
	respond "ok"
}`, global, baseURL, url))
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("Caddy took %s to start with the JWKS down; want about the 500ms timeout", took)
			}
			if got := status(t, tester, "/", tok); got != 401 {
				t.Fatalf("source down: status %d, want 401", got)
			}
			waitFor(t, "the startup warning in the log", func() bool {
				b, _ := os.ReadFile(logFile)
				return strings.Contains(string(b), "no keys from remote source at startup")
			})
			if mode == "connection refused" {
				return
			}
			srv.setMode("")
			waitFor(t, "keys to arrive", func() bool { return status(t, tester, "/", tok) == 200 })
		})
	}
}

// TestJWKSUnknownKIDFloodThroughCaddy: 1,000 requests with random kids
// cost the provider at most one request per min_refetch_interval.
func TestJWKSUnknownKIDFloodThroughCaddy(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	unloadAtEnd(t)
	startCaddy(t, fmt.Sprintf(`
	jwt_guard {
		secret jwks %s
	}
	respond "ok"`, srv.URL()))
	before := srv.fetches.Load()
	tokens := make(chan string, 1000)
	for i := range 1000 {
		tokens <- sign(t, jwt.SigningMethodRS256, k.rsa2, validClaims(), "kid", fmt.Sprintf("flood-%d-%s", i, randomHex(8)))
	}
	close(tokens)
	var wg sync.WaitGroup
	var refused, other atomic.Int64
	start := time.Now()
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range tokens {
				req, _ := http.NewRequest(http.MethodGet, baseURL+"/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 401 {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fetches := srv.fetches.Load() - before
	t.Logf("1000 unknown kids through Caddy in %s: %d refused, %d JWKS fetch(es)", time.Since(start).Round(time.Millisecond), refused.Load(), fetches)
	if refused.Load() != 1000 || other.Load() != 0 {
		t.Errorf("%d refused, %d other; want all 1000 refused with 401", refused.Load(), other.Load())
	}
	if fetches > 1 {
		t.Errorf("the flood caused %d JWKS fetches; want at most 1 per 30s interval", fetches)
	}
}

func TestJWKSReloadLeaksNoGoroutines(t *testing.T) {
	k := testKeys(t)
	one := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	two := newJWKSServer(t, jwkOf("b", k.ec256, ""))
	unloadAtEnd(t)
	site := func(body, refresh string) string {
		return fmt.Sprintf(`
	jwt_guard {
		secret jwks %s {
			refresh_interval %s
		}
		secret jwks %s
	}
	respond %q`, one.URL(), refresh, two.URL(), body)
	}
	wantRefreshers := func(n int, when string) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d refresher goroutines %s", n, when), func() bool { return refresherGoroutines() == n })
	}
	base := refresherGoroutines()
	tester := startCaddy(t, site("first", "10m"))
	wantRefreshers(base+2, "after the first load")
	fetched := one.fetches.Load() + two.fetches.Load()

	tester = startCaddy(t, site("second", "10m"))
	wantRefreshers(base+2, "after a reload with the same secrets")
	if got := one.fetches.Load() + two.fetches.Load(); got != fetched {
		t.Errorf("a reload with the same secrets fetched again (%d -> %d); the key cache should carry over", fetched, got)
	}
	if got := status(t, tester, "/", sign(t, jwt.SigningMethodES256, k.ec256, validClaims(), "kid", "b")); got != 200 {
		t.Errorf("after reload: status %d", got)
	}

	startCaddy(t, site("third", "5m"))
	wantRefreshers(base+2, "after a reload that changes one secret")

	startCaddy(t, `respond "no jwt"`)
	wantRefreshers(base, "after a reload without remote secrets")
}

func TestDuplicateKIDIsAnErrorLoggedOnce(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("dup", k.rsa, ""), jwkOf("dup", k.rsa2, ""),
		map[string]any{"kty": "oct", "kid": "s", "k": b64([]byte(k.hmac))})
	core, logs := observer.New(zap.DebugLevel)
	cfg, err := remoteConfigFor(&Secret{Alg: "jwks", Value: srv.URL()}, algJWKS, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := newTestContext()
	t.Cleanup(cancel)
	r, err := acquireRemote(ctx, cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = remotePool.Delete(cfg.poolKey()) })
	for range 3 {
		c := r.fetch(false)
		<-c.done
		if c.err != nil {
			t.Fatal(c.err)
		}
	}
	dup := logs.FilterMessage("JWKS key skipped").FilterField(zap.String("kid", "dup"))
	if n := dup.Len(); n != 1 || dup.All()[0].Level != zap.ErrorLevel {
		t.Fatalf("duplicate kid logged %d times (want once, at error level)", n)
	}
	oct := logs.FilterMessage("JWKS key skipped").FilterField(zap.String("kid", "s"))
	if n := oct.Len(); n != 1 || oct.All()[0].Level != zap.WarnLevel {
		t.Fatalf("oct key logged %d times (want once, as a warning)", n)
	}
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, k.hmac) || strings.Contains(f.String, b64([]byte(k.hmac))) {
				t.Fatalf("log leaks the oct key material: %v", e)
			}
		}
	}
	if got := r.lookup("RS256", "dup", nil); len(got) != 1 || got[0].key.(*rsa.PublicKey).N.Cmp(k.rsa.N) != 0 {
		t.Fatal("duplicate kid: the first key must be kept")
	}
}

func TestFetchSchedulesByServerMaxAge(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		cc   string
		want time.Duration
	}{
		{"", 10 * time.Minute},
		{"public, max-age=120", 2 * time.Minute},
		{"max-age=86400", 10 * time.Minute},
		{"max-age=5", time.Minute},
	}
	srv := newJWKSServer(t, jwkOf("a", k.rsa, ""))
	r := remoteFor(t, &Secret{Alg: "jwks", Value: srv.URL()})
	for _, tt := range tests {
		srv.set(func(s *jwksServer) { s.cacheControl = tt.cc })
		c := r.fetch(false)
		<-c.done
		if c.err != nil || c.next != tt.want {
			t.Errorf("Cache-Control %q: next refresh in %s (err %v), want %s", tt.cc, c.next, c.err, tt.want)
		}
	}
}

func TestRotatedKIDFoundBehindAKidlessStaticSecret(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, jwkOf("old", k.ec256, ""))
	// Space Cloud's JWK_URL name, next to a static RS256 key without kid
	// (a migration from a PEM key to a JWKS).
	h := provisioned(t, &Handler{TokenCacheSize: -1, Secrets: []*Secret{
		{Alg: "RS256", Value: k.path("rsa2.pem")},
		{Alg: "JWK_URL", Value: srv.URL()},
	}}, time.Now())
	t.Cleanup(func() { _ = h.Cleanup() })
	before := srv.fetches.Load()
	if _, err := h.verifier.verify(sign(t, jwt.SigningMethodRS256, k.rsa2, validClaims(), "kid", "whatever")); err != nil {
		t.Fatalf("static key: %v", err)
	}
	if got := srv.fetches.Load() - before; got != 0 {
		t.Fatalf("a token the static key verifies caused %d fetches", got)
	}
	srv.setKeys(jwkOf("new", k.rsa, ""))
	if _, err := h.verifier.verify(sign(t, jwt.SigningMethodRS256, k.rsa, validClaims(), "kid", "new")); err != nil {
		t.Fatalf("rotated-in kid behind a kid-less static RS256 key: %v", err)
	}
	if got := srv.fetches.Load() - before; got != 1 {
		t.Fatalf("the rotated-in kid caused %d fetches, want 1", got)
	}
}

// TestFetchErrorsHideURLCredentials: providers sometimes take an API key in
// the JWKS URL's query; fetch errors are logged at every failed refresh, so
// they show the URL without it.
func TestFetchErrorsHideURLCredentials(t *testing.T) {
	const credential = "api_key=s3cr3t-in-the-url"
	for _, mode := range []string{"500", "garbage", "hang", "huge", "loop", "empty set", "connection refused"} {
		t.Run(mode, func(t *testing.T) {
			srv := newJWKSServer(t, jwkOf("a", testKeys(t).rsa, ""))
			secret := &Secret{Alg: "jwks", Value: srv.URL() + "?" + credential, Timeout: caddyDuration("300ms")}
			r := remoteFor(t, secret)
			switch mode {
			case "connection refused":
				r.mu.Lock()
				r.jwksURI = deadURL(t) + "?" + credential
				r.mu.Unlock()
			case "empty set":
				srv.setKeys()
			default:
				srv.setMode(mode)
			}
			c := r.fetch(false)
			<-c.done
			if c.err == nil {
				t.Fatal("fetch succeeded; want an error")
			}
			if msg := c.err.Error(); strings.Contains(msg, "s3cr3t") || !strings.Contains(msg, "?(redacted)") {
				t.Errorf("fetch error %q: want the URL shown without its query", msg)
			}
		})
	}
}
