package jwtguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt checks every testdata/caddyfile_adapt/*.caddyfiletest:
// a Caddyfile, a line of dashes, and the JSON `caddy adapt` must produce.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, json, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatalf("%s: no ---------- separator", file)
			}
			if !caddytest.CompareAdapt(t, file, caddyfile, "caddyfile", strings.TrimSpace(json)) {
				t.Errorf("%s: adapted JSON differs (diff above)", file)
			}
		})
	}
}

// adaptError adapts a site body and returns the adapter's error.
func adaptError(t *testing.T, site string) string {
	t.Helper()
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+site+"\n}\n"), nil)
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCaddyfileErrorsNameTheLine(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		name, site string
		want       []string
	}{
		{"unknown algorithm", "jwt_guard {\n secret HS257 abc\n}", []string{"unknown secret algorithm \"HS257\"", "Caddyfile:3"}},
		{"short HMAC secret", "jwt_guard {\n secret HS256 too-short\n}", []string{"HS256 secret is 9 bytes; it must be at least 32", "Caddyfile:3"}},
		{"short HS512 secret", "jwt_guard {\n\n secret HS512 " + k.hmac + "\n}", []string{"HS512 secret is 32 bytes; it must be at least 64", "Caddyfile:4"}},
		{"path as HMAC secret", "jwt_guard {\n secret HS256 " + k.path("rsa.pem") + "\n}", []string{"secret is the path of an existing file", "{file.", "Caddyfile:3"}},
		{"PEM as HMAC secret", "jwt_guard {\n secret HS256 <<PEM\n  -----BEGIN PUBLIC KEY-----\n  MCowBQYDK2VwAyEA\n  -----END PUBLIC KEY-----\n  PEM\n}", []string{"HS256 needs a shared secret, but the value is PEM text", "Caddyfile:3"}},
		{"missing key file", "jwt_guard {\n secret RS256 /nonexistent/key.pem\n}", []string{"reading public key file", "Caddyfile:3"}},
		{"HMAC secret under a public-key algorithm", "jwt_guard {\n secret RS256 " + k.hmac + "\n}", []string{"reading public key file", "neither PEM text nor", "Caddyfile:3"}},
		{"long HMAC secret under a public-key algorithm", "jwt_guard {\n secret RS256 " + strings.Repeat(k.hmac, 10) + "\n}", []string{"neither PEM text nor", "Caddyfile:3"}},
		{"wrong key type", "jwt_guard {\n secret ES256 " + k.path("rsa.pem") + "\n}", []string{"ES256 needs an ECDSA P-256 public key, but this is an RSA 2048-bit key", "Caddyfile:3"}},
		{"wrong curve", "jwt_guard {\n secret ES256 " + k.path("ec384.pem") + "\n}", []string{"ES256 needs an ECDSA P-256 public key, but this is an ECDSA P-384 key", "Caddyfile:3"}},
		{"RSA key for EdDSA", "jwt_guard {\n secret EdDSA " + k.path("rsa.pem") + "\n}", []string{"EdDSA needs an Ed25519 public key", "Caddyfile:3"}},
		{"secret without value", "jwt_guard {\n secret HS256\n}", []string{"secret HS256 needs a value", "Caddyfile:3"}},
		{"secret with two values", "jwt_guard {\n secret HS256 a b\n}", []string{"takes one value", "Caddyfile:3"}},
		{"unknown subdirective", "jwt_guard {\n secret HS256 " + k.hmac + "\n secrets x\n}", []string{"unrecognized jwt_guard subdirective 'secrets'", "Caddyfile:4"}},
		{"unknown secret option", "jwt_guard {\n secret HS256 " + k.hmac + " {\n  kdi x\n }\n}", []string{"unrecognized secret option 'kdi'", "Caddyfile:4"}},
		{"no secret", "jwt_guard {\n leeway 1m\n}", []string{"needs at least one `secret", "Caddyfile:"}},
		{"bad leeway", "jwt_guard {\n secret HS256 " + k.hmac + "\n leeway soon\n}", []string{"leeway \"soon\" is not a duration", "Caddyfile:4"}},
		{"bad token size", "jwt_guard {\n secret HS256 " + k.hmac + "\n max_token_size lots\n}", []string{"max_token_size \"lots\"", "Caddyfile:4"}},
		{"unknown rule", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule maybe\n}", []string{"unknown rule \"maybe\"", "Caddyfile:4"}},
		{"bad JSON rule", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule `{\"rule\": }`\n}", []string{"invalid JSON rule", "Caddyfile:4"}},
		{"private key", "jwt_guard {\n secret RS256 <<PEM\n  -----BEGIN PRIVATE KEY-----\n  MC4CAQAwBQYDK2VwBCIEIA==\n  -----END PRIVATE KEY-----\n  PEM\n}", []string{"give the public key instead", "Caddyfile:3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := adaptError(t, tc.site)
			if got == "" {
				t.Fatal("adapt succeeded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("error %q does not contain %q", got, w)
				}
			}
			if strings.Contains(got, k.hmac) {
				t.Errorf("error leaks the secret: %q", got)
			}
		})
	}
}

// TestProvisionErrors covers what only shows once placeholders are
// expanded (JSON configs, {env.*} secrets).
func TestProvisionErrors(t *testing.T) {
	t.Setenv("JWT_GUARD_TEST_SHORT", "short-secret")
	t.Setenv("JWT_GUARD_TEST_GOOD", testKeys(t).hmac)
	leeway := caddyDuration("10m")
	tests := []struct {
		name string
		h    *Handler
		want string
	}{
		{"no secrets", &Handler{}, "no secrets configured"},
		{"empty env secret", &Handler{Secrets: []*Secret{{Alg: "HS256", Value: "{env.JWT_GUARD_TEST_UNSET}"}}}, "secret 1 (HS256): the secret value is empty"},
		{"short env secret", &Handler{Secrets: []*Secret{{Alg: "HS256", Value: "{env.JWT_GUARD_TEST_SHORT}"}}}, "secret 1 (HS256): HS256 secret is 12 bytes"},
		{"PEM file as HMAC secret", &Handler{Secrets: []*Secret{{Alg: "HS512", Value: "{file." + testKeys(t).path("rsa.pem") + "}"}}}, "HS512 needs a shared secret, but the value is PEM text"},
		{"env secret under a public-key algorithm", &Handler{Secrets: []*Secret{{Alg: "ES256", Value: "{env.JWT_GUARD_TEST_GOOD}"}}}, "secret 1 (ES256): reading public key file"},
		{"unknown alg", &Handler{Secrets: []*Secret{{Alg: "none", Value: "x"}}}, `unknown algorithm "none"`},
		{"leeway too large", &Handler{Secrets: []*Secret{{Alg: "HS256", Value: "{env.JWT_GUARD_TEST_GOOD}"}}, Leeway: &leeway}, "leeway 10m0s is out of range"},
		{"empty source", &Handler{Secrets: []*Secret{{Alg: "HS256", Value: "{env.JWT_GUARD_TEST_GOOD}"}}, From: []TokenSource{{}}}, "from[0]: set exactly one of cookie and query"},
		{"unknown rule", &Handler{Secrets: []*Secret{{Alg: "HS256", Value: "{env.JWT_GUARD_TEST_GOOD}"}}, Rule: &Rule{Rule: "sometimes"}}, `unknown rule "sometimes"`},
		{"token size over the cap", &Handler{Secrets: []*Secret{{Alg: "HS256", Value: "{env.JWT_GUARD_TEST_GOOD}"}}, MaxTokenSize: 64 << 20}, "max_token_size 67108864 is out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := newTestContext()
			defer cancel()
			err := tc.h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testKeys(t).hmac) || strings.Contains(err.Error(), "short-secret") {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}
