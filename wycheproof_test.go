package jwtguard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"testing"
	"time"
)

// wycheproofJWS is C2SP/wycheproof's json_web_signature_test.json, read in
// place next to the repository (see ../shared/testdata/wycheproof/SOURCE.md).
const wycheproofJWS = "../shared/testdata/wycheproof/json_web_signature_test.json"

// wycheproofDeviations are the vectors where jwt_guard knowingly disagrees
// with Wycheproof, by tcId. Every entry is stricter than Wycheproof or
// outside what a JWT verifier configured with PEM keys can know; an entry
// that stops deviating fails the test, so the list stays true.
var wycheproofDeviations = map[int]string{
	// Wycheproof's "valid" vectors that we refuse.
	259: "empty payload: a JWT payload is a JSON object, so three non-empty segments are required before any crypto",
	264: "empty payload: a JWT payload is a JSON object, so three non-empty segments are required before any crypto",
	268: "empty payload: a JWT payload is a JSON object, so three non-empty segments are required before any crypto",
	272: "empty payload: a JWT payload is a JSON object, so three non-empty segments are required before any crypto",
	320: "empty payload: a JWT payload is a JSON object, so three non-empty segments are required before any crypto",
	325: "empty payload: a JWT payload is a JSON object, so three non-empty segments are required before any crypto",
	346: "one algorithm per key: the JWK says PS256, the token says PS384 (RFC 7520 figure 20); the token's alg never re-binds a key",
	350: "one algorithm per key: the JWK says PS256, the token says PS384 (RFC 7520 figure 20); the token's alg never re-binds a key",
	372: "strict base64url: a '?' inside the header segment is refused, not skipped (Wycheproof accepts decoders that ignore it)",
	373: "strict base64url: a '?' inside the payload segment is refused, not skipped (Wycheproof accepts decoders that ignore it)",

	// Vectors that contradict another vector.
	367: "the file's JWS is byte for byte tcId 357, which Wycheproof calls valid: the padding this vector means to test is absent, so no verifier can agree with both (padding is refused: TestVerifyRejectsBeforeCrypto)",
	370: "the file's JWS is byte for byte tcId 357, which Wycheproof calls valid: the padding this vector means to test is absent, so no verifier can agree with both (padding is refused: TestVerifyRejectsBeforeCrypto)",

	// Wycheproof's "invalid" vectors that we accept (as PEM secrets only:
	// the same keys from a JWKS are refused, see wycheproofJWKSDeviations).
	353: "key use: the JWK is marked use=enc, but a configured secret is a PEM key with no use; the operator who binds it to RS256 declares it a verification key",
	354: "key use: the JWK is marked use=enc, but a configured secret is a PEM key with no use; the operator who binds it to ES256 declares it a verification key",
	355: "key_ops: the JWK allows only encrypt, but a configured secret is a PEM key with no key_ops; the operator who binds it to RS256 declares it a verification key",
	356: "key_ops: the JWK allows only encrypt, but a configured secret is a PEM key with no key_ops; the operator who binds it to ES256 declares it a verification key",
}

// wycheproofJWKSDeviations adjusts wycheproofDeviations for keys served
// as a JWKS: key use and key_ops are now known (jwk.go refuses keys not
// for verification, so those vectors agree), shared-secret groups do not
// run (a remote JWKS never supplies an HMAC key), and one JWK is refused.
var wycheproofJWKSDeviations = struct {
	agree, skipped []int
	extra          map[int]string
}{
	agree:   []int{353, 354, 355, 356},
	skipped: []int{367, 370, 372, 373},
	extra: map[int]string{
		347: `the JWK says alg "ES521" (RFC 7520's typo for ES512): a JWKS key with an unknown alg is refused, not guessed`,
		351: `the JWK says alg "ES521" (RFC 7520's typo for ES512): a JWKS key with an unknown alg is refused, not guessed`,
	},
}

type wycheproofFile struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		Comment string          `json:"comment"`
		Public  json.RawMessage `json:"public"`
		Private json.RawMessage `json:"private"`
		Tests   []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			JWS     any      `json:"jws"` // a string, or an object for the JSON serialization
			Result  string   `json:"result"`
			Flags   []string `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// testJWK is the subset of RFC 7517/7518 a Wycheproof key uses.
type testJWK struct {
	Kty, Alg, Kid, Crv string
	N, E, X, Y, K      string
}

// TestWycheproofJWS runs every Wycheproof JWS vector through the signature
// layer of our verifier (structure, header, key selection, signature), with
// the group's key loaded as a configured secret would be: PEM for public
// keys, the raw bytes for HMAC, bound to the one algorithm the JWK names.
// Payloads are not claim sets, so the claim checks are not run.
func TestWycheproofJWS(t *testing.T) {
	runWycheproof(t, wycheproofVerifier, wycheproofDeviations)
}

// TestWycheproofJWSFromJWKS runs the same vectors with each public key
// served the way an identity provider serves it: as a JWKS document, parsed
// by jwk.go (use, key_ops and alg honoured). Groups with a shared secret
// are skipped: a remote JWKS never supplies an HMAC key.
func TestWycheproofJWSFromJWKS(t *testing.T) {
	deviations := maps.Clone(wycheproofDeviations)
	for _, id := range append(wycheproofJWKSDeviations.agree, wycheproofJWKSDeviations.skipped...) {
		delete(deviations, id)
	}
	maps.Copy(deviations, wycheproofJWKSDeviations.extra)
	runWycheproof(t, wycheproofJWKSVerifier, deviations)
}

// errSkipGroup marks a key group a loader does not apply to.
var errSkipGroup = errors.New("key group does not apply")

func runWycheproof(t *testing.T, load func(json.RawMessage) (*verifier, error), deviations map[int]string) {
	raw, err := os.ReadFile(wycheproofJWS)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("Wycheproof vectors not found at %s (clone the shared testdata next to this repository to run them)", wycheproofJWS)
	}
	if err != nil {
		t.Fatal(err)
	}
	var file wycheproofFile
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parsing %s: %v", wycheproofJWS, err)
	}
	var total, agree, deviating, skipped int
	seen := map[int]bool{}
	for _, g := range file.TestGroups {
		jwkRaw := g.Public
		if len(jwkRaw) == 0 {
			jwkRaw = g.Private // HMAC groups: the shared secret is the "private" key
		}
		v, loadErr := load(jwkRaw)
		if errors.Is(loadErr, errSkipGroup) {
			for _, tc := range g.Tests {
				skipped++
				seen[tc.TcID] = true
				if _, known := deviations[tc.TcID]; known {
					t.Errorf("tcId %d is listed as a deviation, but its group is skipped here", tc.TcID)
				}
			}
			continue
		}
		for _, tc := range g.Tests {
			total++
			seen[tc.TcID] = true
			name := fmt.Sprintf("%d_%s_%s", tc.TcID, g.Comment, tc.Comment)
			accepted := false
			var why error = loadErr
			if loadErr == nil {
				if jws, ok := tc.JWS.(string); ok {
					_, _, why = v.verifySignature(jws)
					accepted = why == nil
				} else {
					why = errors.New("JSON serialization is not a compact JWS")
				}
			}
			agrees := tc.Result == "acceptable" || accepted == (tc.Result == "valid")
			reason, known := deviations[tc.TcID]
			switch {
			case agrees && known:
				t.Errorf("%s: listed as a deviation (%s) but now agrees with Wycheproof (%s); remove it from the list", name, reason, tc.Result)
			case agrees:
				agree++
			case known:
				deviating++
				t.Logf("%s: known deviation, Wycheproof %s, we %s: %s", name, tc.Result, verdict(accepted), reason)
			default:
				t.Errorf("%s: Wycheproof says %s, we %s (%v)", name, tc.Result, verdict(accepted), why)
			}
		}
	}
	for id := range deviations {
		if !seen[id] {
			t.Errorf("deviation for tcId %d names no vector in the file", id)
		}
	}
	if total+skipped != file.NumberOfTests {
		t.Errorf("ran %d vectors and skipped %d, the file declares %d", total, skipped, file.NumberOfTests)
	}
	t.Logf("Wycheproof JWS: %d vectors, %d agree, %d known deviations, %d other disagreements, %d skipped (shared-secret groups)", total, agree, deviating, total-agree-deviating, skipped)
}

func verdict(accepted bool) string {
	if accepted {
		return "accept"
	}
	return "reject"
}

// wycheproofJWKSVerifier serves the public JWK as a one-key JWKS document
// and parses it as a remote source would.
func wycheproofJWKSVerifier(raw json.RawMessage) (*verifier, error) {
	var jwk testJWK
	if err := json.Unmarshal(raw, &jwk); err != nil {
		return nil, err
	}
	if jwk.Kty == "oct" {
		return nil, errSkipGroup
	}
	set, problems, err := parseJWKS([]byte(`{"keys":[`+string(raw)+`]}`), keyTemplate{label: "wycheproof jwks"})
	if err != nil {
		return nil, err
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("the JWKS key was refused: %v", problems)
	}
	return newVerifier([]keySource{set}, "", nil, 0, 0, false, defaultMaxTokenSize, -1, time.Now), nil
}

// wycheproofVerifier loads the JWK as the one secret of a verifier.
func wycheproofVerifier(raw json.RawMessage) (*verifier, error) {
	var jwk testJWK
	if err := json.Unmarshal(raw, &jwk); err != nil {
		return nil, err
	}
	alg := jwk.Alg
	if _, ok := algorithms[alg]; !ok {
		// RFC 7520 writes "ES521"; a key without alg gets the algorithm an
		// operator would write for its type.
		alg = map[string]string{"RSA": "RS256", "oct": "HS256", "EC/P-256": "ES256", "EC/P-384": "ES384", "EC/P-521": "ES512"}[jwk.typ()]
	}
	value, err := jwk.secretValue()
	if err != nil {
		return nil, err
	}
	key, err := loadKey(alg, value)
	if err != nil {
		return nil, fmt.Errorf("loading the key: %w", err)
	}
	if b, ok := key.([]byte); ok {
		if err := checkHMACLength(alg, b, false); err != nil {
			return nil, err
		}
	}
	vk := &verifyKey{alg: alg, method: algorithms[alg].method, key: key, kid: jwk.Kid, label: "wycheproof"}
	return newVerifier([]keySource{newStaticKeys([]*verifyKey{vk})}, "", nil, 0, 0, false, defaultMaxTokenSize, -1, time.Now), nil
}

func (k testJWK) typ() string {
	if k.Kty == "EC" {
		return "EC/" + k.Crv
	}
	return k.Kty
}

// secretValue renders the JWK as the value of a `secret` directive: the
// shared secret itself for oct keys, PKIX PEM text for public keys.
func (k testJWK) secretValue() (string, error) {
	b := func(s string) *big.Int {
		raw, err := strictB64.DecodeString(s)
		if err != nil {
			return nil
		}
		return new(big.Int).SetBytes(raw)
	}
	var pub any
	switch k.typ() {
	case "oct":
		raw, err := strictB64.DecodeString(k.K)
		return string(raw), err
	case "RSA":
		n, e := b(k.N), b(k.E)
		if n == nil || e == nil {
			return "", errors.New("bad RSA JWK")
		}
		pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC/P-256", "EC/P-384", "EC/P-521":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k.Crv]
		x, y := b(k.X), b(k.Y)
		if x == nil || y == nil {
			return "", errors.New("bad EC JWK")
		}
		pub = &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
	default:
		return "", fmt.Errorf("unsupported JWK type %s", k.typ())
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
