package jwtguard

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2"
)

// Secret is one key that may verify a token. A token is valid when any one
// configured secret verifies it.
type Secret struct {
	// Alg is the JWS algorithm this secret verifies, and the only one:
	// HS256, HS384, HS512 (HMAC shared secrets), RS256, RS384, RS512,
	// PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA (public keys).
	// Space Cloud's name RS256_PUBLIC is accepted as RS256. The token's
	// `alg` header only selects among secrets: it can never make a public
	// key act as an HMAC secret. `jwks` and `oidc` (and Space Cloud's
	// `JWK_URL`) name remote key sources. Required. No placeholders.
	Alg string `json:"alg"`

	// Value is the key material. For HMAC algorithms it is the shared
	// secret itself. For public-key algorithms it is PEM text (a PKIX
	// public key, a PKCS#1 RSA public key or an X.509 certificate) or the
	// path of a file holding one. For `jwks` it is the JWKS URL, for `oidc`
	// the issuer URL (https, or http to a loopback host unless allow_http).
	// Global placeholders such as {env.JWT_SECRET} and
	// {file./run/secrets/jwt} are expanded when the config loads.
	Value string `json:"value,omitempty"`

	// KID is the key ID. A token whose `kid` header equals it is checked
	// against this secret only; a secret with a KID is not tried for tokens
	// that carry another `kid`; at most 256 bytes. For jwks and oidc, only
	// the key of the set with this kid is used. Default: none (tried for
	// every token of its algorithm). No placeholders.
	KID string `json:"kid,omitempty"`

	// Issuer, when set, is the `iss` value tokens verified by this secret
	// must carry, on top of the handler-wide issuer. For oidc it is implied
	// (the issuer URL) and may be left out. Default: no check. No
	// placeholders.
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, lists audiences of which a token verified by this
	// secret must name at least one in its `aud` claim, on top of the
	// handler-wide audience. Default: no check. No placeholders.
	Audience []string `json:"audience,omitempty"`

	// AllowShortSecret accepts an HMAC secret shorter than the hash output
	// (32 bytes for HS256, 48 for HS384, 64 for HS512). Short secrets can be
	// brute-forced offline from a single token; only use this for a legacy
	// issuer you cannot change. Default: false. No placeholders.
	AllowShortSecret bool `json:"allow_short_secret,omitempty"`

	// The options below are for `jwks` and `oidc` secrets only (an error on
	// other secrets), and take no placeholders.

	// RefreshInterval is how often the key set is fetched again; a shorter
	// Cache-Control max-age from the server is honoured, down to 1m (or
	// min_refetch_interval when longer). Default: 10m; at least 1s.
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	// MinRefetchInterval is the least time between two fetches caused by
	// tokens whose kid is not in the key set (a rotation, or an attacker
	// sending random kids). Default: 30s.
	MinRefetchInterval caddy.Duration `json:"min_refetch_interval,omitempty"`

	// Timeout bounds each fetch (discovery and JWKS together). Caddy waits
	// at most this long at startup for the first fetch; when it fails,
	// Caddy starts anyway and tokens for this secret are refused until
	// keys arrive. Default: 5s; at most 1m.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// MaxResponseSize is the largest discovery or JWKS response read, in
	// bytes. Default: 1048576 (1 MiB).
	MaxResponseSize int64 `json:"max_response_size,omitempty"`

	// AllowHTTP permits a plain http URL (and redirects to one) to a host
	// that is not loopback. Keys fetched in clear text can be swapped by
	// anyone on the network path; use only inside a trusted network.
	// Default: false (https, or http to localhost/127.0.0.1/::1).
	AllowHTTP bool `json:"allow_http,omitempty"`
}

// remoteOptionsSet reports whether an option for remote key sources is
// set, which is an error on a static secret.
func (s *Secret) remoteOptionsSet() bool {
	return s.RefreshInterval != 0 || s.MinRefetchInterval != 0 || s.Timeout != 0 || s.MaxResponseSize != 0 || s.AllowHTTP
}

// Algorithm families. Each key is bound to exactly one algorithm at load
// time; keyFamily only says which kind of key material that algorithm needs.
const (
	familyHMAC = "HMAC"
	familyRSA  = "RSA"
	familyEC   = "EC"
	familyEd   = "EdDSA"
)

type algInfo struct {
	method jwt.SigningMethod
	family string
	// hmacLen is the minimum HMAC secret length; curve is the ECDSA curve.
	hmacLen int
	curve   elliptic.Curve
}

var algorithms = map[string]algInfo{
	"HS256": {method: jwt.SigningMethodHS256, family: familyHMAC, hmacLen: 32},
	"HS384": {method: jwt.SigningMethodHS384, family: familyHMAC, hmacLen: 48},
	"HS512": {method: jwt.SigningMethodHS512, family: familyHMAC, hmacLen: 64},
	"RS256": {method: jwt.SigningMethodRS256, family: familyRSA},
	"RS384": {method: jwt.SigningMethodRS384, family: familyRSA},
	"RS512": {method: jwt.SigningMethodRS512, family: familyRSA},
	"PS256": {method: strictPSS(jwt.SigningMethodPS256), family: familyRSA},
	"PS384": {method: strictPSS(jwt.SigningMethodPS384), family: familyRSA},
	"PS512": {method: strictPSS(jwt.SigningMethodPS512), family: familyRSA},
	"ES256": {method: jwt.SigningMethodES256, family: familyEC, curve: elliptic.P256()},
	"ES384": {method: jwt.SigningMethodES384, family: familyEC, curve: elliptic.P384()},
	"ES512": {method: jwt.SigningMethodES512, family: familyEC, curve: elliptic.P521()},
	"EdDSA": {method: jwt.SigningMethodEdDSA, family: familyEd},
}

// strictPSS verifies RSASSA-PSS with the salt as long as the hash, as RFC
// 7518 §3.5 requires; golang-jwt's PS* methods accept any salt length
// (Wycheproof's SaltLenChanged vectors), which gives one message many
// valid signatures.
func strictPSS(m *jwt.SigningMethodRSAPSS) jwt.SigningMethod {
	return &jwt.SigningMethodRSAPSS{
		SigningMethodRSA: m.SigningMethodRSA,
		Options:          &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash},
	}
}

// Space Cloud's secret names, so its configs carry over.
var algAliases = map[string]string{
	"RS256_PUBLIC": "RS256",
	"JWK_URL":      "jwks",
}

// Remote key sources, handled by jwks.go.
const (
	algJWKS = "jwks"
	algOIDC = "oidc"
)

// RSA modulus bounds: below 2048 bits is breakable, above 16384 bits makes
// every verification a denial-of-service lever.
const (
	minRSABits = 2048
	maxRSABits = 16384
)

// canonicalAlg resolves aliases; it reports false for an unknown name.
func canonicalAlg(alg string) (string, bool) {
	if a, ok := algAliases[alg]; ok {
		alg = a
	}
	if alg == algJWKS || alg == algOIDC {
		return alg, true
	}
	_, ok := algorithms[alg]
	return alg, ok
}

func knownAlgNames() string {
	return "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, jwks, oidc"
}

// loadKey turns a secret's (already expanded) value into key material bound
// to alg. It never puts the value itself into an error.
func loadKey(alg, value string) (any, error) {
	info, ok := algorithms[alg]
	if !ok {
		return nil, fmt.Errorf("unknown algorithm %q (want one of %s)", alg, knownAlgNames())
	}
	if value == "" {
		return nil, errors.New("the secret value is empty")
	}
	if info.family == familyHMAC {
		// A public key loaded as an HMAC secret lets anyone who has the
		// public key forge tokens (algorithm confusion).
		if strings.Contains(value, "-----BEGIN") {
			return nil, fmt.Errorf("%s needs a shared secret, but the value is PEM text; use RS256, ES256 or EdDSA for public keys", alg)
		}
		// The same mistake in the other spellings of a public key.
		if kind := publicKeyForm(value); kind != "" {
			return nil, fmt.Errorf("%s needs a shared secret, but the value is %s; use RS256, ES256 or EdDSA for public keys", alg, kind)
		}
		// A file path would silently become a guessable secret.
		if strings.HasPrefix(value, "/") || strings.HasPrefix(value, "./") {
			if _, err := os.Stat(value); err == nil {
				return nil, fmt.Errorf("%s secret is the path of an existing file; to read the secret from it write {file.%s}", alg, value)
			}
		}
		return []byte(value), nil
	}

	pemText := []byte(value)
	source := "the inline PEM"
	if !strings.HasPrefix(strings.TrimSpace(value), "-----BEGIN") {
		b, err := readKeyFile(value)
		if err != nil {
			if _, statErr := os.Stat(value); statErr != nil {
				// Not a file, so maybe not a path at all: a shared secret
				// given a public-key algorithm must not reach the logs.
				return nil, errors.New("reading public key file: the value is neither PEM text nor the path of an existing file")
			}
			return nil, fmt.Errorf("reading public key file: %w", err)
		}
		pemText, source = b, "key file "+value
	}
	pub, err := parsePublicKeyPEM(pemText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := checkKeyFits(alg, info, pub); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return pub, nil
}

// maxKeyFileSize bounds a key file: a PEM public key or certificate is a
// few KiB, and a path such as /dev/zero must not hang the config load.
const maxKeyFileSize = 1 << 20

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err == nil && len(b) > maxKeyFileSize {
		err = fmt.Errorf("%s is larger than %d bytes", path, maxKeyFileSize)
	}
	return b, err
}

// publicKeyForm names the public-key encoding value is in, if any: a JWK
// or the base64 of a DER public key. Either one used as an HMAC secret lets
// anyone who has the public key forge tokens.
func publicKeyForm(value string) string {
	v := strings.TrimSpace(value)
	var jwk struct {
		Kty string `json:"kty"`
	}
	if strings.HasPrefix(v, "{") && json.Unmarshal([]byte(v), &jwk) == nil && jwk.Kty != "" {
		return "a JWK"
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(v); err == nil {
			if _, err := x509.ParsePKIXPublicKey(der); err == nil {
				return "a base64 DER public key"
			}
			if _, err := x509.ParsePKCS1PublicKey(der); err == nil {
				return "a base64 DER public key"
			}
			if _, err := x509.ParseCertificate(der); err == nil {
				return "a base64 DER certificate"
			}
		}
	}
	return ""
}

// parsePublicKeyPEM reads the first PEM block: a PKIX public key, a PKCS#1
// RSA public key or an X.509 certificate. Private keys are refused: a
// verifier never needs one, and holding one in a web server config is a leak
// waiting to happen.
func parsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found (want -----BEGIN PUBLIC KEY-----, RSA PUBLIC KEY or CERTIFICATE)")
	}
	switch block.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PUBLIC KEY: %w", err)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing RSA PUBLIC KEY: %w", err)
		}
		return pub, nil
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing CERTIFICATE: %w", err)
		}
		return cert.PublicKey, nil
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("holds a %s; give the public key instead (openssl pkey -pubout)", block.Type)
		}
		return nil, fmt.Errorf("unsupported PEM block %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
}

// checkKeyFits makes sure the key is of the kind alg verifies with.
func checkKeyFits(alg string, info algInfo, pub any) error {
	switch info.family {
	case familyRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA public key, but this is %s", alg, describeKey(pub))
		}
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return fmt.Errorf("RSA key is %d bits; jwt_guard accepts %d to %d", bits, minRSABits, maxRSABits)
		}
	case familyEC:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != info.curve {
			return fmt.Errorf("%s needs an ECDSA %s public key, but this is %s", alg, info.curve.Params().Name, describeKey(pub))
		}
	case familyEd:
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return fmt.Errorf("EdDSA needs an Ed25519 public key, but this is %s", describeKey(pub))
		}
	}
	return nil
}

func describeKey(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("an RSA %d-bit key", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	default:
		return fmt.Sprintf("a %T", pub)
	}
}

// checkHMACLength refuses secrets shorter than the hash output, which can be
// brute-forced offline from any token (hashcat mode 16500).
func checkHMACLength(alg string, secret []byte, allowShort bool) error {
	info := algorithms[alg]
	if info.family != familyHMAC || allowShort || len(secret) >= info.hmacLen {
		return nil
	}
	return fmt.Errorf("%s secret is %d bytes; it must be at least %d (generate one with: openssl rand -base64 %d), or set allow_short_secret",
		alg, len(secret), info.hmacLen, info.hmacLen)
}
