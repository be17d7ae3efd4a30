package jwtguard

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// hmacs holds keyed HMAC states of an HS* key for reuse (see
	// verifySig).
	hmacs sync.Pool
}

// verifySig reports whether sig signs signingInput under k. HMAC keys
// reuse keyed states from a pool: hmac.New, which golang-jwt's Verify
// calls on every token, hashes the key pads and allocates each time, a
// tenth of an HS256 verification. What is computed and the constant-time
// comparison are those of golang-jwt's SigningMethodHMAC.Verify; other
// methods use their Verify.
func (k *verifyKey) verifySig(signingInput string, sig []byte) bool {
	m, isHMAC := k.method.(*jwt.SigningMethodHMAC)
	secret, isBytes := k.key.([]byte)
	if !isHMAC || !isBytes || !m.Hash.Available() {
		return k.method.Verify(signingInput, sig, k.key) == nil
	}
	h, _ := k.hmacs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(m.Hash.New, secret)
	}
	h.Write([]byte(signingInput))
	ok := hmac.Equal(sig, h.Sum(nil))
	h.Reset()
	k.hmacs.Put(h)
	return ok
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
	now          func() time.Time
	cache        *tokenCache
}

func newVerifier(sources []keySource, issuer string, audience []string, leeway, maxLifetime time.Duration, requireExp bool, maxTokenSize, cacheSize int, now func() time.Time) *verifier {
	v := &verifier{
		sources: sources, issuer: issuer, audience: audience,
		leeway: leeway, maxLifetime: maxLifetime, requireExp: requireExp || maxLifetime > 0,
		maxTokenSize: maxTokenSize, now: now, cache: newTokenCache(cacheSize),
	}
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
		if k.verifySig(signingInput, sig) {
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

// maxPlainHeaderNames bounds the member names scanJSON records for the
// header's fast path; real headers have two to four.
const maxPlainHeaderNames = 8

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
	var nameBuf [maxPlainHeaderNames][]byte
	shape, ok := scanJSON(raw, nameBuf[:])
	if !ok || !isJSONObject(raw) {
		return joseHeader{}, errTokenMalformed
	}
	names := nameBuf[:min(shape.topMembers, len(nameBuf))]
	if !shape.plainNames || !exactHeaderNames(names) {
		return parseHeaderMap(raw, shape)
	}
	// Every name is plain ASCII, so its raw bytes are its decoded value:
	// equal bytes are a duplicate, and none only case-folds to a field
	// below, so the struct's case-insensitive matching binds exactly
	// the members the map in parseHeaderMap would.
	for i, a := range names {
		for _, b := range names[:i] {
			if bytes.Equal(a, b) {
				return joseHeader{}, errTokenMalformed
			}
		}
	}
	var f struct {
		Alg  string  `json:"alg"`
		Kid  string  `json:"kid"`
		Crit present `json:"crit"`
	}
	// A syntax error stops Unmarshal before it sets any field; a type
	// error (alg or kid not a string) lets it finish, so crit is seen
	// first as in parseHeaderMap.
	err = json.Unmarshal(raw, &f)
	if f.Crit {
		return joseHeader{}, errCrit
	}
	if err != nil || f.Alg == "" || len(f.Kid) > maxKIDLength {
		return joseHeader{}, errTokenMalformed
	}
	return joseHeader{alg: f.Alg, kid: f.Kid}, nil
}

// present records that a JSON member exists, whatever its value (null
// included: encoding/json hands null to an Unmarshaler).
type present bool

func (p *present) UnmarshalJSON([]byte) error {
	*p = true
	return nil
}

// exactHeaderNames reports whether no name merely case-folds to one the
// header's struct decodes ("ALG", "Kid"); such a name is an unknown
// member for us, but encoding/json would bind it to the field.
func exactHeaderNames(names [][]byte) bool {
	for _, n := range names {
		for _, field := range [...]string{"alg", "kid", "crit"} {
			if bytes.EqualFold(n, []byte(field)) && string(n) != field {
				return false
			}
		}
	}
	return true
}

// parseHeaderMap is parseHeader for headers whose names have escapes,
// non-ASCII bytes or case variants of ours, or that have many members:
// decoding into a map compares the decoded names exactly.
func parseHeaderMap(raw []byte, shape jsonShape) (joseHeader, error) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || len(fields) != shape.topMembers {
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
	shape, ok := scanJSON(raw, nil)
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
	// plainNames reports that every name of the outermost object fit in
	// the caller's names buffer and has neither escapes nor non-ASCII
	// bytes, so its raw bytes are its decoded value.
	plainNames bool
}

// scanJSON checks what encoding/json lets through: invalid UTF-8 (which it
// silently turns into U+FFFD, so two spellings would decode alike) and
// nesting deeper than maxJSONDepth. It relies on the decoder for syntax;
// outside strings, ':' only ever separates an object member's name from
// its value, the string just closed. The outermost object's names are
// stored in names as far as it has room.
func scanJSON(raw []byte, names [][]byte) (jsonShape, bool) {
	if !utf8.Valid(raw) {
		return jsonShape{}, false
	}
	s := jsonShape{plainNames: true}
	depth, inString := 0, false
	// The last string seen: where it starts and ends, and whether it
	// had an escape or a non-ASCII byte.
	strStart, strEnd, strPlain := 0, 0, true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case c == '\\':
				strPlain = false
				i++
			case c == '"':
				inString = false
				strEnd = i
			case c >= utf8.RuneSelf:
				strPlain = false
			}
			continue
		}
		switch c {
		case '"':
			inString, strStart, strPlain = true, i+1, true
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return jsonShape{}, false
			}
		case '}', ']':
			depth--
		case ':':
			s.members++
			if depth == 1 {
				if s.topMembers < len(names) && strPlain {
					names[s.topMembers] = raw[strStart:strEnd]
				} else {
					s.plainNames = false
				}
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

// registeredClaims are the registered claims that checkClaims uses, read
// from the claims map once.
type registeredClaims struct {
	exp, nbf, iat          time.Time
	hasExp, hasNbf, hasIat bool
	iss                    string
	// aud is nil, a string or a []any of strings.
	aud any
}

// readRegisteredClaims enforces the registered claims' types (RFC 7519
// §4.1) itself: golang-jwt accepts an `aud` of any non-array type as
// absent and turns an out-of-range date into an arbitrary time.
func readRegisteredClaims(claims map[string]any) (registeredClaims, error) {
	var rc registeredClaims
	for _, d := range [...]struct {
		name string
		t    *time.Time
		has  *bool
	}{{"exp", &rc.exp, &rc.hasExp}, {"nbf", &rc.nbf, &rc.hasNbf}, {"iat", &rc.iat, &rc.hasIat}} {
		v, ok := claims[d.name]
		if !ok {
			continue
		}
		n, isNum := v.(json.Number)
		if !isNum {
			return rc, errClaimsMalformed
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f < 0 || f > maxNumericDate {
			return rc, errClaimsMalformed
		}
		*d.t, *d.has = numericDate(f), true
	}
	for _, name := range [...]string{"iss", "sub"} {
		if v, ok := claims[name]; ok {
			str, isStr := v.(string)
			if !isStr {
				return rc, errClaimsMalformed
			}
			if name == "iss" {
				rc.iss = str
			}
		}
	}
	// rc.aud keeps the map's own interface value: boxing aud anew would
	// allocate.
	rc.aud = claims["aud"]
	switch aud := rc.aud.(type) {
	case nil:
		if _, ok := claims["aud"]; ok {
			return rc, errClaimsMalformed // null
		}
	case string:
	case []any:
		for _, a := range aud {
			if _, isStr := a.(string); !isStr {
				return rc, errClaimsMalformed
			}
		}
	default:
		return rc, errClaimsMalformed
	}
	return rc, nil
}

// numericDate is the time golang-jwt's MapClaims gives a NumericDate of f
// seconds (newNumericDateFromSeconds), so expiry decisions and the cached
// expiry stay what they were when its Validator made them.
func numericDate(f float64) time.Time {
	round, frac := math.Modf(f)
	return time.Unix(int64(round), int64(frac*1e9)).Truncate(jwt.TimePrecision)
}

// checkClaims applies the time checks (with leeway), claim types, issuer and
// audience, and the lifetime limit. The time checks are golang-jwt's
// Validator's (WithLeeway, WithIssuedAt, WithExpirationRequired), read
// straight from the claims: exp must be after now-leeway, nbf and iat at
// or before now+leeway. Of several failures, the first in the order of
// checks below is reported, as our mapping of the Validator's joined
// errors did.
func (v *verifier) checkClaims(id *identity) error {
	rc, err := readRegisteredClaims(id.claims)
	if err != nil {
		return err
	}
	now := v.now()
	switch {
	case rc.hasExp && !now.Before(rc.exp.Add(v.leeway)):
		return errExpired
	case rc.hasNbf && now.Before(rc.nbf.Add(-v.leeway)):
		return errNotYetValid
	case rc.hasIat && now.Before(rc.iat.Add(-v.leeway)):
		return errIssuedInFuture
	case !rc.hasExp && v.requireExp:
		return errNoExpiry
	}
	if (v.issuer != "" && rc.iss != v.issuer) || (id.key.issuer != "" && rc.iss != id.key.issuer) {
		return errIssuer
	}
	if !audienceMatches(rc.aud, v.audience) || !audienceMatches(rc.aud, id.key.audience) {
		return errAudience
	}
	id.expires = rc.exp
	if v.maxLifetime > 0 {
		start := now
		if rc.hasIat {
			start = rc.iat
		}
		if id.expires.Sub(start) > v.maxLifetime+v.leeway {
			return errLifetime
		}
	}
	return nil
}

// audienceMatches reports whether the token's aud (nil, a string or a
// []any of strings, see readRegisteredClaims) names one of the wanted
// audiences; no wanted audience accepts any token.
func audienceMatches(have any, want []string) bool {
	if len(want) == 0 {
		return true
	}
	switch aud := have.(type) {
	case string:
		return slices.Contains(want, aud)
	case []any:
		for _, a := range aud {
			if slices.Contains(want, a.(string)) {
				return true
			}
		}
	}
	return false
}
