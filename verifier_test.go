package jwtguard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2"
)

// provisioned returns a provisioned handler whose clock is fixed at now.
func provisioned(t testing.TB, h *Handler, now time.Time) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h.now = func() time.Time { return now }
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return h
}

func hmacHandler(t testing.TB) *Handler {
	return &Handler{Secrets: []*Secret{{Alg: "HS256", Value: testKeys(t).hmac}}}
}

func TestVerifyTimeClaimsAtTheEdges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	zero := caddy.Duration(0)
	tests := []struct {
		name   string
		leeway *caddy.Duration
		claims claims
		want   error
	}{
		{"exp in the future", nil, claims{"exp": at(time.Second)}, nil},
		{"exp now, within default leeway", nil, claims{"exp": at(0)}, nil},
		{"exp 29s ago, inside the leeway", nil, claims{"exp": at(-29 * time.Second)}, nil},
		{"exp 30s ago, at the leeway edge", nil, claims{"exp": at(-30 * time.Second)}, errExpired},

		{"exp now, no leeway", &zero, claims{"exp": at(0)}, errExpired},
		{"exp 1s ahead, no leeway", &zero, claims{"exp": at(time.Second)}, nil},
		{"exp 0", nil, claims{"exp": 0}, errExpired},
		{"exp as a string", nil, claims{"exp": "9999999999"}, errClaimsMalformed},
		{"exp as null", nil, claims{"exp": nil}, errClaimsMalformed},
		{"nbf 30s ahead, at the leeway edge", nil, claims{"nbf": at(30 * time.Second)}, nil},
		{"nbf 31s ahead", nil, claims{"nbf": at(31 * time.Second)}, errNotYetValid},
		{"iat 31s ahead", nil, claims{"iat": at(31 * time.Second)}, errIssuedInFuture},
		{"iat in the past", nil, claims{"iat": at(-time.Hour)}, nil},
		{"iss must be a string", nil, claims{"iss": []string{"a"}}, errClaimsMalformed},
		{"sub must be a string", nil, claims{"sub": 7}, errClaimsMalformed},
		{"aud may be an array", nil, claims{"aud": []string{"a", "b"}}, nil},
		{"aud must be strings", nil, claims{"aud": []any{1}}, errClaimsMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hmacHandler(t)
			h.Leeway = tc.leeway
			h = provisioned(t, h, now)
			_, err := h.verifier.verify(hs256(t, tc.claims))
			if err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyMaxLifetime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := hmacHandler(t)
	h.MaxLifetime = caddy.Duration(time.Hour)
	h = provisioned(t, h, now)
	tests := []struct {
		name   string
		claims claims
		want   error
	}{
		{"iat to exp within", claims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, nil},
		{"iat to exp too long", claims{"iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()}, errLifetime},
		{"no iat: now to exp", claims{"exp": now.Add(50 * time.Minute).Unix()}, nil},
		{"no iat: now to exp too long", claims{"exp": now.Add(3 * time.Hour).Unix()}, errLifetime},
		{"no exp", claims{"sub": "a"}, errNoExpiry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.verifier.verify(hs256(t, tc.claims)); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestVerifyRejectsBeforeCrypto covers the cheap structural checks.
func TestVerifyRejectsBeforeCrypto(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	good := hs256(t, validClaims())
	parts := strings.Split(good, ".")
	b64 := strictB64.EncodeToString
	sig := func(header, payload string) string {
		return header + "." + payload + "." + parts[2]
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"too large", strings.Repeat("a", defaultMaxTokenSize+1), errTokenTooLarge},
		{"two segments", parts[0] + "." + parts[1], errTokenMalformed},
		{"four segments", good + ".x", errTokenMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", errTokenMalformed},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], errTokenMalformed},
		{"standard alphabet", good[:len(good)-1] + "+", errTokenMalformed},
		{"whitespace", parts[0] + ".\n" + parts[1] + "." + parts[2], errTokenMalformed},
		{"header not JSON", sig(b64([]byte("nope")), parts[1]), errTokenMalformed},
		{"header null", sig(b64([]byte("null")), parts[1]), errTokenMalformed},
		{"header array", sig(b64([]byte(`["HS256"]`)), parts[1]), errTokenMalformed},
		{"alg in the wrong case", sig(b64([]byte(`{"ALG":"HS256"}`)), parts[1]), errTokenMalformed},
		{"alg lowercase value", sig(b64([]byte(`{"alg":"hs256"}`)), parts[1]), errNoKey},
		{"alg none", sig(b64([]byte(`{"alg":"none"}`)), parts[1]), errNoKey},
		{"alg not a string", sig(b64([]byte(`{"alg":1}`)), parts[1]), errTokenMalformed},
		{"crit", sig(b64([]byte(`{"alg":"HS256","crit":["exp"]}`)), parts[1]), errCrit},
		{"kid too long", sig(b64([]byte(`{"alg":"HS256","kid":"`+strings.Repeat("k", maxKIDLength+1)+`"}`)), parts[1]), errTokenMalformed},
		{"signature of another header", sig(b64([]byte(`{"alg":"HS256","typ":"at+jwt"}`)), parts[1]), errSignature},
		{"non-canonical signature bits", parts[0] + "." + parts[1] + "." + flipLastBit(parts[2]), errTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.verifier.verify(tc.token); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// flipLastBit changes an unused trailing bit of a base64url segment: the
// decoded bytes stay the same, the spelling does not.
func flipLastBit(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last^1])
}

func TestVerifyRejectsNonObjectPayload(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	key := []byte(testKeys(t).hmac)
	for _, payload := range []string{"null", "[]", "7", `"sub"`, `{"sub":"a"} {}`} {
		t.Run(payload, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, key, `{"alg":"HS256"}`, payload)
			if _, err := h.verifier.verify(token); err != errTokenMalformed {
				t.Fatalf("verify = %v, want %v", err, errTokenMalformed)
			}
		})
	}
}

// signRaw signs exact header and payload bytes.
func signRaw(t testing.TB, method jwt.SigningMethod, key any, header, payload string) string {
	t.Helper()
	input := strictB64.EncodeToString([]byte(header)) + "." + strictB64.EncodeToString([]byte(payload))
	sig, err := method.Sign(input, key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + strictB64.EncodeToString(sig)
}

func TestRejectsHMACKeyedWithPublicKey(t *testing.T) {
	k := testKeys(t)
	h := provisioned(t, &Handler{Secrets: []*Secret{{Alg: "RS256", Value: k.path("rsa.pem")}}}, time.Now())
	for _, secret := range [][]byte{readFile(t, k.path("rsa.pem")), readFile(t, k.path("rsa_pkcs1.pem"))} {
		forged := sign(t, jwt.SigningMethodHS256, secret, validClaims())
		if _, err := h.verifier.verify(forged); err != errNoKey {
			t.Fatalf("HS256 forged with the public key: verify = %v, want %v", err, errNoKey)
		}
	}
}

func TestExtractToken(t *testing.T) {
	sources := []TokenSource{{Cookie: "session"}, {Query: "token"}}
	tests := []struct {
		name    string
		target  string
		headers map[string][]string
		want    string
		wantErr error
	}{
		{name: "none", target: "/"},
		{name: "bearer", target: "/", headers: map[string][]string{"Authorization": {"Bearer abc"}}, want: "abc"},
		{name: "BEARER with spaces", target: "/", headers: map[string][]string{"Authorization": {"  BEARER   abc  "}}, want: "abc"},
		{name: "basic", target: "/", headers: map[string][]string{"Authorization": {"Basic abc"}}, wantErr: errNotBearer},
		{name: "bare bearer", target: "/", headers: map[string][]string{"Authorization": {"Bearer"}}, wantErr: errEmptyBearer},
		{name: "bearer and spaces", target: "/", headers: map[string][]string{"Authorization": {"Bearer    "}}, wantErr: errEmptyBearer},
		{name: "empty header", target: "/", headers: map[string][]string{"Authorization": {""}}, wantErr: errNotBearer},
		{name: "two headers", target: "/", headers: map[string][]string{"Authorization": {"Bearer a", "Bearer b"}}, wantErr: errRepeatedAuth},
		{name: "cookie", target: "/", headers: map[string][]string{"Cookie": {"session=abc"}}, want: "abc"},
		{name: "query", target: "/?token=abc", want: "abc"},
		{name: "cookie before query", target: "/?token=abc", headers: map[string][]string{"Cookie": {"session=abc"}}, want: "abc"},
		{name: "different tokens", target: "/?token=abc", headers: map[string][]string{"Cookie": {"session=xyz"}}, wantErr: errMultipleTokens},
		{name: "header and different query", target: "/?token=abc", headers: map[string][]string{"Authorization": {"Bearer xyz"}}, wantErr: errMultipleTokens},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for k, v := range tc.headers {
				r.Header[k] = v
			}
			got, err := extractToken(r, sources)
			if got != tc.want || err != tc.wantErr {
				t.Fatalf("extractToken = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
