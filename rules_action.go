package jwtguard

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"
)

// force and remove edit the request going downstream: headers
// (args.query.headers.<Name>), query parameters (args.query.params.<name>)
// and the JSON body (args.params.<path>). This is how trusted identity
// headers are injected and spoofed ones stripped. Space Cloud's res.*
// targets edit database responses and have no meaning here.

type targetKind uint8

const (
	targetHeader targetKind = iota
	targetQuery
	targetParams
)

type target struct {
	text string
	kind targetKind
	name string   // canonical header name or query parameter
	path []string // JSON body path
}

// Headers whose value is the connection's framing, not the application's.
var unforceableHeaders = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Host": true, "Connection": true}

func compileTarget(s string) (*target, error) {
	t := &target{text: s}
	switch {
	case strings.HasPrefix(s, "args.query.headers."):
		name := strings.TrimPrefix(s, "args.query.headers.")
		if !validHeaderName(name) {
			return nil, fmt.Errorf("%q is not a valid header name", name)
		}
		t.kind, t.name = targetHeader, textproto.CanonicalMIMEHeaderKey(name)
		if unforceableHeaders[t.name] {
			return nil, fmt.Errorf("header %s frames the request and cannot be edited by a rule", t.name)
		}
	case strings.HasPrefix(s, "args.query.params."):
		t.kind, t.name = targetQuery, strings.TrimPrefix(s, "args.query.params.")
		if t.name == "" {
			return nil, errors.New("missing the query parameter name")
		}
	case strings.HasPrefix(s, "args.params."):
		t.kind = targetParams
		t.path = strings.Split(strings.TrimPrefix(s, "args.params."), ".")
		for _, p := range t.path {
			if p == "" || strings.ContainsAny(p, "[]()") {
				return nil, fmt.Errorf("%q: a body path is plain names separated by dots", s)
			}
		}
	case strings.HasPrefix(s, "res."):
		return nil, fmt.Errorf("%q: res.* edits Space Cloud's database responses; an HTTP gateway has none (edit args.query.headers.*, args.query.params.* or args.params.*)", s)
	default:
		return nil, fmt.Errorf("%q: want args.query.headers.<Name>, args.query.params.<name> or args.params.<path>", s)
	}
	return t, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// actionRule is a compiled force or remove.
type actionRule struct {
	force   bool
	targets []*target
	value   *operand // force: a string value (variable, template, literal)
	literal any      // force: any other JSON literal
	clause  evaluator
	deny    *ruleDenied
	errMsg  string
}

func (c *compiler) action(r *Rule, path, label string) (evaluator, error) {
	msg := r.Error
	if msg == "" {
		msg = defaultDenyMessage
	}
	a := &actionRule{force: r.Rule == "force", deny: &ruleDenied{message: msg, clause: label}, errMsg: r.Error}
	if r.Clause != nil && r.Clause.Rule != "" {
		cl, err := c.node(r.Clause, path+".clause")
		if err != nil {
			return nil, err
		}
		a.clause = cl
	}
	if a.force {
		if r.Field == "" {
			return nil, fmt.Errorf("%s: force needs a field", label)
		}
		t, err := compileTarget(r.Field)
		if err != nil {
			return nil, fmt.Errorf("%s: field %w", label, err)
		}
		a.targets = []*target{t}
		c.noteHandshakeTargets(a.targets)
		if len(r.Value) == 0 {
			return nil, fmt.Errorf("%s: force needs a value", label)
		}
		v, err := decodeExact(r.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: value: %w", label, err)
		}
		if s, ok := v.(string); ok {
			if a.value, err = compileStringOperand(s); err != nil {
				return nil, fmt.Errorf("%s: value: %w", label, err)
			}
		} else {
			if t.kind != targetParams {
				if _, isObj := v.(map[string]any); isObj || v == nil {
					return nil, fmt.Errorf("%s: a header or query parameter is set to a string, number, boolean or list", label)
				}
			}
			a.literal = v
		}
		return a, nil
	}
	if len(r.Fields) == 0 {
		return nil, fmt.Errorf("%s: remove needs fields", label)
	}
	raw, err := decodeExact(r.Fields)
	if err != nil {
		return nil, fmt.Errorf("%s: fields: %w", label, err)
	}
	var fields []string
	switch x := raw.(type) {
	case string:
		fields = []string{x}
	case []any:
		for i, f := range x {
			s, ok := f.(string)
			if !ok {
				return nil, fmt.Errorf("%s: fields[%d] is not a string", label, i)
			}
			fields = append(fields, s)
		}
	default:
		return nil, fmt.Errorf("%s: fields is a field or a list of fields", label)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s: remove needs at least one field", label)
	}
	for i, f := range fields {
		t, err := compileTarget(f)
		if err != nil {
			return nil, fmt.Errorf("%s: fields[%d] %w", label, i, err)
		}
		a.targets = append(a.targets, t)
	}
	c.noteHandshakeTargets(a.targets)
	return a, nil
}

// noteHandshakeTargets records the header and query targets for
// program.handshakeStrip.
func (c *compiler) noteHandshakeTargets(targets []*target) {
	for _, t := range targets {
		if t.kind != targetParams {
			c.prog.handshakeStrip = append(c.prog.handshakeStrip, t)
		}
	}
}

func (a *actionRule) eval(env *ruleEnv) error {
	if a.clause != nil {
		if err := a.clause.eval(env); err != nil {
			// An outage is no answer: skipping would keep, say, the
			// spoofed header a remove is there to strip.
			if d, ok := err.(*ruleDenied); ok && d.unavailable {
				return withError(err, a.errMsg)
			}
			return nil // Space Cloud: a failing clause skips the action
		}
	}
	if !a.force {
		for _, t := range a.targets {
			env.remove(t)
		}
		return nil
	}
	var v any = a.literal
	if a.value != nil {
		switch {
		case a.value.v != nil:
			x, ok := a.value.v.resolve(env)
			if !ok {
				// Space Cloud would set the variable's name as the value;
				// an identity header must never carry a made-up value.
				return a.deny
			}
			v = x
		case a.value.tmpl != "":
			s, ok := a.value.expand(env)
			if !ok {
				return a.deny
			}
			v = s
		default:
			v = a.value.str
		}
	}
	if !env.set(a.targets[0], v) {
		return a.deny
	}
	return nil
}

func (env *ruleEnv) set(t *target, v any) bool {
	switch t.kind {
	case targetHeader, targetQuery:
		switch v.(type) {
		case map[string]any, nil:
			return false
		}
		s := claimString(v)
		if t.kind == targetHeader {
			if strings.ContainsAny(s, "\r\n\x00") {
				return false
			}
			env.r.Header[t.name] = []string{s}
			return true
		}
		q := env.queryValues()
		q.Set(t.name, s)
		env.r.URL.RawQuery = q.Encode()
		return true
	}
	env.ensureParams()
	obj, ok := env.params.(map[string]any)
	if !env.paramsOK || !ok {
		return false // no JSON object body to edit
	}
	for _, k := range t.path[:len(t.path)-1] {
		next, present := obj[k]
		if !present {
			next = map[string]any{}
			obj[k] = next
		}
		if obj, ok = next.(map[string]any); !ok {
			return false
		}
	}
	obj[t.path[len(t.path)-1]] = jsonValue(v)
	env.paramsDirty = true
	return true
}

// jsonValue copies objects and arrays, so that a later edit of the body
// never reaches the claims (shared by every request with the same token).
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonValue(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = jsonValue(e)
		}
		return a
	}
	return v
}

func (env *ruleEnv) remove(t *target) {
	switch t.kind {
	case targetHeader:
		delete(env.r.Header, t.name)
	case targetQuery:
		q := env.queryValues()
		if _, ok := q[t.name]; ok {
			q.Del(t.name)
			env.r.URL.RawQuery = q.Encode()
		}
	case targetParams:
		env.ensureParams()
		obj, ok := env.params.(map[string]any)
		if !env.paramsOK || !ok {
			return
		}
		for _, k := range t.path[:len(t.path)-1] {
			if obj, ok = obj[k].(map[string]any); !ok {
				return
			}
		}
		if _, ok := obj[t.path[len(t.path)-1]]; ok {
			delete(obj, t.path[len(t.path)-1])
			env.paramsDirty = true
		}
	}
}
