package jwtguard

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("jwt_guard", parseCaddyfile)
	// Before basic_auth: after rewrites, before request_header, templates,
	// respond and reverse_proxy, which then see our placeholders.
	httpcaddyfile.RegisterDirectiveOrder("jwt_guard", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var g Handler
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return &g, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	jwt_guard [<matcher>] {
//	    secret <alg> <value> [{
//	        kid <kid>
//	        issuer <iss>
//	        audience <aud...>
//	        allow_short_secret
//	    }]
//	    secret jwks <jwks-url> | oidc <issuer-url> [{
//	        kid <kid>
//	        issuer <iss>
//	        audience <aud...>
//	        refresh_interval <duration>
//	        min_refetch_interval <duration>
//	        timeout <duration>
//	        max_response_size <size>
//	        allow_http
//	    }]
//	    issuer <iss>
//	    audience <aud...>
//	    leeway <duration>
//	    require_exp
//	    max_lifetime <duration>
//	    from_cookie <name>
//	    from_query <name>
//	    realm <realm>
//	    user_id_claim <claim path>
//	    max_token_size <size>
//	    token_cache_size <n>
//	    rule <rule>
//	    websocket {
//	        token_path <dot path>
//	        timeout <duration>
//	        max_message <size>
//	        close_on_expiry [on|off]
//	    }
//	}
//
// Subdirective names equal the JSON keys, except from_cookie and
// from_query, which each add an entry to `from` in the order written. The
// rule grammar is in parseRule's doc comment and the README.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "secret":
			s, err := parseSecret(d)
			if err != nil {
				return err
			}
			h.Secrets = append(h.Secrets, s)
		case "issuer":
			if h.Issuer != "" {
				return d.Err("issuer already specified")
			}
			if !d.AllArgs(&h.Issuer) {
				return d.ArgErr()
			}
		case "audience":
			aud := d.RemainingArgs()
			if len(aud) == 0 {
				return d.ArgErr()
			}
			h.Audience = append(h.Audience, aud...)
		case "leeway":
			if h.Leeway != nil {
				return d.Err("leeway already specified")
			}
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			h.Leeway = &dur
		case "require_exp":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequireExp = true
		case "max_lifetime":
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			h.MaxLifetime = dur
		case "from_cookie", "from_query":
			kind := d.Val()
			var name string
			if !d.AllArgs(&name) {
				return d.ArgErr()
			}
			if kind == "from_cookie" {
				h.From = append(h.From, TokenSource{Cookie: name})
			} else {
				h.From = append(h.From, TokenSource{Query: name})
			}
		case "realm":
			if !d.AllArgs(&h.Realm) {
				return d.ArgErr()
			}
			if strings.ContainsAny(h.Realm, "\"\\") {
				return d.Err("realm must not contain quotes or backslashes")
			}
		case "user_id_claim":
			if !d.AllArgs(&h.UserIDClaim) {
				return d.ArgErr()
			}
		case "max_token_size":
			var arg string
			if !d.AllArgs(&arg) {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(arg)
			if err != nil || size == 0 || size > maxMaxTokenSize {
				return d.Errf("max_token_size %q: want a size from 1 byte to 1MiB, like 8KiB", arg)
			}
			h.MaxTokenSize = int(size)
		case "token_cache_size":
			var arg string
			if !d.AllArgs(&arg) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(arg)
			if err != nil || n < -1 {
				return d.Errf("token_cache_size %q: want a number of tokens, or -1 to disable the cache", arg)
			}
			h.TokenCacheSize = n
		case "rule":
			if h.Rule != nil {
				return d.Err("rule already specified; combine rules with `rule and { ... }`")
			}
			r, err := parseRule(d)
			if err != nil {
				return err
			}
			h.Rule = r
		case "websocket":
			if h.Websocket != nil {
				return d.Err("websocket already specified")
			}
			ws, err := parseWebsocket(d)
			if err != nil {
				return err
			}
			h.Websocket = ws
		default:
			return d.Errf("unrecognized jwt_guard subdirective '%s'", d.Val())
		}
	}
	if len(h.Secrets) == 0 {
		return d.Err("jwt_guard needs at least one `secret <alg> <value>`")
	}
	return nil
}

// parseSecret reads `secret <alg> <value> [{ ... }]`. A literal value (no
// placeholders) is loaded right away, so a bad key fails at its line.
func parseSecret(d *caddyfile.Dispenser) (*Secret, error) {
	file, line := d.File(), d.Line()
	s := new(Secret)
	if !d.Args(&s.Alg) {
		return nil, d.ArgErr()
	}
	alg, ok := canonicalAlg(s.Alg)
	if !ok {
		return nil, d.Errf("unknown secret algorithm %q; want one of %s", s.Alg, knownAlgNames())
	}
	if !d.NextArg() {
		return nil, d.Errf("secret %s needs a value after the algorithm", s.Alg)
	}
	s.Value = d.Val()
	if d.NextArg() {
		return nil, d.Errf("secret %s takes one value; quote it or use a heredoc if it has spaces", s.Alg)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "kid":
			if !d.AllArgs(&s.KID) {
				return nil, d.ArgErr()
			}
		case "issuer":
			if !d.AllArgs(&s.Issuer) {
				return nil, d.ArgErr()
			}
		case "audience":
			aud := d.RemainingArgs()
			if len(aud) == 0 {
				return nil, d.ArgErr()
			}
			s.Audience = append(s.Audience, aud...)
		case "allow_short_secret":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			s.AllowShortSecret = true
		case "refresh_interval", "min_refetch_interval", "timeout":
			name := d.Val()
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			switch name {
			case "refresh_interval":
				s.RefreshInterval = dur
			case "min_refetch_interval":
				s.MinRefetchInterval = dur
			default:
				s.Timeout = dur
			}
		case "max_response_size":
			var arg string
			if !d.AllArgs(&arg) {
				return nil, d.ArgErr()
			}
			size, err := humanize.ParseBytes(arg)
			if err != nil || size == 0 || size > maxMaxResponseSize {
				return nil, d.Errf("max_response_size %q: want a size from 1 byte to 64MiB, like 1MiB", arg)
			}
			s.MaxResponseSize = int64(size)
		case "allow_http":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			s.AllowHTTP = true
		default:
			return nil, d.Errf("unrecognized secret option '%s'", d.Val())
		}
	}
	remote := alg == algJWKS || alg == algOIDC
	if !remote && s.remoteOptionsSet() {
		return nil, fmt.Errorf("secret %s: refresh_interval, min_refetch_interval, timeout, max_response_size and allow_http are for jwks and oidc secrets, at %s:%d", s.Alg, file, line)
	}
	if remote && !strings.Contains(s.Value, "{") {
		if _, err := remoteConfigFor(s, alg, s.Value); err != nil {
			return nil, fmt.Errorf("secret %s: %w, at %s:%d", s.Alg, err, file, line)
		}
	}
	if !remote && !strings.Contains(s.Value, "{") {
		key, err := loadKey(alg, s.Value)
		if err == nil {
			if b, ok := key.([]byte); ok {
				err = checkHMACLength(alg, b, s.AllowShortSecret)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w, at %s:%d", s.Alg, err, file, line)
		}
	}
	return s, nil
}

func parseDurationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var arg string
	if !d.AllArgs(&arg) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(arg)
	if err != nil {
		if n, nerr := strconv.Atoi(arg); nerr == nil && n == 0 {
			return 0, nil
		}
		return 0, d.Errf("%s %q is not a duration (like 30s or 5m): %v", name, arg, err)
	}
	if dur < 0 {
		return 0, d.Errf("%s must not be negative", name)
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
