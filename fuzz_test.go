package jwtguard

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Fuzz targets. `go test` runs the committed seeds under
// testdata/fuzz/<FuzzName>/ (and the f.Add seeds) as regression tests;
// `go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 5m -parallel 1 .`
// searches for new crashes. FuzzVerify sees tokens as an attacker does;
// FuzzVerifySigned signs what it generates, to reach the claims parsing.

// FuzzExtractToken: any header, cookie and query yields either a token
// that the request really carries or one of our fixed errors.
func FuzzExtractToken(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "", "")
	f.Add("", "session=abc", "token=abc")
	f.Add("bearer   x", "session=a; session=b", "token=x&token=y")
	f.Add("Basic dXNlcjpwYXNz", "", "")
	f.Add("Bearer", "session=", "token=%zz")
	sources := []TokenSource{{Cookie: "session"}, {Query: "token"}}
	f.Fuzz(func(t *testing.T, authorization, cookie, rawQuery string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{Path: "/", RawQuery: rawQuery}}
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		token, err := extractToken(r, sources)
		if err != nil {
			var te *tokenError
			if !errors.As(err, &te) || token != "" {
				t.Fatalf("extractToken = %q, %v: want a *tokenError and no token", token, err)
			}
			return
		}
		if token == "" {
			return
		}
		carried := strings.Contains(authorization, token)
		for _, c := range r.CookiesNamed("session") {
			carried = carried || c.Value == token
		}
		q, _ := url.ParseQuery(rawQuery)
		for _, v := range q["token"] {
			carried = carried || v == token
		}
		if !carried {
			t.Fatalf("extractToken = %q, which the request does not carry", token)
		}
	})
}

// FuzzVerify: with real keys of three families, no input panics, every
// failure is a fixed *tokenError, and the only tokens that verify are the
// ones signed here (anything else would be a forgery).
func FuzzVerify(f *testing.F) {
	k := testKeys(f)
	now := time.Unix(1_800_000_000, 0)
	c := claims{"sub": "user-1", "exp": now.Add(time.Hour).Unix(), "aud": []string{"api"}, "m": map[string]any{"r": []any{1, "x"}}}
	signed := map[string]bool{}
	for _, tok := range []string{
		sign(f, jwt.SigningMethodHS256, []byte(k.hmac), c),
		sign(f, jwt.SigningMethodHS256, []byte(k.hmac), c, "kid", "h"),
		sign(f, jwt.SigningMethodRS256, k.rsa, c),
		sign(f, jwt.SigningMethodPS256, k.rsa, c),
		sign(f, jwt.SigningMethodES256, k.ec256, c),
		sign(f, jwt.SigningMethodEdDSA, k.ed, c),
	} {
		signed[tok] = true
		f.Add(tok)
	}
	h := &Handler{
		Secrets: []*Secret{
			{Alg: "HS256", Value: k.hmac, KID: "h"},
			{Alg: "RS256", Value: k.path("rsa.pem")},
			{Alg: "PS256", Value: k.path("rsa.pem")},
			{Alg: "ES256", Value: k.path("ec256.pem")},
			{Alg: "EdDSA", Value: k.path("ed.pem")},
		},
		TokenCacheSize: -1, // each input judged on its own
	}
	h = provisioned(f, h, now)
	f.Fuzz(func(t *testing.T, token string) {
		id, err := h.verifier.verify(token)
		if err == nil {
			if !signed[token] {
				t.Fatalf("verify accepted a token it was never given: %q", token)
			}
			if id == nil || id.claims == nil || id.key == nil {
				t.Fatalf("verify returned an incomplete identity")
			}
			return
		}
		var te *tokenError
		if !errors.As(err, &te) || te.code != "invalid_token" || te.status != http.StatusUnauthorized {
			t.Fatalf("verify error %v (%T): want an invalid_token *tokenError", err, err)
		}
	})
}

// FuzzVerifySigned signs whatever header and payload the fuzzer makes with
// the real HMAC key, so the search reaches past the signature into header
// and claims parsing. A token that verifies must satisfy, by an independent
// check, everything the README promises: strict JSON objects, valid UTF-8,
// no duplicate names, bounded depth, alg exactly HS256, no crit, and
// registered claims of the right types.
func FuzzVerifySigned(f *testing.F) {
	k := testKeys(f)
	now := time.Unix(1_800_000_000, 0)
	f.Add(`{"alg":"HS256"}`, `{"sub":"a","exp":1800003600,"aud":["x"]}`)
	f.Add(`{"alg":"HS256","kid":"h","typ":"JWT"}`, `{"sub":"a","m":{"r":[1,"x",{"y":null}]}}`)
	f.Add(`{"alg":"HS256"}`, `{"sub":"a","sub":"b"}`)
	f.Add(`{"alg":"HS256"}`, `{"a":"\u0061","\u0061":1,"a":2}`)
	f.Add(`{"alg":"HS256"}`, `{"sub":"a"}]`)
	f.Add(`{"alg":"HS256","crit":[]}`, `{}`)
	f.Add(`{"alg":"HS256"}`, `{"exp":1e400,"nbf":-0,"iat":"1"}`)
	h := provisioned(f, &Handler{Secrets: []*Secret{{Alg: "HS256", Value: k.hmac, KID: "h"}}, TokenCacheSize: -1}, now)
	key := []byte(k.hmac)
	f.Fuzz(func(t *testing.T, header, payload string) {
		token := signRaw(t, jwt.SigningMethodHS256, key, header, payload)
		id, err := h.verifier.verify(token)
		if err != nil {
			var te *tokenError
			if !errors.As(err, &te) || te.status != http.StatusUnauthorized {
				t.Fatalf("verify error %v (%T): want a 401 *tokenError", err, err)
			}
			return
		}
		hdr, why := strictObject(header, true)
		if why != "" {
			t.Fatalf("accepted a header that %s: %q", why, header)
		}
		if hdr["alg"] != "HS256" || hdr["crit"] != nil {
			t.Fatalf("accepted header %q", header)
		}
		c, why := strictObject(payload, false)
		if why != "" {
			t.Fatalf("accepted a payload that %s: %q", why, payload)
		}
		for _, name := range []string{"exp", "nbf", "iat"} {
			if v, ok := c[name]; ok {
				n, isNum := v.(json.Number)
				x, err := n.Float64()
				if !isNum || err != nil || x < 0 || x > maxNumericDate {
					t.Fatalf("accepted %s = %v", name, v)
				}
			}
		}
		if id.claims == nil {
			t.Fatalf("no claims")
		}
	})
}

// strictObject decodes a JSON object token by token, independently of the
// verifier's own checks, and says what is wrong with it, if anything.
func strictObject(text string, topOnly bool) (map[string]any, string) {
	if !utf8.ValidString(text) {
		return nil, "is not UTF-8"
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next token of an object is a name
	}
	var stack []*frame
	for first := true; ; first = false {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "is not JSON: " + err.Error()
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return nil, "is not an object"
			}
		} else if len(stack) == 0 {
			return nil, "has data after the object"
		}
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			if top.object && top.key {
				if name, ok := tok.(string); ok {
					if (!topOnly || len(stack) == 1) && top.names[name] {
						return nil, "repeats the name " + strconv.Quote(name)
					}
					top.names[name] = true
					top.key = false
					continue
				}
			} else if top.object {
				top.key = true
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].key = true
			}
		}
		if len(stack) > maxJSONDepth {
			return nil, "nests deeper than the limit"
		}
	}
	var m map[string]any
	dec = json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, "does not decode: " + err.Error()
	}
	return m, ""
}

// FuzzUnmarshalCaddyfile: any Caddyfile text parses or fails with an error;
// a parse that succeeds yields a handler with a secret that marshals to
// JSON.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	k := testKeys(f)
	f.Add("jwt_guard {\n\tsecret HS256 " + k.hmac + "\n}")
	f.Add("jwt_guard {\n\tsecret RS256 " + k.path("rsa.pem") + " {\n\t\tkid one\n\t\tissuer https://i\n\t\taudience a b\n\t}\n\tleeway 10s\n\tmax_lifetime 1h\n\trequire_exp\n}")
	f.Add("jwt_guard {\n\tsecret HS256 {env.JWT}\n\tfrom_cookie s\n\tfrom_query t\n\trealm api\n\tuser_id_claim app.id\n\tmax_token_size 4KiB\n\ttoken_cache_size -1\n\trule allow\n}")
	f.Fuzz(func(t *testing.T, input string) {
		// Tokenize as Caddy does (NewTestDispenser would log.Fatal on a
		// lexer error, such as an unclosed quote).
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if len(h.Secrets) == 0 {
			t.Fatalf("parsed without error but no secret")
		}
		if _, err := json.Marshal(&h); err != nil {
			t.Fatalf("parsed handler does not marshal: %v", err)
		}
	})
}
