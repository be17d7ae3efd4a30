package jwtguard

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// JWK (RFC 7517) to Go key conversion. Every key leaves here bound to one
// algorithm: the JWK's own `alg`, or when it has none (Azure AD publishes
// none), the one its kty/crv implies. A token's `alg` header can then only
// select a key, never widen what a key verifies.

// maxJWKSKeys bounds a key set: a token without `kid` is tried against
// every key of its algorithm, so the set size is a cost an attacker can
// multiply.
const maxJWKSKeys = 64

// jwk holds the members we read; private members (d, p, q, ...) and x5c
// are ignored.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// jwkSet is one parsed JWKS document.
type jwkSet struct {
	keys  []*verifyKey
	byKID map[string][]*verifyKey
	byAlg map[string][]*verifyKey
}

// jwkProblem is something wrong with one key of a set; the key is skipped
// and the rest of the set is still used, so one odd key at the provider
// does not become an outage.
type jwkProblem struct {
	kid string
	// level is "warn" for a key refused for safety, "debug" for a key
	// of a kind we do not use, "error" for a duplicate kid.
	level string
	msg   string
}

// keyTemplate carries the per-secret claim checks into every key.
type keyTemplate struct {
	kid      string // only this kid is used, when set
	issuer   string
	audience []string
	label    string
}

// parseJWKS decodes a JWKS document into keys bound to algorithms. An
// error means the document as a whole is unusable (the caller keeps its
// previous keys); problems with single keys are reported and skipped.
func parseJWKS(body []byte, tmpl keyTemplate) (*jwkSet, []jwkProblem, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if !isJSONObject(body) {
		return nil, nil, errors.New("response is not a JSON object")
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`JWKS has no "keys" array`)
	}
	set := &jwkSet{byKID: map[string][]*verifyKey{}, byAlg: map[string][]*verifyKey{}}
	var problems []jwkProblem
	seen := map[string]bool{}
	for i, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			problems = append(problems, jwkProblem{level: "warn", msg: fmt.Sprintf("key %d is not a JWK object", i)})
			continue
		}
		if tmpl.kid != "" && j.Kid != tmpl.kid {
			continue
		}
		if len(j.Kid) > maxKIDLength {
			problems = append(problems, jwkProblem{level: "warn", msg: fmt.Sprintf("key %d: kid is longer than %d bytes", i, maxKIDLength)})
			continue
		}
		alg, key, level, err := j.verificationKey()
		if err != nil {
			problems = append(problems, jwkProblem{kid: j.Kid, level: level, msg: err.Error()})
			continue
		}
		if j.Kid != "" {
			// Two keys under one kid make "which key signed this" a
			// question the publisher answers, not us: keep the first.
			if seen[j.Kid] {
				problems = append(problems, jwkProblem{kid: j.Kid, level: "error", msg: "duplicate kid; only the first key with it is used"})
				continue
			}
			seen[j.Kid] = true
		}
		if len(set.keys) == maxJWKSKeys {
			problems = append(problems, jwkProblem{level: "warn", msg: fmt.Sprintf("more than %d usable keys; the rest are ignored", maxJWKSKeys)})
			break
		}
		label := tmpl.label
		if j.Kid != "" {
			label += " kid " + j.Kid
		}
		k := &verifyKey{
			alg: alg, method: algorithms[alg].method, key: key, kid: j.Kid,
			issuer: tmpl.issuer, audience: tmpl.audience, label: label,
		}
		set.keys = append(set.keys, k)
		if k.kid != "" {
			set.byKID[k.kid] = append(set.byKID[k.kid], k)
		}
		set.byAlg[alg] = append(set.byAlg[alg], k)
	}
	return set, problems, nil
}

// verificationKey converts the JWK and binds it to its algorithm. level
// says how loudly to report a refusal.
func (j *jwk) verificationKey() (alg string, key any, level string, err error) {
	if j.Use != "" && j.Use != "sig" {
		return "", nil, "debug", fmt.Errorf("use %q is not sig", j.Use)
	}
	if j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify") {
		return "", nil, "debug", errors.New("key_ops does not include verify")
	}
	switch j.Kty {
	case "RSA":
		alg = cmp.Or(j.Alg, "RS256")
		key, err = j.rsaKey()
	case "EC":
		var implied string
		switch j.Crv {
		case "P-256":
			implied = "ES256"
		case "P-384":
			implied = "ES384"
		case "P-521":
			implied = "ES512"
		default:
			return "", nil, "debug", fmt.Errorf("EC curve %q is not supported", j.Crv)
		}
		alg = cmp.Or(j.Alg, implied)
		key, err = j.ecKey(algorithms[implied].curve)
	case "OKP":
		if j.Crv != "Ed25519" {
			return "", nil, "debug", fmt.Errorf("OKP curve %q is not supported", j.Crv)
		}
		alg = cmp.Or(j.Alg, "EdDSA")
		key, err = j.edKey()
	case "oct":
		// A shared secret published at a URL is no secret; accepting one
		// would let anyone who can read the JWKS mint tokens.
		return "", nil, "warn", errors.New("oct (symmetric) keys are refused in a remote JWKS")
	default:
		return "", nil, "debug", fmt.Errorf("kty %q is not supported", j.Kty)
	}
	if err != nil {
		return "", nil, "warn", err
	}
	info, ok := algorithms[alg]
	if !ok || info.family == familyHMAC {
		return "", nil, "warn", fmt.Errorf("alg %q is not a supported signature algorithm for kty %s", j.Alg, j.Kty)
	}
	if err := checkKeyFits(alg, info, key); err != nil {
		return "", nil, "warn", err
	}
	return alg, key, "", nil
}

func (j *jwk) rsaKey() (*rsa.PublicKey, error) {
	n, err := b64Member("n", j.N)
	if err != nil {
		return nil, err
	}
	e, err := b64Member("e", j.E)
	if err != nil {
		return nil, err
	}
	e = bytes.TrimLeft(e, "\x00")
	// A public exponent fits an int and is odd and > 1; anything else is
	// a broken or hostile key.
	if len(e) == 0 || len(e) > 4 || len(n) == 0 || n[0] == 0 {
		return nil, errors.New("RSA key has a malformed n or e")
	}
	exp := int(new(big.Int).SetBytes(e).Int64())
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("RSA key has an invalid exponent")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func (j *jwk) ecKey(curve elliptic.Curve) (*ecdsa.PublicKey, error) {
	x, err := b64Member("x", j.X)
	if err != nil {
		return nil, err
	}
	y, err := b64Member("y", j.Y)
	if err != nil {
		return nil, err
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("EC %s key coordinates are not %d bytes", j.Crv, size)
	}
	// ParseUncompressedPublicKey checks that the point is on the curve
	// (invalid-curve attacks).
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("EC %s key is not a valid point", j.Crv)
	}
	return pub, nil
}

func (j *jwk) edKey() (ed25519.PublicKey, error) {
	x, err := b64Member("x", j.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, errors.New("Ed25519 key is not 32 bytes")
	}
	return ed25519.PublicKey(x), nil
}

// b64Member decodes a base64url member; some publishers pad, so padding
// is tolerated here (these are keys, not token bytes that need one
// spelling).
func b64Member(name, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("member %q is missing", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("member %q is not base64url", name)
	}
	return b, nil
}

// lookup follows staticKeys: a kid selects the keys with that kid, no kid
// selects every key of the algorithm.
func (s *jwkSet) lookup(alg, kid string, dst []*verifyKey) []*verifyKey {
	if s == nil {
		return dst
	}
	if kid != "" {
		for _, k := range s.byKID[kid] {
			if k.alg == alg {
				dst = append(dst, k)
			}
		}
		return dst
	}
	return append(dst, s.byAlg[alg]...)
}

// sameKey reports whether two keys verify exactly the same tokens, so a
// refresh that republishes a key keeps the old *verifyKey (and the cached
// verdicts that point at it).
func sameKey(a, b *verifyKey) bool {
	if a.alg != b.alg || a.kid != b.kid {
		return false
	}
	ea, ok := a.key.(interface{ Equal(x crypto.PublicKey) bool })
	return ok && ea.Equal(b.key)
}
