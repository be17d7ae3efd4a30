package jwtguard

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// End-to-end tests start a real Caddy in-process with caddytest. Its admin
// and HTTP ports are fixed per test binary; JWT_GUARD_TEST_PORT_OFFSET
// shifts them so that two checkouts can run their suites side by side.
var (
	portOffset = func() int {
		n, _ := strconv.Atoi(os.Getenv("JWT_GUARD_TEST_PORT_OFFSET"))
		return n
	}()
	adminPort = 2999 + portOffset
	httpPort  = 9080 + portOffset
	httpsPort = 9443 + portOffset
	baseURL   = fmt.Sprintf("http://localhost:%d", httpPort)
)

// startCaddy loads a Caddyfile whose single site serves baseURL with the
// given directives, and returns a tester whose client talks to it.
func startCaddy(t *testing.T, site string) *caddytest.Tester {
	t.Helper()
	return startCaddyfile(t, fmt.Sprintf("%s\n%s {\n%s\n}\n", globalOptions(), baseURL, site))
}

func globalOptions() string {
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1ns
}`, adminPort, httpPort, httpsPort)
}

func startCaddyfile(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// get sends a GET with optional headers ("Name: value") and returns the
// response with its body read.
func get(t *testing.T, tester *caddytest.Tester, url string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(name, strings.TrimSpace(value))
	}
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func bearer(token string) string { return "Authorization: Bearer " + token }

// testKeys are generated once per test binary; nothing private is committed.
type testKeySet struct {
	hmac, hmac384, hmac512 string
	rsa, rsa2              *rsa.PrivateKey
	ec256, ec384, ec521    *ecdsa.PrivateKey
	ed                     ed25519.PrivateKey
	dir                    string // PEM files of the public keys
}

var (
	keysOnce sync.Once
	keys     *testKeySet
)

func testKeys(t testing.TB) *testKeySet {
	t.Helper()
	keysOnce.Do(func() {
		k := &testKeySet{hmac: randomHex(32), hmac384: randomHex(48), hmac512: randomHex(64)}
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		k.rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
		k.ec256, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k.ec384, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		k.ec521, _ = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
		k.dir, _ = os.MkdirTemp("", "jwtguard-keys-")
		must(writePKIX(filepath.Join(k.dir, "rsa.pem"), &k.rsa.PublicKey))
		must(writePKIX(filepath.Join(k.dir, "rsa2.pem"), &k.rsa2.PublicKey))
		must(writePEM(filepath.Join(k.dir, "rsa_pkcs1.pem"), "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)))
		must(writeCert(filepath.Join(k.dir, "rsa_cert.pem"), k.rsa))
		must(writePKIX(filepath.Join(k.dir, "ec256.pem"), &k.ec256.PublicKey))
		must(writePKIX(filepath.Join(k.dir, "ec384.pem"), &k.ec384.PublicKey))
		must(writePKIX(filepath.Join(k.dir, "ec521.pem"), &k.ec521.PublicKey))
		must(writePKIX(filepath.Join(k.dir, "ed.pem"), k.ed.Public()))
		if err != nil {
			panic(err)
		}
		keys = k
	})
	return keys
}

func (k *testKeySet) path(name string) string { return filepath.Join(k.dir, name) }

func randomHex(n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func writePKIX(path string, pub any) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return writePEM(path, "PUBLIC KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeCert(path string, key *rsa.PrivateKey) error {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "jwt_guard test issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writePEM(path, "CERTIFICATE", der)
}

// claims is shorthand for a claim set.
type claims = map[string]any

// sign makes a token; header entries (e.g. "kid") are added to the JOSE
// header.
func sign(t testing.TB, method jwt.SigningMethod, key any, c claims, header ...string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(c))
	for i := 0; i+1 < len(header); i += 2 {
		tok.Header[header[i]] = header[i+1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

// hs256 signs claims with the main HMAC test secret.
func hs256(t testing.TB, c claims) string {
	return sign(t, jwt.SigningMethodHS256, []byte(testKeys(t).hmac), c)
}

// inOneHour is a typical valid claim set.
func validClaims() claims {
	return claims{"sub": "user-1", "exp": time.Now().Add(time.Hour).Unix()}
}

func jsonNumber(s string) json.Number { return json.Number(s) }

func json64(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgeAlg rewrites a token's header to claim another algorithm, keeping
// payload and signature.
func forgeAlg(t testing.TB, token, alg string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	hdr := strictB64.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
	return hdr + "." + parts[1] + "." + parts[2]
}

// noneToken is an unsigned token with alg "none".
func noneToken(c claims) string {
	payload, _ := json.Marshal(c)
	return strictB64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strictB64.EncodeToString(payload) + "."
}

func newTestContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}

func caddyDuration(s string) caddy.Duration {
	d, err := caddy.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return caddy.Duration(d)
}
