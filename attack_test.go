package jwtguard

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rfc6750Challenge is the WWW-Authenticate of a refused token: the realm,
// then an error code and a description (RFC 6750 §3).
var rfc6750Challenge = regexp.MustCompile(`^Bearer realm="[^"]*", error="(invalid_request|invalid_token|insufficient_scope)", error_description="[ -!#-\[\]-~]*"$`)

// challengeCode is the RFC 6750 error code each refusal status carries.
var challengeCode = map[int]string{400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope"}

// TestAttackSuite sends every forgery and malformed input of issue 6 to a
// real Caddy guarding one route with an HMAC secret, an RSA key and an EC
// key at once (the setting where algorithm confusion would bite). Each case
// must get its refusal status, never a 500, an RFC 6750 challenge, and a
// response that echoes nothing of the token.
func TestAttackSuite(t *testing.T) {
	k := testKeys(t)
	const iss, aud = "https://issuer.example", "api"

	// A key server the attacker controls: the guard must never call it.
	var fetched atomic.Int64
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	attackerCert := selfSignedDER(t, attacker)
	keyServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK(&attacker.PublicKey, "attacker")}})
	}))
	defer keyServer.Close()

	// Caddy refuses headers over 16 KiB with 431 by itself; raise that so
	// a megabyte reaches the guard and meets its own limit.
	global := strings.TrimSuffix(globalOptions(), "}") + "\tservers {\n\t\tmax_header_size 2MB\n\t}\n}"
	// /admin/ has the same keys and a rule that refuses every valid token,
	// for the 403 cases.
	guard := fmt.Sprintf(`jwt_guard {
			secret HS256 %s
			secret RS256 %s {
				kid rsa-1
			}
			secret ES256 %s
			issuer %s
			audience %s
			from_query access_token
			%%s
		}`, k.hmac, k.path("rsa.pem"), k.path("ec256.pem"), iss, aud)
	tester := startCaddyfile(t, global+"\n"+baseURL+" {\n"+fmt.Sprintf(`
	handle /admin/* {
		`+guard+`
		respond "admin"
	}
	handle {
		`+guard+`
		respond "ok {http.auth.user.id}"
	}`, "rule deny", "")+"\n}\n")

	now := time.Now()
	good := func(extra ...any) string { // claims JSON that passes every check, plus extra name/value pairs
		c := map[string]any{"sub": "user-1", "iss": iss, "aud": aud, "exp": now.Add(time.Hour).Unix()}
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == nil {
				delete(c, extra[i].(string))
			} else {
				c[extra[i].(string)] = extra[i+1]
			}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	hmacKey := []byte(k.hmac)
	hs := func(header, payload string) string {
		return signRaw(t, jwt.SigningMethodHS256, hmacKey, header, payload)
	}
	rs := func(header, payload string, key *rsa.PrivateKey) string {
		return signRaw(t, jwt.SigningMethodRS256, key, header, payload)
	}
	es := func(header, payload string, key *ecdsa.PrivateKey) string {
		return signRaw(t, jwt.SigningMethodES256, key, header, payload)
	}
	b64 := strictB64.EncodeToString
	unsigned := func(header, payload, sig string) string {
		return b64([]byte(header)) + "." + b64([]byte(payload)) + "." + sig
	}
	hmacWith := func(key []byte, header, payload string) string { // any key, even empty
		input := b64([]byte(header)) + "." + b64([]byte(payload))
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return input + "." + b64(m.Sum(nil))
	}
	seg := func(token string, i int) string { return strings.Split(token, ".")[i] }

	validHS := hs(`{"alg":"HS256","typ":"JWT"}`, good())
	validHS2 := hs(`{"alg":"HS256","typ":"JWT"}`, good("sub", "user-2"))
	validRS := rs(`{"alg":"RS256","kid":"rsa-1"}`, good(), k.rsa)
	validES := es(`{"alg":"ES256"}`, good(), k.ec256)
	rsaPEM := readFile(t, k.path("rsa.pem"))
	rsaPKCS1PEM := readFile(t, k.path("rsa_pkcs1.pem"))
	rsaDER, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	nested := func(depth int) string {
		return `{"sub":"user-1","iss":"` + iss + `","aud":"` + aud + `","n":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	}

	type attack struct {
		name    string
		path    string   // default /
		token   string   // sent as Authorization: Bearer unless header is set
		header  string   // a raw Authorization value
		query   string   // raw query string
		status  int      // 400, 401 or 403
		needles []string // must not appear in the response, besides the token's segments
	}
	var attacks []attack
	add := func(a attack) { attacks = append(attacks, a) }

	// alg none, in every casing, with and without a signature.
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "NoNe", "nonE"} {
		add(attack{name: "alg " + alg + " unsigned", token: unsigned(`{"alg":"`+alg+`","typ":"JWT"}`, good(), ""), status: 401})
		add(attack{name: "alg " + alg + " with a signature", token: unsigned(`{"alg":"`+alg+`"}`, good(), seg(validHS, 2)), status: 401})
	}
	add(attack{name: "alg missing", token: hs(`{"typ":"JWT"}`, good()), status: 401})
	add(attack{name: "alg empty", token: hs(`{"alg":""}`, good()), status: 401})
	add(attack{name: "alg name in upper case (ALG)", token: hs(`{"ALG":"HS256"}`, good()), status: 401})
	add(attack{name: "alg hs256 in lower case", token: signRaw(t, jwt.SigningMethodHS256, hmacKey, `{"alg":"hs256"}`, good()), status: 401})

	// Algorithm confusion: HMAC keyed with the RSA public key.
	for name, key := range map[string][]byte{"PKIX PEM": rsaPEM, "PKCS1 PEM": rsaPKCS1PEM, "DER": rsaDER} {
		add(attack{name: "HS256 signed with the RSA public key " + name, token: hmacWith(key, `{"alg":"HS256"}`, good()), status: 401})
		add(attack{name: "HS256 signed with the RSA public key " + name + ", RSA kid", token: hmacWith(key, `{"alg":"HS256","kid":"rsa-1"}`, good()), status: 401})
	}
	add(attack{name: "RS256 token relabelled ES256", token: forgeAlg(t, validRS, "ES256"), status: 401})
	add(attack{name: "RS256 token relabelled PS256", token: forgeAlg(t, validRS, "PS256"), status: 401})

	// Signatures stripped, emptied, borrowed; payloads swapped.
	add(attack{name: "signature stripped, dot kept", token: seg(validHS, 0) + "." + seg(validHS, 1) + ".", status: 401})
	add(attack{name: "signature stripped with its dot", token: seg(validHS, 0) + "." + seg(validHS, 1), status: 401})
	add(attack{name: "signature emptied to one zero byte", token: seg(validHS, 0) + "." + seg(validHS, 1) + ".AA", status: 401})
	add(attack{name: "signature of another token", token: seg(validHS, 0) + "." + seg(validHS, 1) + "." + seg(validHS2, 2), status: 401})
	add(attack{name: "signature of the same claims under RS256", token: seg(validHS, 0) + "." + seg(validHS, 1) + "." + seg(validRS, 2), status: 401})
	add(attack{name: "payload swapped", token: seg(validHS, 0) + "." + b64([]byte(good("sub", "admin"))) + "." + seg(validHS, 2), status: 401, needles: []string{"admin"}})
	add(attack{name: "payload of another token", token: seg(validHS, 0) + "." + seg(validHS2, 1) + "." + seg(validHS, 2), status: 401})
	add(attack{name: "RS256 payload swapped", token: seg(validRS, 0) + "." + b64([]byte(good("sub", "admin"))) + "." + seg(validRS, 2), status: 401})
	add(attack{name: "signature truncated", token: validRS[:len(validRS)-4], status: 401})
	add(attack{name: "signature bit flipped", token: seg(validES, 0) + "." + seg(validES, 1) + "." + flipFirstBit(seg(validES, 2)), status: 401})

	// ECDSA r = s = 0 ("psychic signatures", CVE-2022-21449) and kin.
	add(attack{name: "ES256 r=s=0", token: unsigned(`{"alg":"ES256"}`, good(), b64(make([]byte, 64))), status: 401})
	add(attack{name: "ES256 r=s=0 DER-encoded", token: unsigned(`{"alg":"ES256"}`, good(), b64([]byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00})), status: 401})
	add(attack{name: "ES256 r=s=n", token: unsigned(`{"alg":"ES256"}`, good(), b64(append(k.ec256.Curve.Params().N.FillBytes(make([]byte, 32)), k.ec256.Curve.Params().N.FillBytes(make([]byte, 32))...))), status: 401})
	add(attack{name: "ES256 r=1 s=1", token: unsigned(`{"alg":"ES256"}`, good(), b64(append(big.NewInt(1).FillBytes(make([]byte, 32)), big.NewInt(1).FillBytes(make([]byte, 32))...))), status: 401})

	// kid as an injection vector: signed with what a naive key lookup
	// would find (an empty file, an attacker's string).
	for _, kid := range []string{
		"../../../../../../dev/null", "/dev/null", "../../../../etc/passwd", "..\\..\\windows\\win.ini", "file:///dev/null",
		"' OR '1'='1", "x' UNION SELECT 'attacker-key' --", "1; DROP TABLE keys;--",
		"$(touch /tmp/jwt_guard_pwned)", "`id`", "| cat /etc/passwd", "a; rm -rf /", "rsa-1\x00.pem", "rsa-1\r\nX-Injected: 1",
	} {
		h, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": kid})
		add(attack{name: "kid " + strings.ToValidUTF8(kid, "?") + ", empty key", token: hmacWith(nil, string(h), good()), status: 401, needles: []string{kid}})
		add(attack{name: "kid " + strings.ToValidUTF8(kid, "?") + ", attacker key", token: hmacWith([]byte("attacker-key"), string(h), good()), status: 401, needles: []string{kid}})
	}

	// Key sources in the token itself, pointing at the attacker's server.
	jwkJSON, _ := json.Marshal(rsaJWK(&attacker.PublicKey, "attacker"))
	for name, h := range map[string]string{
		"jku":          `{"alg":"RS256","kid":"attacker","jku":"` + keyServer.URL + `/jwks.json"}`,
		"jku, our kid": `{"alg":"RS256","kid":"rsa-1","jku":"` + keyServer.URL + `/jwks.json"}`,
		"x5u":          `{"alg":"RS256","x5u":"` + keyServer.URL + `/cert.pem"}`,
		"embedded jwk": `{"alg":"RS256","jwk":` + string(jwkJSON) + `}`,
		"x5c":          `{"alg":"RS256","x5c":["` + base64.StdEncoding.EncodeToString(attackerCert) + `"]}`,
	} {
		add(attack{name: name + " to the attacker's key", token: rs(h, good(), attacker), status: 401, needles: []string{keyServer.URL}})
	}
	add(attack{name: "crit header", token: hs(`{"alg":"HS256","crit":["exp"]}`, good()), status: 401})
	add(attack{name: "b64 false (RFC 7797)", token: hs(`{"alg":"HS256","b64":false,"crit":["b64"]}`, good()), status: 401})

	// Time claims, with the default 30s leeway.
	add(attack{name: "expired", token: hs(`{"alg":"HS256"}`, good("exp", now.Add(-time.Hour).Unix())), status: 401})
	add(attack{name: "not yet valid", token: hs(`{"alg":"HS256"}`, good("nbf", now.Add(time.Hour).Unix())), status: 401})
	add(attack{name: "issued in the future", token: hs(`{"alg":"HS256"}`, good("iat", now.Add(time.Hour).Unix())), status: 401})
	add(attack{name: "exp 0", token: hs(`{"alg":"HS256"}`, good("exp", 0)), status: 401})
	add(attack{name: "exp as a string", token: hs(`{"alg":"HS256"}`, good("exp", "9999999999")), status: 401})
	add(attack{name: "exp as null", token: hs(`{"alg":"HS256"}`, strings.Replace(good(), `"exp":`, `"exp":null,"x":`, 1)), status: 401})
	add(attack{name: "exp beyond year 9999", token: hs(`{"alg":"HS256"}`, good("exp", 1e15)), status: 401})
	add(attack{name: "nbf as a string", token: hs(`{"alg":"HS256"}`, good("nbf", "0")), status: 401})

	// Issuer and audience.
	add(attack{name: "wrong issuer", token: hs(`{"alg":"HS256"}`, good("iss", "https://evil.example")), status: 401})
	add(attack{name: "issuer missing", token: hs(`{"alg":"HS256"}`, good("iss", nil)), status: 401})
	add(attack{name: "issuer as an array", token: hs(`{"alg":"HS256"}`, good("iss", []string{iss})), status: 401})
	add(attack{name: "wrong audience", token: hs(`{"alg":"HS256"}`, good("aud", "web")), status: 401})
	add(attack{name: "audience missing", token: hs(`{"alg":"HS256"}`, good("aud", nil)), status: 401})
	add(attack{name: "audience a number", token: hs(`{"alg":"HS256"}`, good("aud", 7)), status: 401})
	add(attack{name: "audience an object", token: hs(`{"alg":"HS256"}`, good("aud", map[string]string{"api": "api"})), status: 401})
	add(attack{name: "audience an array with a number", token: hs(`{"alg":"HS256"}`, good("aud", []any{aud, 1})), status: 401})

	// Sizes and shapes.
	add(attack{name: "a megabyte of dots", token: strings.Repeat(".", 1<<20), status: 401})
	add(attack{name: "a megabyte of dots in the query", query: "access_token=" + strings.Repeat(".", 1<<20), status: 401})
	add(attack{name: "one byte over the size limit", token: validHS + strings.Repeat("A", defaultMaxTokenSize-len(validHS)+1), status: 401})
	add(attack{name: "payload nested 33 deep", token: hs(`{"alg":"HS256"}`, nested(maxJSONDepth)), status: 401})
	add(attack{name: "payload nested 3000 deep", token: hs(`{"alg":"HS256"}`, nested(3000)), status: 401})
	add(attack{name: "header nested 3000 deep", token: hs(`{"alg":"HS256","x":`+strings.Repeat("[", 3000)+strings.Repeat("]", 3000)+`}`, good()), status: 401})
	add(attack{name: "duplicate sub", token: hs(`{"alg":"HS256"}`, strings.Replace(good(), `"sub":"user-1"`, `"sub":"user-1","sub":"admin"`, 1)), status: 401, needles: []string{"admin"}})
	add(attack{name: "duplicate exp", token: hs(`{"alg":"HS256"}`, strings.Replace(good(), `"sub":"user-1"`, `"sub":"user-1","exp":1`, 1)), status: 401})
	add(attack{name: "duplicate alg", token: hs(`{"alg":"none","alg":"HS256"}`, good()), status: 401})
	add(attack{name: "invalid UTF-8 in a claim", token: hs(`{"alg":"HS256"}`, strings.Replace(good(), `"user-1"`, "\"user-\xff1\"", 1)), status: 401})
	add(attack{name: "invalid UTF-8 in the header", token: hs("{\"alg\":\"HS256\",\"typ\":\"\xc0\xaf\"}", good()), status: 401})
	add(attack{name: "null payload", token: hs(`{"alg":"HS256"}`, "null"), status: 401})
	add(attack{name: "payload an array", token: hs(`{"alg":"HS256"}`, "[]"), status: 401})
	add(attack{name: "stray bracket after the payload", token: hs(`{"alg":"HS256"}`, good()+"]"), status: 401})
	add(attack{name: "padding", token: seg(validHS, 0) + "=." + seg(validHS, 1) + "." + seg(validHS, 2), status: 401})
	add(attack{name: "standard base64 alphabet", token: strings.NewReplacer("-", "+", "_", "/").Replace(validRS), status: 401})
	add(attack{name: "non-canonical trailing bits", token: seg(validHS, 0) + "." + seg(validHS, 1) + "." + flipLastBit(seg(validHS, 2)), status: 401})
	add(attack{name: "four segments", token: validHS + "." + seg(validHS, 2), status: 401})
	add(attack{name: "JSON serialization", token: `{"payload":"` + seg(validHS, 1) + `","signatures":[]}`, status: 401})

	// Several tokens in one request.
	add(attack{name: "token in both header and query", token: validHS, query: "access_token=" + url.QueryEscape(validHS2), status: 400})
	add(attack{name: "valid header token, forged query token", token: validHS, query: "access_token=" + unsigned(`{"alg":"none"}`, good("sub", "admin"), ""), status: 400})
	add(attack{name: "query parameter repeated", query: "access_token=" + validHS + "&access_token=" + validHS2, status: 400})
	add(attack{name: "two Bearer tokens in one header", header: "Bearer " + validHS + " " + validHS2, status: 401})
	add(attack{name: "Basic credentials", header: "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin")), status: 400})

	// A rule that refuses: valid tokens get 403, forged ones still 401.
	add(attack{name: "valid token, rule denies", path: "/admin/", token: validHS, status: 403})
	add(attack{name: "valid RS256 token, rule denies", path: "/admin/", token: validRS, status: 403})
	add(attack{name: "alg none, rule denies", path: "/admin/", token: unsigned(`{"alg":"none"}`, good("sub", "admin"), ""), status: 401})
	add(attack{name: "payload swapped, rule denies", path: "/admin/", token: seg(validHS, 0) + "." + b64([]byte(good("sub", "root"))) + "." + seg(validHS, 2), status: 401})

	// Controls: the same route accepts honest tokens, so the refusals
	// above are the checks at work, not a broken route.
	for name, tok := range map[string]string{"HS256": validHS, "RS256 with kid": validRS, "ES256": validES} {
		resp, body := get(t, tester, baseURL+"/", bearer(tok))
		if resp.StatusCode != 200 || body != "ok user-1" {
			t.Fatalf("control %s: status %d body %q", name, resp.StatusCode, body)
		}
	}

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			target := baseURL + "/"
			if a.path != "" {
				target = baseURL + a.path
			}
			if a.query != "" {
				target += "?" + a.query
			}
			req, err := http.NewRequest(http.MethodGet, target, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case a.header != "":
				req.Header.Set("Authorization", a.header)
			case a.token != "":
				req.Header.Set("Authorization", "Bearer "+a.token)
			}
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatalf("request failed (a crash would look like this): %v", err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != a.status {
				t.Fatalf("status %d, want %d (challenge %q)", resp.StatusCode, a.status, resp.Header.Get("WWW-Authenticate"))
			}
			challenge := resp.Header.Get("WWW-Authenticate")
			m := rfc6750Challenge.FindStringSubmatch(challenge)
			if m == nil || m[1] != challengeCode[a.status] {
				t.Errorf("WWW-Authenticate %q: want an RFC 6750 challenge with error=%q", challenge, challengeCode[a.status])
			}
			var echoed []string
			needles := append(tokenNeedles(a.token+" "+a.header+" "+a.query), a.needles...)
			for _, n := range needles {
				if n == "" {
					continue
				}
				if strings.Contains(body, n) {
					echoed = append(echoed, "body")
				}
				for name, values := range resp.Header {
					for _, v := range values {
						if strings.Contains(v, n) {
							echoed = append(echoed, name)
						}
					}
				}
			}
			if len(echoed) > 0 {
				t.Errorf("response echoes the token in %v", echoed)
			}
		})
	}
	if got := fetched.Load(); got != 0 {
		t.Errorf("the attacker's key server received %d requests: token headers must never choose where keys come from", got)
	}
	if !t.Failed() {
		t.Logf("attack suite: %d attacks sent through Caddy, all refused with the expected status", len(attacks))
	}
}

// tokenNeedles are the pieces of what a client sent that a response must
// not contain: every base64url run of 8 or more characters.
func tokenNeedles(sent string) []string {
	return regexp.MustCompile(`[A-Za-z0-9_-]{8,}`).FindAllString(sent, -1)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return string(b)
}

func flipFirstBit(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[0])
	return string(alphabet[i^32]) + seg[1:]
}

// rsaJWK renders an RSA public key as a JWK (RFC 7518 §6.3.1).
func rsaJWK(pub *rsa.PublicKey, kid string) map[string]string {
	return map[string]string{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
		"n": strictB64.EncodeToString(pub.N.Bytes()),
		"e": strictB64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func selfSignedDER(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
