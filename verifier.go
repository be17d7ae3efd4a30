package jwtguard

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// TokenSource names one more place, besides the Authorization header, where
// a request may carry its token. Exactly one field is set.
type TokenSource struct {
	// Cookie is the name of a cookie holding the bare token (Caddyfile:
	// from_cookie). No default; placeholders are not expanded.
	Cookie string `json:"cookie,omitempty"`

	// Query is the name of a query parameter holding the bare token
	// (Caddyfile: from_query). No default; placeholders are not expanded.
	// Note that Caddy's access log records the full URI, token included.
	Query string `json:"query,omitempty"`
}

func (s TokenSource) String() string {
	if s.Cookie != "" {
		return "cookie " + s.Cookie
	}
	return "query parameter " + s.Query
}

// Default limits on what an attacker controls.
const (
	defaultMaxTokenSize = 8 << 10 // 8 KiB: far above real tokens, far below MaxHeaderBytes
	maxKIDLength        = 256
	defaultLeeway       = 30 * time.Second
	maxLeeway           = 5 * time.Minute
)

// Limits on the JSON inside a token.
const (
	// maxJSONDepth bounds the nesting of header and payload: real claim
	// sets nest three or four levels, and every walk over the claims
	// (placeholders, rules) stays shallow.
	maxJSONDepth = 32
	// maxNumericDate is 9999-12-31T23:59:59Z: a larger exp/nbf/iat is a
	// mistake or an attempt to overflow time arithmetic.
	maxNumericDate = 253402300799
)

// tokenError is why a request's credentials were refused. Description is a
// short fixed sentence that is safe to send to the client (RFC 6750
// error_description); it never contains any part of the token.
type tokenError struct {
	// code is the RFC 6750 error code: invalid_request or invalid_token;
	// empty when the request carried no token at all.
	code        string
	description string
	status      int
}

func (e *tokenError) Error() string { return e.description }

var (
	errTokenMissing    = &tokenError{"", "no token", http.StatusUnauthorized}
	errNotBearer       = &tokenError{"invalid_request", "authorization scheme must be Bearer", http.StatusBadRequest}
	errEmptyBearer     = &tokenError{"invalid_request", "bearer token is empty", http.StatusBadRequest}
	errRepeatedAuth    = &tokenError{"invalid_request", "more than one Authorization header", http.StatusBadRequest}
	errMultipleTokens  = &tokenError{"invalid_request", "token sent by more than one method", http.StatusBadRequest}
	errTokenTooLarge   = &tokenError{"invalid_token", "token is too large", http.StatusUnauthorized}
	errTokenMalformed  = &tokenError{"invalid_token", "token is malformed", http.StatusUnauthorized}
	errNoKey           = &tokenError{"invalid_token", "no key accepts this token", http.StatusUnauthorized}
	errSignature       = &tokenError{"invalid_token", "token signature is invalid", http.StatusUnauthorized}
	errExpired         = &tokenError{"invalid_token", "token has expired", http.StatusUnauthorized}
	errNotYetValid     = &tokenError{"invalid_token", "token is not valid yet", http.StatusUnauthorized}
	errIssuedInFuture  = &tokenError{"invalid_token", "token was issued in the future", http.StatusUnauthorized}
	errNoExpiry        = &tokenError{"invalid_token", "token has no expiry", http.StatusUnauthorized}
	errLifetime        = &tokenError{"invalid_token", "token lifetime is too long", http.StatusUnauthorized}
	errClaimsMalformed = &tokenError{"invalid_token", "token claims are malformed", http.StatusUnauthorized}
	errIssuer          = &tokenError{"invalid_token", "token issuer is not accepted", http.StatusUnauthorized}
	errAudience        = &tokenError{"invalid_token", "token audience is not accepted", http.StatusUnauthorized}
	errCrit            = &tokenError{"invalid_token", "token has critical header extensions", http.StatusUnauthorized}
)

// extractToken finds the request's token: the Authorization header first,
// then the configured sources in order. A request that sends two different
// tokens is malformed (RFC 6750 §2: clients must use one method).
func extractToken(r *http.Request, sources []TokenSource) (string, error) {
	var token string
	switch auth := r.Header.Values("Authorization"); len(auth) {
	case 0:
	case 1:
		scheme, rest, _ := strings.Cut(strings.TrimSpace(auth[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", errNotBearer
		}
		token = strings.TrimSpace(rest)
		if token == "" {
			return "", errEmptyBearer
		}
	default:
		return "", errRepeatedAuth
	}
	if len(sources) == 0 {
		return token, nil
	}
	var query map[string][]string
	for _, src := range sources {
		// A name repeated with different values is two tokens: we would
		// verify one while the backend might read the other.
		var values []string
		if src.Cookie != "" {
			for _, c := range r.CookiesNamed(src.Cookie) {
				values = append(values, c.Value)
			}
		} else {
			if query == nil {
				query = r.URL.Query()
			}
			values = query[src.Query]
		}
		var found string
		for _, v := range values {
			if found != "" && v != "" && v != found {
				return "", errMultipleTokens
			}
			if v != "" {
				found = v
			}
		}
		switch {
		case found == "" || found == token:
		case token == "":
			token = found
		default:
			return "", errMultipleTokens
		}
	}
	return token, nil
}

// verifyKey is one key bound to one algorithm, with the claim checks of the
// secret it came from.
type verifyKey struct {
	alg      string
	method   jwt.SigningMethod
	key      any
	kid      string
	issuer   string
	audience []string
	// label names the key in logs ("secret 2 (RS256)"); never key material.
	label string
	// removed is set when a JWKS refresh no longer lists the key; cached
	// verdicts made with it are then dropped.
	removed atomic.Bool
}

// keySource hands out the keys that may verify a token with the given alg
// and kid. Static secrets and JWKS caches implement it.
type keySource interface {
	lookup(alg, kid string, dst []*verifyKey) []*verifyKey
}

// refetcher is a keySource whose keys can change (a JWKS): when no key
// matched a token, refetch looks again, rate-limited, and reports whether
// a new lookup may find one.
type refetcher interface {
	refetch(alg, kid string) bool
}

// staticKeys are secrets from the configuration.
type staticKeys struct {
	byKID map[string]*verifyKey
	byAlg map[string][]*verifyKey
}

func newStaticKeys(keys []*verifyKey) *staticKeys {
	s := &staticKeys{byKID: map[string]*verifyKey{}, byAlg: map[string][]*verifyKey{}}
	for _, k := range keys {
		if k.kid != "" {
			s.byKID[k.kid] = k
		}
		s.byAlg[k.alg] = append(s.byAlg[k.alg], k)
	}
	return s
}

// lookup: a kid that names a secret selects that secret only; a kid that
// names none selects the secrets without a kid; no kid selects every secret
// of the algorithm.
func (s *staticKeys) lookup(alg, kid string, dst []*verifyKey) []*verifyKey {
	if kid != "" {
		if k, ok := s.byKID[kid]; ok {
			if k.alg == alg {
				dst = append(dst, k)
			}
			return dst
		}
	}
	for _, k := range s.byAlg[alg] {
		if kid == "" || k.kid == "" {
			dst = append(dst, k)
		}
	}
	return dst
}

// identity is a verified token. It is shared by every request that sends
// the same token (see tokenCache): never modify it after verification.
type identity struct {
	token  string
	claims map[string]any
	key    *verifyKey
	// expires is the exp claim, zero when the token has none.
	expires time.Time
}

// verifier checks tokens against a key set and the claim policy.
type verifier struct {
	sources      []keySource
	issuer       string
	audience     []string
	requireExp   bool
	maxLifetime  time.Duration
	leeway       time.Duration
	maxTokenSize int
	validator    *jwt.Validator
	now          func() time.Time
	cache        *tokenCache
}

func newVerifier(sources []keySource, issuer string, audience []string, leeway, maxLifetime time.Duration, requireExp bool, maxTokenSize, cacheSize int, now func() time.Time) *verifier {
	v := &verifier{
		sources: sources, issuer: issuer, audience: audience,
		leeway: leeway, maxLifetime: maxLifetime, requireExp: requireExp || maxLifetime > 0,
		maxTokenSize: maxTokenSize, now: now, cache: newTokenCache(cacheSize),
	}
	opts := []jwt.ParserOption{jwt.WithLeeway(leeway), jwt.WithIssuedAt(), jwt.WithTimeFunc(now)}
	if v.requireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	v.validator = jwt.NewValidator(opts...)
	return v
}

// strictB64 rejects non-canonical encodings (non-zero trailing bits), so one
// token has one spelling.
var strictB64 = base64.RawURLEncoding.Strict()

// verify checks a compact JWS and its claims. Cheap checks run first so that
// garbage never reaches the crypto.
func (v *verifier) verify(token string) (*identity, error) {
	if len(token) > v.maxTokenSize {
		return nil, errTokenTooLarge
	}
	if id := v.cache.get(token, v.now()); id != nil && !id.key.removed.Load() {
		return id, nil
	}
	key, payload, err := v.verifySignature(token)
	if err != nil {
		return nil, err
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	id := &identity{token: token, claims: claims, key: key}
	if err := v.checkClaims(id); err != nil {
		return nil, err
	}
	v.cache.put(id, v.now(), v.leeway)
	return id, nil
}

// verifySignature is the JWS layer of verify: structure, header, key
// selection, signature and the payload's base64. It returns the key that
// verified the token and the payload bytes.
func (v *verifier) verifySignature(token string) (*verifyKey, []byte, error) {
	headerB64, payloadB64, sigB64, ok := splitCompact(token)
	if !ok {
		return nil, nil, errTokenMalformed
	}
	hdr, err := parseHeader(headerB64)
	if err != nil {
		return nil, nil, err
	}
	var buf [4]*verifyKey
	candidates := buf[:0]
	for _, src := range v.sources {
		candidates = src.lookup(hdr.alg, hdr.kid, candidates)
	}
	refetched := false
	if len(candidates) == 0 {
		candidates, refetched = v.refetch(hdr, candidates), true
		if len(candidates) == 0 {
			return nil, nil, errNoKey
		}
	}
	sig, err := strictB64.DecodeString(sigB64)
	if err != nil {
		return nil, nil, errTokenMalformed
	}
	signingInput := token[:len(headerB64)+1+len(payloadB64)]
	key := firstVerifying(candidates, signingInput, sig)
	if key == nil && !refetched && hdr.kid != "" {
		// Only kid-less static secrets were tried; the kid may belong to
		// a key a JWKS has rotated in since.
		key = firstVerifying(v.refetch(hdr, candidates[:0]), signingInput, sig)
	}
	if key == nil {
		return nil, nil, errSignature
	}
	// The signature covers the encoded payload; a non-canonical encoding
	// is still refused, so one payload has one spelling.
	payload, err := strictB64.DecodeString(payloadB64)
	if err != nil {
		return nil, nil, errTokenMalformed
	}
	return key, payload, nil
}

// refetch asks the sources whose keys can change to look again for a
// token no key matched, and returns what they now offer.
func (v *verifier) refetch(hdr joseHeader, dst []*verifyKey) []*verifyKey {
	for _, src := range v.sources {
		if r, ok := src.(refetcher); ok && r.refetch(hdr.alg, hdr.kid) {
			dst = src.lookup(hdr.alg, hdr.kid, dst)
		}
	}
	return dst
}

func firstVerifying(keys []*verifyKey, signingInput string, sig []byte) *verifyKey {
	for _, k := range keys {
		if k.method.Verify(signingInput, sig, k.key) == nil {
			return k
		}
	}
	return nil
}

// splitCompact splits header.payload.signature, requiring three non-empty
// segments of the base64url alphabet without padding or whitespace.
func splitCompact(token string) (h, p, s string, ok bool) {
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
			if dots > 2 {
				return "", "", "", false
			}
		default:
			return "", "", "", false
		}
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ = strings.Cut(rest, ".")
	return h, p, s, dots == 2 && h != "" && p != "" && s != ""
}

type joseHeader struct {
	alg string
	kid string
}

// parseHeader reads the JOSE header. Member names are matched exactly (Go's
// struct decoding would accept "ALG"), jku/x5u/jwk/x5c are never used as key
// sources, and crit is refused because we implement no extension.
// Duplicate member names are refused (RFC 7515 §4 allows last-wins, but a
// parser that reads the first "alg" would then disagree with us).
func parseHeader(b64 string) (joseHeader, error) {
	raw, err := strictB64.DecodeString(b64)
	if err != nil {
		return joseHeader{}, errTokenMalformed
	}
	shape, ok := scanJSON(raw)
	if !ok {
		return joseHeader{}, errTokenMalformed
	}
	var fields map[string]json.RawMessage
	if !isJSONObject(raw) || json.Unmarshal(raw, &fields) != nil || len(fields) != shape.topMembers {
		return joseHeader{}, errTokenMalformed
	}
	if _, ok := fields["crit"]; ok {
		return joseHeader{}, errCrit
	}
	var h joseHeader
	if json.Unmarshal(fields["alg"], &h.alg) != nil || h.alg == "" {
		return joseHeader{}, errTokenMalformed
	}
	if k, ok := fields["kid"]; ok {
		if json.Unmarshal(k, &h.kid) != nil || len(h.kid) > maxKIDLength {
			return joseHeader{}, errTokenMalformed
		}
	}
	return h, nil
}

// decodeClaims decodes the payload into a claims map, keeping numbers as
// json.Number so they render exactly as written and compare without float
// rounding. A payload that is not a JSON object (including null) is refused,
// and so are duplicate member names at any depth: RFC 7519 §4 allows
// last-wins, but a backend reading the first "sub" or "role" would then
// see another identity than the one we authorized.
func decodeClaims(raw []byte) (map[string]any, error) {
	if !isJSONObject(raw) {
		return nil, errTokenMalformed
	}
	shape, ok := scanJSON(raw)
	if !ok {
		return nil, errTokenMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var claims map[string]any
	// Nothing but whitespace may follow the object (dec.More alone lets a
	// stray "]" or "}" through).
	if dec.Decode(&claims) != nil || len(bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, errTokenMalformed
	}
	if countMembers(claims) != shape.members {
		return nil, errTokenMalformed
	}
	return claims, nil
}

func isJSONObject(raw []byte) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// jsonShape is what scanJSON learns of a JSON text without decoding it.
type jsonShape struct {
	// members counts object members at every depth, topMembers those of
	// the outermost object; compared with what the decoder kept, they
	// reveal duplicate names.
	members, topMembers int
}

// scanJSON checks what encoding/json lets through: invalid UTF-8 (which it
// silently turns into U+FFFD, so two spellings would decode alike) and
// nesting deeper than maxJSONDepth. It relies on the decoder for syntax;
// outside strings, ':' only ever separates an object member's name from
// its value.
func scanJSON(raw []byte) (jsonShape, bool) {
	if !utf8.Valid(raw) {
		return jsonShape{}, false
	}
	var s jsonShape
	depth, inString := 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return jsonShape{}, false
			}
		case '}', ']':
			depth--
		case ':':
			s.members++
			if depth == 1 {
				s.topMembers++
			}
		}
	}
	return s, true
}

// countMembers counts the object members of a decoded JSON value; its
// depth is bounded by scanJSON.
func countMembers(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		n += len(x)
		for _, e := range x {
			n += countMembers(e)
		}
	case []any:
		for _, e := range x {
			n += countMembers(e)
		}
	}
	return n
}

// checkClaimTypes enforces the registered claims' types (RFC 7519 §4.1)
// itself: golang-jwt accepts an `aud` of any non-array type as absent and
// turns an out-of-range date into an arbitrary time.
func checkClaimTypes(claims map[string]any) error {
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		n, isNum := v.(json.Number)
		if !isNum {
			return errClaimsMalformed
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f < 0 || f > maxNumericDate {
			return errClaimsMalformed
		}
	}
	for _, name := range [...]string{"iss", "sub"} {
		if v, ok := claims[name]; ok {
			if _, isStr := v.(string); !isStr {
				return errClaimsMalformed
			}
		}
	}
	switch aud := claims["aud"].(type) {
	case nil:
		if _, ok := claims["aud"]; ok {
			return errClaimsMalformed // null
		}
	case string:
	case []any:
		for _, a := range aud {
			if _, isStr := a.(string); !isStr {
				return errClaimsMalformed
			}
		}
	default:
		return errClaimsMalformed
	}
	return nil
}

// checkClaims applies the time checks (with leeway), claim types, issuer and
// audience, and the lifetime limit.
func (v *verifier) checkClaims(id *identity) error {
	if err := checkClaimTypes(id.claims); err != nil {
		return err
	}
	mc := jwt.MapClaims(id.claims)
	if err := v.validator.Validate(mc); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return errExpired
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return errNotYetValid
		case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			return errIssuedInFuture
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return errNoExpiry
		default:
			return errClaimsMalformed
		}
	}
	iss, err := mc.GetIssuer()
	if err != nil {
		return errClaimsMalformed
	}
	if _, err := mc.GetSubject(); err != nil {
		return errClaimsMalformed
	}
	aud, err := mc.GetAudience()
	if err != nil {
		return errClaimsMalformed
	}
	if (v.issuer != "" && iss != v.issuer) || (id.key.issuer != "" && iss != id.key.issuer) {
		return errIssuer
	}
	if !audienceMatches(aud, v.audience) || !audienceMatches(aud, id.key.audience) {
		return errAudience
	}
	exp, _ := mc.GetExpirationTime()
	if exp != nil {
		id.expires = exp.Time
	}
	if v.maxLifetime > 0 {
		iat, _ := mc.GetIssuedAt()
		start := v.now()
		if iat != nil {
			start = iat.Time
		}
		if id.expires.Sub(start) > v.maxLifetime+v.leeway {
			return errLifetime
		}
	}
	return nil
}

// audienceMatches reports whether the token names one of the wanted
// audiences; no wanted audience accepts any token.
func audienceMatches(have jwt.ClaimStrings, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, a := range have {
		if slices.Contains(want, a) {
			return true
		}
	}
	return false
}
