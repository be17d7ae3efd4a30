package jwtguard

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkVerify measures one token verification per algorithm family,
// with golang-jwt's own Parse of the same token as the baseline:
//
//	go test -run '^$' -bench Verify -benchmem -count 6 . > bench.txt
//	benchstat -col /impl bench.txt
func BenchmarkVerify(b *testing.B) {
	k := testKeys(b)
	cases := []struct {
		name   string
		secret *Secret
		method jwt.SigningMethod
		sign   any
		verify any
	}{
		{"HS256", &Secret{Alg: "HS256", Value: k.hmac}, jwt.SigningMethodHS256, []byte(k.hmac), []byte(k.hmac)},
		{"RS256", &Secret{Alg: "RS256", Value: k.path("rsa.pem")}, jwt.SigningMethodRS256, k.rsa, &k.rsa.PublicKey},
		{"ES256", &Secret{Alg: "ES256", Value: k.path("ec256.pem")}, jwt.SigningMethodES256, k.ec256, &k.ec256.PublicKey},
		{"EdDSA", &Secret{Alg: "EdDSA", Value: k.path("ed.pem")}, jwt.SigningMethodEdDSA, k.ed, k.ed.Public()},
	}
	for _, tc := range cases {
		token := sign(b, tc.method, tc.sign, claims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"a", "b"}})
		b.Run("alg="+tc.name+"/impl=golang-jwt-Parse", func(b *testing.B) {
			p := jwt.NewParser(jwt.WithValidMethods([]string{tc.method.Alg()}), jwt.WithJSONNumber(), jwt.WithLeeway(30*time.Second))
			keyfunc := func(*jwt.Token) (any, error) { return tc.verify, nil }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Parse(token, keyfunc); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, cache := range []struct {
			name string
			size int
		}{{"jwt_guard-uncached", -1}, {"jwt_guard-cached", 0}} {
			b.Run("alg="+tc.name+"/impl="+cache.name, func(b *testing.B) {
				h := provisioned(b, &Handler{Secrets: []*Secret{tc.secret}, TokenCacheSize: cache.size}, time.Now())
				b.ReportAllocs()
				for b.Loop() {
					if _, err := h.verifier.verify(token); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkServeHTTP is the whole handler on one request: extract, verify,
// rule, publish, with one claim placeholder read downstream.
func BenchmarkServeHTTP(b *testing.B) {
	h := provisioned(b, hmacHandler(b), time.Now())
	token := hs256(b, validClaims())
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if v, _ := repl.GetString("http.auth.claims.sub"); v != "user-1" {
			b.Fatalf("sub = %q", v)
		}
		return nil
	})
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, &caddyhttp.Server{})
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
}
