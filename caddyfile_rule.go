package jwtguard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseRule reads the argument of `rule`: the native form below, or a
// Space Cloud rule as one JSON token (backticks), taken verbatim. Both
// adapt to the same JSON.
//
//	rule allow
//	rule authenticated
//	rule deny
//	rule match <f1> <op> <f2> [string|number|bool|date]
//	rule match <f1> in|notIn [<v1>, <v2>, ...] [<type>]
//	rule and|or {
//	    <rule>               # one clause per line, in any form, nested freely
//	}
//	rule webhook <url> [{
//	    store <args.var>
//	    requestTemplate <go template>
//	    outputFormat json|string
//	    timeout <duration>
//	}]
//	rule force <field> <value> [{
//	    clause <rule>
//	}]
//	rule remove <field>... [{
//	    clause <rule>
//	}]
//	rule transform {
//	    requestTemplate <go template>
//	    outputFormat json|string
//	    store <args.var>
//	    clause <rule>
//	}
//
// Any rule's block also takes `error <message>` and `name <name>`. The
// type of a match defaults to string. Values are strings unless the type
// says otherwise; a value starting with args. or utils. is a variable.
func parseRule(d *caddyfile.Dispenser) (*Rule, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	return parseRuleHere(d)
}

// ruleKinds are the rules the native form knows.
var ruleKinds = "allow, deny, authenticated, match, and, or, webhook, force, remove, transform, or a JSON rule in backticks"

// parseRuleHere parses a rule whose first token is the current one.
func parseRuleHere(d *caddyfile.Dispenser) (*Rule, error) {
	arg := d.Val()
	if strings.HasPrefix(strings.TrimSpace(arg), "{") {
		var r Rule
		if err := caddy.StrictUnmarshalJSON([]byte(arg), &r); err != nil {
			return nil, d.Errf("rule: invalid JSON rule: %v", err)
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return &r, nil
	}
	r := &Rule{Rule: arg}
	var err error
	switch arg {
	case "allow", "deny", "authenticated", "and", "or", "transform":
		if d.NextArg() {
			return nil, d.Errf("%s takes no arguments on its line", arg)
		}
	case "match":
		err = parseMatchArgs(d, r)
	case "webhook":
		if !d.NextArg() {
			return nil, d.Errf("webhook needs a URL")
		}
		r.URL = d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	case "force":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return nil, d.Errf("force takes a field and a value: force args.query.headers.X-User-Id args.auth.sub")
		}
		r.Field = args[0]
		r.Value, _ = json.Marshal(args[1])
	case "remove":
		fields := d.RemainingArgs()
		if len(fields) == 0 {
			return nil, d.Errf("remove takes the fields to remove: remove args.query.headers.X-User-Id")
		}
		r.Fields, _ = json.Marshal(fields)
	default:
		return nil, d.Errf("unknown rule %q: want %s", arg, ruleKinds)
	}
	if err != nil {
		return nil, err
	}
	if err := parseRuleBlock(d, r); err != nil {
		return nil, err
	}
	switch r.Rule {
	case "and", "or":
		if len(r.Clauses) == 0 {
			return nil, d.Errf("%s needs a block with at least one clause: %s { ... }", r.Rule, r.Rule)
		}
	case "transform":
		if r.RequestTemplate == "" || r.Clause == nil {
			return nil, d.Errf("transform needs requestTemplate and clause in its block")
		}
	}
	return r, nil
}

func parseRuleBlock(d *caddyfile.Dispenser, r *Rule) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		one := func(dst *string) error {
			if !d.NextArg() {
				return d.ArgErr()
			}
			*dst = d.Val()
			if d.NextArg() {
				return d.Errf("%s takes one value; quote it if it has spaces", key)
			}
			return nil
		}
		var err error
		switch {
		case key == "error":
			err = one(&r.Error)
		case key == "name":
			err = one(&r.Name)
		case (r.Rule == "and" || r.Rule == "or") && key != "clause":
			var c *Rule
			if c, err = parseRuleHere(d); err == nil {
				r.Clauses = append(r.Clauses, c)
			}
		case key == "clause" && (r.Rule == "force" || r.Rule == "remove" || r.Rule == "transform"):
			if r.Clause != nil {
				return d.Errf("clause already specified; combine rules with and { ... }")
			}
			if !d.NextArg() {
				return d.Errf("clause needs a rule: clause match args.auth.role == admin")
			}
			r.Clause, err = parseRuleHere(d)
		case key == "store" && (r.Rule == "webhook" || r.Rule == "transform"):
			err = one(&r.Store)
		case key == "requestTemplate" && (r.Rule == "webhook" || r.Rule == "transform"):
			err = one(&r.RequestTemplate)
		case key == "outputFormat" && (r.Rule == "webhook" || r.Rule == "transform"):
			err = one(&r.OutputFormat)
		case key == "timeout" && r.Rule == "webhook":
			var dur caddy.Duration
			if dur, err = parseDurationArg(d); err == nil {
				r.Timeout = dur
			}
		default:
			return d.Errf("unrecognized option '%s' in a %s rule", key, r.Rule)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseMatchArgs reads `<f1> <op> <f2> [<type>]`.
func parseMatchArgs(d *caddyfile.Dispenser, r *Rule) error {
	args := d.RemainingArgs()
	if len(args) < 3 {
		return d.Errf("match takes <f1> <operator> <f2> [type], like: match args.auth.role == admin")
	}
	r.Eval = args[1]
	if r.Eval == "notin" {
		r.Eval = "notIn"
	}
	rest := args[2:]
	r.Type = "string"
	if n := len(rest); n >= 2 {
		if _, ok := matchKinds[rest[n-1]]; ok {
			r.Type, rest = rest[n-1], rest[:n-1]
		}
	}
	kind := matchKinds[r.Type]
	f1, err := nativeScalar(args[0], kind)
	if err != nil {
		return d.Errf("match: f1: %v", err)
	}
	r.F1 = f1
	var f2 json.RawMessage
	switch {
	case strings.HasPrefix(rest[0], "["):
		if !strings.HasSuffix(rest[len(rest)-1], "]") {
			return d.Errf("match: the list must end with ]")
		}
		f2, err = nativeList(strings.Join(rest, " "), kind)
	case len(rest) == 1:
		f2, err = nativeScalar(rest[0], kind)
	default:
		return d.Errf("match takes one value after %s (quote a value with spaces, or write a list in [ ])", r.Eval)
	}
	if err != nil {
		return d.Errf("match: f2: %v", err)
	}
	r.F2 = f2
	if _, err := compileMatch(r, "match", nil); err != nil {
		return d.Errf("%v", strings.TrimPrefix(err.Error(), "match: "))
	}
	return nil
}

// nativeScalar types one native value: numbers and booleans become JSON
// literals when the match type wants them; variables and placeholders
// stay strings.
func nativeScalar(tok string, kind matchKind) (json.RawMessage, error) {
	if isVariable(tok) || strings.ContainsRune(tok, '{') {
		return json.Marshal(tok)
	}
	switch kind {
	case kindNumber:
		if _, ok := parseDecimal(tok); !ok {
			return nil, fmt.Errorf("%q is not a number", tok)
		}
		return json.RawMessage(tok), nil
	case kindBool:
		if tok != "true" && tok != "false" {
			return nil, fmt.Errorf("%q is not true or false", tok)
		}
		return json.RawMessage(tok), nil
	}
	return json.Marshal(tok)
}

// nativeList reads [a, b, c] or a JSON list.
func nativeList(text string, kind matchKind) (json.RawMessage, error) {
	if v, err := decodeExact([]byte(text)); err == nil {
		if _, ok := v.([]any); ok {
			var buf bytes.Buffer
			_ = json.Compact(&buf, []byte(text))
			return buf.Bytes(), nil
		}
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(text, "["), "]")
	elems := []json.RawMessage{}
	for _, e := range strings.FieldsFunc(inner, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		raw, err := nativeScalar(strings.Trim(e, `"'`), kind)
		if err != nil {
			return nil, err
		}
		elems = append(elems, raw)
	}
	return json.Marshal(elems)
}
