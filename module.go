// Package jwtguard is a Caddy HTTP handler that authenticates requests with
// JWTs verified against a set of secrets, authorizes them with Space Cloud
// security rules, and publishes the claims as placeholders.
package jwtguard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// maxMaxTokenSize bounds max_token_size: a larger token would not fit in
// the request headers Caddy accepts by default anyway.
const maxMaxTokenSize = 1 << 20

// Handler authenticates every request with a JWT and authorizes it with a
// rule before passing it on.
//
// The token comes from the `Authorization: Bearer` header or, in the order
// configured, from cookies and query parameters. It is valid when any one of
// the configured secrets verifies its signature and its time claims hold.
//
// A request without a token is refused with 401 and
// `WWW-Authenticate: Bearer realm="..."`; an invalid or expired token with
// 401 and `error="invalid_token"`; a malformed Authorization header with 400
// and `error="invalid_request"`; a valid token that the rule refuses with 403
// and `error="insufficient_scope"`; 503 when the rule's webhook cannot
// answer, 413 when a rule reads a JSON body over 1 MiB. Failures are
// returned as handler errors, so `handle_errors` routes can render them; the
// reason is in `{http.auth.jwt_guard.error}`.
//
// A websocket handshake without a token is let through to the next handler
// instead, and authenticated by the client's first message (see
// WebsocketConfig).
//
// After a valid token these placeholders are set:
//
//	{http.auth.user.id}         the user ID claim (default `sub`)
//	{http.auth.claims}          all claims as compact JSON
//	{http.auth.claims.<path>}   one claim by dot path, e.g. app_metadata.plan or roles.0
type Handler struct {
	// Secrets are the keys that may verify a token; any one verifying it is
	// enough. Required: at least one. Each secret's value accepts global
	// placeholders (see Secret).
	Secrets []*Secret `json:"secrets,omitempty"`

	// Issuer, when set, is the `iss` every token must carry. Default: no
	// check. No placeholders.
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, lists audiences of which every token must name at
	// least one in its `aud` claim. Default: no check. No placeholders.
	Audience []string `json:"audience,omitempty"`

	// Leeway is the clock skew tolerated on `exp`, `nbf` and `iat`.
	// Default: 30s; 0 to 5m. No placeholders.
	Leeway *caddy.Duration `json:"leeway,omitempty"`

	// RequireExp refuses tokens without an `exp` claim. Default: false
	// (a token without `exp` never expires, as in Space Cloud). No
	// placeholders.
	RequireExp bool `json:"require_exp,omitempty"`

	// MaxLifetime, when set, refuses tokens whose lifetime (`exp` minus
	// `iat`, or `exp` minus now without `iat`) is longer, and implies
	// require_exp. Default: no limit. No placeholders.
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`

	// From lists extra places to look for the token, after the
	// Authorization header, in order. A request whose sources carry two
	// different tokens is refused with 400. The Caddyfile writes each entry
	// as `from_cookie <name>` or `from_query <name>`. Default: the header
	// only. No placeholders.
	From []TokenSource `json:"from,omitempty"`

	// Realm is the realm of the `WWW-Authenticate` challenge; it must not
	// contain quotes or backslashes. Default: restricted. No placeholders.
	Realm string `json:"realm,omitempty"`

	// UserIDClaim is the claim (a dot path) that becomes
	// {http.auth.user.id}. Default: sub. No placeholders.
	UserIDClaim string `json:"user_id_claim,omitempty"`

	// MaxTokenSize is the longest token accepted, in bytes; longer ones are
	// refused before any parsing. Default: 8192 (8 KiB); the Caddyfile
	// accepts sizes like 4KiB, up to 1MiB. No placeholders.
	MaxTokenSize int `json:"max_token_size,omitempty"`

	// TokenCacheSize is how many verified tokens are remembered, so that a
	// client repeating its token skips the signature check (expiry is
	// still checked on every request, and a verdict is reused for at most
	// 5 minutes; failures are never cached). Default: 1024 (also for 0);
	// -1 disables the cache. No placeholders.
	TokenCacheSize int `json:"token_cache_size,omitempty"`

	// Rule is the Space Cloud security rule that authorizes a request once
	// its token is valid, in Space Cloud's JSON form; the Caddyfile also
	// has a native form (see UnmarshalCaddyfile). Its operands accept
	// per-request placeholders (see Rule). Default:
	// {"rule": "authenticated"}.
	Rule *Rule `json:"rule,omitempty"`

	// Websocket configures how a websocket upgrade that carries no token
	// is authenticated by its first message (see WebsocketConfig). The
	// defaults apply when it is absent; under `rule allow` it is not used.
	// No placeholders.
	Websocket *WebsocketConfig `json:"websocket,omitempty"`

	verifier *verifier
	program  *program
	ws       wsSettings
	logger   *zap.Logger
	// remotes are the remotePool keys this instance holds.
	remotes []string
	// now is the clock; tests replace it.
	now func() time.Time
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.jwt_guard",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision loads the secrets and compiles the rule.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now
	}
	if h.Realm == "" {
		h.Realm = "restricted"
	}
	if h.UserIDClaim == "" {
		h.UserIDClaim = "sub"
	}
	if h.MaxTokenSize == 0 {
		h.MaxTokenSize = defaultMaxTokenSize
	}
	leeway := defaultLeeway
	if h.Leeway != nil {
		leeway = time.Duration(*h.Leeway)
	}
	if leeway < 0 || leeway > maxLeeway {
		return fmt.Errorf("leeway %s is out of range: use 0 to %s", leeway, maxLeeway)
	}
	if h.MaxLifetime < 0 {
		return errors.New("max_lifetime must not be negative")
	}
	if h.MaxTokenSize < 0 || h.MaxTokenSize > maxMaxTokenSize {
		return fmt.Errorf("max_token_size %d is out of range: use 1 to %d bytes", h.MaxTokenSize, maxMaxTokenSize)
	}
	for i, src := range h.From {
		if (src.Cookie == "") == (src.Query == "") {
			return fmt.Errorf("from[%d]: set exactly one of cookie and query", i)
		}
	}
	if strings.ContainsAny(h.Realm, "\"\\") {
		return errors.New("realm must not contain quotes or backslashes")
	}

	sources, err := h.loadSecrets(ctx)
	if err != nil {
		return err
	}
	cacheSize := h.TokenCacheSize
	if cacheSize == 0 {
		cacheSize = defaultTokenCacheSize
	}
	h.verifier = newVerifier(sources, h.Issuer, h.Audience, leeway, time.Duration(h.MaxLifetime), h.RequireExp, h.MaxTokenSize, cacheSize, h.now)

	if h.program, err = compileRule(h.Rule); err != nil {
		return fmt.Errorf("compiling rule: %w", err)
	}
	if h.ws, err = h.Websocket.settings(); err != nil {
		return err
	}
	return nil
}

// loadSecrets expands placeholders in the secrets and binds each key to
// its algorithm.
func (h *Handler) loadSecrets(ctx caddy.Context) ([]keySource, error) {
	if len(h.Secrets) == 0 {
		return nil, errors.New("no secrets configured: add at least one `secret <alg> <value>`")
	}
	repl := caddy.NewReplacer()
	var (
		keys    []*verifyKey
		remotes []keySource
	)
	for i, s := range h.Secrets {
		label := fmt.Sprintf("secret %d (%s)", i+1, s.Alg)
		alg, ok := canonicalAlg(s.Alg)
		if !ok {
			return nil, fmt.Errorf("%s: unknown algorithm %q (want one of %s)", label, s.Alg, knownAlgNames())
		}
		// ReplaceKnown keeps literal braces that are part of a secret.
		value := repl.ReplaceKnown(s.Value, "")
		if alg == algJWKS || alg == algOIDC {
			cfg, err := remoteConfigFor(s, alg, value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			r, err := acquireRemote(ctx, cfg, h.logger)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			h.remotes = append(h.remotes, cfg.poolKey())
			remotes = append(remotes, r)
			continue
		}
		if s.remoteOptionsSet() {
			return nil, fmt.Errorf("%s: refresh_interval, min_refetch_interval, timeout, max_response_size and allow_http are for jwks and oidc secrets", label)
		}
		key, err := loadKey(alg, value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if b, ok := key.([]byte); ok {
			if err := checkHMACLength(alg, b, s.AllowShortSecret); err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
		}
		if len(s.KID) > maxKIDLength {
			return nil, fmt.Errorf("%s: kid is longer than %d bytes", label, maxKIDLength)
		}
		keys = append(keys, &verifyKey{
			alg: alg, method: algorithms[alg].method, key: key, kid: s.KID,
			issuer: s.Issuer, audience: s.Audience, label: label,
		})
	}
	return append([]keySource{newStaticKeys(keys)}, remotes...), nil
}

// Cleanup releases the remote key sources; the last config using one
// stops its refresher.
func (h *Handler) Cleanup() error {
	for _, key := range h.remotes {
		_, _ = remotePool.Delete(key)
	}
	h.remotes = nil
	return nil
}

// ServeHTTP authenticates and authorizes the request, then calls next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	claims := claimsFor(r, repl)

	token, err := extractToken(r, h.From)
	if err == nil && token == "" {
		if h.program.needsToken && isWebsocket(r) {
			// The token comes in the first message (websocket.go).
			return h.serveWebsocket(w, r, repl, next)
		}
		err = errTokenMissing
	}
	var id *identity
	if err == nil {
		id, err = h.verifier.verify(token)
	}
	if err != nil {
		if !h.program.needsToken {
			// Under allow, a bad token is treated as no token.
			return next.ServeHTTP(w, r)
		}
		return h.refuse(w, repl, err)
	}
	claims.publish(repl, id, h.UserIDClaim)

	if err := h.authorize(r, repl, id); err != nil {
		return h.refuse(w, repl, err)
	}
	return next.ServeHTTP(w, r)
}

// authorize evaluates the compiled rule for a request whose token (if the
// rule needs one) is verified. It returns nil to pass, a *ruleDenied to
// refuse (marked unavailable when a webhook could not answer), or a
// caddyhttp.HandlerError when the request is at fault (a JSON body over the
// limit). The websocket path calls evaluate directly, with args.params
// unset, once the first message has given the token.
func (h *Handler) authorize(r *http.Request, repl *caddy.Replacer, id *identity) error {
	return h.evaluate(&ruleEnv{r: r, repl: repl, id: id, now: h.now, prog: h.program})
}

// evaluate runs the rule in env; see authorize.
func (h *Handler) evaluate(env *ruleEnv) error {
	if _, ok := h.program.root.(passRule); ok {
		return nil
	}
	err := h.program.root.eval(env)
	env.finish()
	if env.err != nil {
		return env.err // e.g. a JSON body over the size limit: 413
	}
	return err
}

// refuse sets the RFC 6750 challenge and the reason placeholder and returns
// the handler error; it writes no body, so handle_errors can.
func (h *Handler) refuse(w http.ResponseWriter, repl *caddy.Replacer, err error) error {
	var (
		status int
		code   string
		desc   = err.Error()
	)
	var te *tokenError
	var rd *ruleDenied
	var he caddyhttp.HandlerError
	switch {
	case errors.As(err, &te):
		status, code = te.status, te.code
		if c := h.logger.Check(zapcore.DebugLevel, "request refused"); c != nil {
			c.Write(zap.Int("status", status), zap.String("reason", desc))
		}
	case errors.As(err, &rd) && rd.unavailable:
		// A webhook could not answer: refused (as Space Cloud does), but
		// 503, since the caller is not at fault and may retry.
		h.logger.Warn("rule webhook unavailable; request refused", zap.String("clause", rd.clause))
		repl.Set(phError, desc)
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	case errors.As(err, &rd):
		status, code = http.StatusForbidden, "insufficient_scope"
		if c := h.logger.Check(zapcore.InfoLevel, "request denied by rule"); c != nil {
			c.Write(zap.String("clause", rd.clause), zap.String("reason", desc))
		}
	case errors.As(err, &he):
		// The request itself is at fault (a body over the limit).
		repl.Set(phError, he.Err.Error())
		return err
	default:
		// An unexpected failure, not the caller's fault.
		status = http.StatusInternalServerError
		h.logger.Error("authorizing request", zap.Error(err))
		repl.Set(phError, "internal error")
		return caddyhttp.Error(status, err)
	}
	challenge := `Bearer realm="` + h.Realm + `"`
	if code != "" {
		challenge += `, error="` + code + `", error_description="` + quoteSafe(desc) + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	repl.Set(phError, desc)
	return caddyhttp.Error(status, err)
}

// quoteSafe drops characters that would break a quoted-string; rule error
// messages are configuration, but keep the header well-formed regardless.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
