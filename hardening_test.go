package jwtguard

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Each case here is a gap closed by issue 6: without its check, the token
// verifies.

func TestRejectsDuplicateMemberNames(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	key := []byte(testKeys(t).hmac)
	const hdr = `{"alg":"HS256"}`
	tests := []struct {
		name, header, payload string
		want                  error
	}{
		{"header alg twice", `{"alg":"none","alg":"HS256"}`, `{"sub":"a"}`, errTokenMalformed},
		{"header kid twice", `{"alg":"HS256","kid":"a","kid":"b"}`, `{"sub":"a"}`, errTokenMalformed},
		{"claim sub twice", hdr, `{"sub":"user","sub":"admin"}`, errTokenMalformed},
		{"claim exp twice", hdr, `{"exp":1,"exp":9999999999}`, errTokenMalformed},
		{"nested member twice", hdr, `{"sub":"a","app_metadata":{"role":"user","role":"admin"}}`, errTokenMalformed},
		{"member twice inside an array", hdr, `{"orgs":[{"id":1},{"id":2,"id":3}]}`, errTokenMalformed},
		// Same names in different objects, and colons inside strings, are fine.
		{"same name at two levels", hdr, `{"sub":"a","m":{"sub":"b"},"l":[{"sub":"c"}]}`, nil},
		{"colons and escaped quotes in strings", hdr, `{"sub":"a:b\":c","u":"https://x/y"}`, nil},
		{"nested objects in the header", `{"alg":"HS256","jwk":{"kty":"oct","k":"x"}}`, `{"sub":"a"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, key, tc.header, tc.payload)
			if _, err := h.verifier.verify(token); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRejectsInvalidUTF8(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	key := []byte(testKeys(t).hmac)
	tests := []struct {
		name, header, payload string
		want                  error
	}{
		{"in the header", "{\"alg\":\"HS256\",\"kid\":\"\xff\"}", `{"sub":"a"}`, errTokenMalformed},
		{"in a claim", `{"alg":"HS256"}`, "{\"sub\":\"adm\xffin\"}", errTokenMalformed},
		{"in a claim name", `{"alg":"HS256"}`, "{\"ro\xc0le\":\"x\"}", errTokenMalformed},
		{"overlong encoding", `{"alg":"HS256"}`, "{\"sub\":\"\xc0\xaf\"}", errTokenMalformed},
		{"valid multibyte", `{"alg":"HS256"}`, `{"sub":"zoë ✓ 😀"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, key, tc.header, tc.payload)
			if _, err := h.verifier.verify(token); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRejectsDeeplyNestedJSON(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	key := []byte(testKeys(t).hmac)
	nested := func(depth int) string { // depth counts the outer object
		return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
	}
	tests := []struct {
		name, header, payload string
		want                  error
	}{
		{"payload at the limit", `{"alg":"HS256"}`, nested(maxJSONDepth), nil},
		{"payload one deeper", `{"alg":"HS256"}`, nested(maxJSONDepth + 1), errTokenMalformed},
		{"payload 3000 deep", `{"alg":"HS256"}`, nested(3000), errTokenMalformed},
		{"header one deeper", `{"alg":"HS256","x":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`, `{}`, errTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, key, tc.header, tc.payload)
			if _, err := h.verifier.verify(token); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRegisteredClaimTypes covers what golang-jwt lets through on its own:
// an aud that is neither a string nor an array (taken as absent) and dates
// outside any sensible range (turned into arbitrary times).
func TestRegisteredClaimTypes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := provisioned(t, hmacHandler(t), now) // no audience configured
	key := []byte(testKeys(t).hmac)
	tests := []struct {
		name, payload string
		want          error
	}{
		{"aud a number", `{"aud":7}`, errClaimsMalformed},
		{"aud a boolean", `{"aud":true}`, errClaimsMalformed},
		{"aud an object", `{"aud":{"a":"b"}}`, errClaimsMalformed},
		{"aud null", `{"aud":null}`, errClaimsMalformed},
		{"aud an array with null", `{"aud":["a",null]}`, errClaimsMalformed},
		{"aud an empty array", `{"aud":[]}`, nil},
		{"exp beyond year 9999", `{"exp":1e12}`, errClaimsMalformed},
		{"exp overflowing float64", `{"exp":1e400}`, errClaimsMalformed},
		{"nbf overflowing float64", `{"nbf":1e400}`, errClaimsMalformed},
		{"nbf negative", `{"nbf":-1}`, errClaimsMalformed},
		{"iat as a string", `{"iat":"1800000000"}`, errClaimsMalformed},
		{"nbf as a string", `{"nbf":"0"}`, errClaimsMalformed},
		{"nbf as a boolean", `{"nbf":false}`, errClaimsMalformed},
		{"exp with a fraction", `{"exp":1800000100.5}`, nil},
		{"exp in exponent form", `{"exp":1.8000001e9}`, nil},
		{"iss a number", `{"iss":1}`, errClaimsMalformed},
		{"sub null", `{"sub":null}`, errClaimsMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, key, `{"alg":"HS256"}`, tc.payload)
			if _, err := h.verifier.verify(token); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKIDLengthBoundary(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	key := []byte(testKeys(t).hmac)
	for _, tc := range []struct {
		n    int
		want error
	}{{maxKIDLength, nil}, {maxKIDLength + 1, errTokenMalformed}} {
		token := signRaw(t, jwt.SigningMethodHS256, key, `{"alg":"HS256","kid":"`+strings.Repeat("k", tc.n)+`"}`, `{"sub":"a"}`)
		if _, err := h.verifier.verify(token); err != tc.want {
			t.Errorf("kid of %d bytes: verify = %v, want %v", tc.n, err, tc.want)
		}
	}
}

// TestRejectsRepeatedTokenSource: with two values under one name we would
// verify the first while a backend might read the last.
func TestRejectsRepeatedTokenSource(t *testing.T) {
	sources := []TokenSource{{Cookie: "session"}, {Query: "token"}}
	tests := []struct {
		name    string
		target  string
		cookies []string
		want    string
		wantErr error
	}{
		{name: "query twice, different", target: "/?token=good&token=evil", wantErr: errMultipleTokens},
		{name: "query twice, same", target: "/?token=abc&token=abc", want: "abc"},
		{name: "query twice, one empty", target: "/?token=&token=abc", want: "abc"},
		{name: "cookie twice, different", target: "/", cookies: []string{"session=good; session=evil"}, wantErr: errMultipleTokens},
		{name: "cookie in two headers, different", target: "/", cookies: []string{"session=good", "session=evil"}, wantErr: errMultipleTokens},
		{name: "cookie twice, same", target: "/", cookies: []string{"session=abc; other=1; session=abc"}, want: "abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for _, c := range tc.cookies {
				r.Header.Add("Cookie", c)
			}
			got, err := extractToken(r, sources)
			if got != tc.want || err != tc.wantErr {
				t.Fatalf("extractToken = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestRejectsPSSWithOtherSaltLength: RFC 7518 §3.5 fixes the PSS salt at
// the hash length; golang-jwt's PS* methods alone accept any length.
func TestRejectsPSSWithOtherSaltLength(t *testing.T) {
	k := testKeys(t)
	h := provisioned(t, &Handler{Secrets: []*Secret{{Alg: "PS256", Value: k.path("rsa.pem")}}}, time.Now())
	for _, tc := range []struct {
		name string
		salt int
		want error
	}{
		{"salt as long as the hash", rsa.PSSSaltLengthEqualsHash, nil},
		{"longest salt", rsa.PSSSaltLengthAuto, errSignature},
		{"one-byte salt", 1, errSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := &jwt.SigningMethodRSAPSS{SigningMethodRSA: jwt.SigningMethodPS256.SigningMethodRSA, Options: &rsa.PSSOptions{SaltLength: tc.salt}}
			if _, err := h.verifier.verify(sign(t, method, k.rsa, validClaims())); err != tc.want {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRejectsPublicKeyAsHMACSecret: a public key in any spelling, used as
// an HMAC secret, lets whoever has the public key forge tokens.
func TestRejectsPublicKeyAsHMACSecret(t *testing.T) {
	k := testKeys(t)
	pkix, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	cert, _ := pem.Decode(readFile(t, k.path("rsa_cert.pem")))
	jwk, _ := json.Marshal(rsaJWK(&k.rsa.PublicKey, "k"))
	tests := []struct{ name, value, want string }{
		{"JWK", string(jwk), "the value is a JWK"},
		{"base64 DER PKIX", base64.StdEncoding.EncodeToString(pkix), "the value is a base64 DER public key"},
		{"base64url DER PKCS1", base64.RawURLEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)), "the value is a base64 DER public key"},
		{"base64 DER certificate", base64.StdEncoding.EncodeToString(cert.Bytes), "the value is a base64 DER certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := newTestContext()
			defer cancel()
			h := &Handler{Secrets: []*Secret{{Alg: "HS256", Value: tc.value, AllowShortSecret: true}}}
			err := h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("provision = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.value) {
				t.Errorf("the error quotes the secret value")
			}
		})
	}
	// An ordinary random secret in base64 is still a secret.
	ctx, cancel := newTestContext()
	defer cancel()
	h := &Handler{Secrets: []*Secret{{Alg: "HS256", Value: base64.StdEncoding.EncodeToString([]byte(k.hmac))}}}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("base64 random secret refused: %v", err)
	}
}

// TestKeyFileLimits: a key path that is not a regular file, or is huge,
// fails the load at once instead of hanging it or filling memory.
func TestKeyFileLimits(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(big, make([]byte, maxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"device", "/dev/zero", "is not a regular file"},
		{"directory", t.TempDir(), "is not a regular file"},
		{"over 1 MiB", big, "is larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skipf("%s: %v", tc.path, err)
			}
			done := make(chan error, 1)
			go func() { _, err := loadKey("RS256", tc.path); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("loadKey = %v, want an error containing %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("loadKey still reading after 10s")
			}
		})
	}
}

func TestRejectsTrailingDataAfterPayload(t *testing.T) {
	h := provisioned(t, hmacHandler(t), time.Now())
	key := []byte(testKeys(t).hmac)
	for _, tc := range []struct {
		payload string
		want    error
	}{
		{`{"sub":"a"}]`, errTokenMalformed},
		{`{"sub":"a"}}`, errTokenMalformed},
		{`{"sub":"a"},{}`, errTokenMalformed},
		{`{"sub":"a"} {"sub":"b"}`, errTokenMalformed},
		{"{\"sub\":\"a\"} \r\n\t", nil},
	} {
		token := signRaw(t, jwt.SigningMethodHS256, key, `{"alg":"HS256"}`, tc.payload)
		if _, err := h.verifier.verify(token); err != tc.want {
			t.Errorf("payload %q: verify = %v, want %v", tc.payload, err, tc.want)
		}
	}
}
