package jwtguard

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseRule reads the argument of `rule`: a rule name (allow, deny,
// authenticated), or a Space Cloud rule as one JSON token (backticks), which
// is taken verbatim.
func parseRule(d *caddyfile.Dispenser) (*Rule, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	arg := d.Val()
	if strings.HasPrefix(strings.TrimSpace(arg), "{") {
		dec := json.NewDecoder(bytes.NewReader([]byte(arg)))
		dec.DisallowUnknownFields()
		var r Rule
		if err := dec.Decode(&r); err != nil {
			return nil, d.Errf("rule: invalid JSON rule: %v", err)
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return &r, nil
	}
	switch arg {
	case "allow", "deny", "authenticated":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return &Rule{Rule: arg}, nil
	}
	return nil, d.Errf("unknown rule %q: want allow, deny, authenticated or a JSON rule in backticks", arg)
}
