package jwtguard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Placeholder names. http.auth.user.id follows caddyauth, so Caddy's access
// log shows user_id and php_fastcgi sets REMOTE_USER.
const (
	phUserID       = "http.auth.user.id"
	phClaims       = "http.auth.claims"
	phClaimsPrefix = phClaims + "."
	phError        = "http.auth.jwt_guard.error"
)

// claimsVar is the request variable holding the request's claimsProvider,
// so that several jwt_guard handlers on one request share one provider.
const claimsVar = "jwt_guard.claims"

// claimsProvider answers {http.auth.claims.*} lazily: a claim nobody reads
// is never rendered. The identity is swapped atomically because a websocket
// first message is verified on the proxy's goroutine.
type claimsProvider struct {
	id atomic.Pointer[identity]
}

// claimsFor returns the request's provider, installing it in the replacer on
// first use.
func claimsFor(r *http.Request, repl *caddy.Replacer) *claimsProvider {
	if p, ok := caddyhttp.GetVar(r.Context(), claimsVar).(*claimsProvider); ok {
		return p
	}
	p := new(claimsProvider)
	caddyhttp.SetVar(r.Context(), claimsVar, p)
	repl.Map(p.replace)
	return p
}

// publish makes id the request's identity: user.id is set statically (the
// access log reads it after the handler chain), the claims lazily.
func (p *claimsProvider) publish(repl *caddy.Replacer, id *identity, userIDClaim string) {
	p.id.Store(id)
	if v, ok := lookupPath(id.claims, userIDClaim); ok {
		repl.Set(phUserID, claimString(v))
	}
}

func (p *claimsProvider) replace(key string) (any, bool) {
	path, ok := strings.CutPrefix(key, phClaimsPrefix)
	if !ok {
		switch key {
		case phClaims:
			path = ""
		case phUserID, phError:
			// Set statically when there is a value; empty, not literal,
			// for a guest under `allow`.
			return "", true
		default:
			return nil, false
		}
	}
	// Like Caddy's own dynamic namespaces, answer every key under our prefix,
	// so an absent claim renders empty instead of staying literal.
	id := p.id.Load()
	if id == nil {
		return "", true
	}
	if path == "" {
		return claimString(id.claims), true
	}
	v, found := lookupPath(id.claims, path)
	if !found {
		return "", true
	}
	return claimString(v), true
}

// lookupPath follows a dot path through claims: object members by name,
// array elements by decimal index. Claim names may contain dots themselves
// (Auth0's "https://example.com/roles"), so at each object the longest
// member name that prefixes the remaining path wins.
func lookupPath(v any, path string) (any, bool) {
	for path != "" {
		switch node := v.(type) {
		case map[string]any:
			if x, ok := node[path]; ok {
				return x, true
			}
			found := false
			for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
				if x, ok := node[path[:i]]; ok {
					v, path, found = x, path[i+1:], true
					break
				}
			}
			if !found {
				return nil, false
			}
		case []any:
			seg, rest, _ := strings.Cut(path, ".")
			i, ok := arrayIndex(seg, len(node))
			if !ok {
				return nil, false
			}
			v, path = node[i], rest
		default:
			return nil, false
		}
	}
	return v, true
}

// arrayIndex parses a plain decimal index (no sign, no spaces) below n.
func arrayIndex(s string, n int) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i < n
}

// claimString renders a claim for a placeholder: strings as they are,
// numbers exactly as the token wrote them, booleans as true/false, null as
// empty, arrays of scalars joined by ",", anything else as compact JSON.
func claimString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				return compactJSON(x)
			}
			parts[i] = claimString(e)
		}
		return strings.Join(parts, ",")
	default:
		return compactJSON(x)
	}
}

func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
