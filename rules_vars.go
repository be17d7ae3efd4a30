package jwtguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Variables are named as on Space Cloud's ingress routes, so that pasted
// rules keep working:
//
//	args.auth.<path>             the claims
//	args.token                   the token
//	args.params.<path>           the JSON request body
//	args.query.path              the request path
//	args.query.pathArray.<i>     the path split on "/"
//	args.query.params.<name>     a query parameter (first value)
//	args.query.headers.<Name>    a request header (first value)
//	args.<name>                  what a webhook or transform stored there
//	utils.now() utils.exists(v) utils.length(v) utils.addDuration(ts, d) utils.roundUpDate(ts, unit)
//
// Paths go into objects by "." and into arrays by decimal index; a segment
// may end in brackets, `perms[args.query.params.res]`, whose content (a
// variable, a quoted string or an index) names the next member.

// maxParamsBody bounds the JSON body read for args.params: the body is
// attacker-controlled and read whole before the next handler sees it.
const maxParamsBody = 1 << 20

type varSource uint8

const (
	srcAuth varSource = iota
	srcToken
	srcParams
	srcQuery // the whole args.query object
	srcPath
	srcPathArray
	srcQueryParams // all of args.query.params
	srcQueryParam
	srcHeaders // all of args.query.headers
	srcHeader
	srcArgs // the whole args object
	srcStored
	srcUtil
)

// variable is a compiled variable reference.
type variable struct {
	text  string
	src   varSource
	key   string // query parameter, canonical header name, or stored member
	steps []step
	util  *utilCall
}

// step walks one level (or, for a static run, several dotted levels) down
// from the value reached so far.
type step struct {
	static string    // a dotted path handed to lookupPath
	dyn    *variable // a bracket: its value names one member or index
	lit    string    // a bracket holding a quoted string or an index
	isLit  bool
}

func isVariable(s string) bool {
	return strings.HasPrefix(s, "args.") || strings.HasPrefix(s, "utils.")
}

// splitOutside splits s on sep where sep is outside brackets and
// parentheses, as Space Cloud's splitVariable does.
func splitOutside(s string, sep byte) ([]string, error) {
	var parts []string
	depthSq, depthPar, last := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depthSq++
		case ']':
			depthSq--
		case '(':
			depthPar++
		case ')':
			depthPar--
		case sep:
			if depthSq == 0 && depthPar == 0 {
				parts = append(parts, s[last:i])
				last = i + 1
			}
		}
		if depthSq < 0 || depthPar < 0 {
			return nil, fmt.Errorf("unbalanced brackets in %q", s)
		}
	}
	if depthSq != 0 || depthPar != 0 {
		return nil, fmt.Errorf("unbalanced brackets in %q", s)
	}
	return append(parts, s[last:]), nil
}

// compileVariable compiles a variable reference written args.* or utils.*.
func compileVariable(text string) (*variable, error) {
	segs, err := splitOutside(text, '.')
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("variable %q has an empty path segment", text)
		}
	}
	v := &variable{text: text}
	if segs[0] == "utils" {
		if len(segs) != 2 {
			return nil, fmt.Errorf("variable %q: a utils function is the whole variable, like utils.now()", text)
		}
		u, err := compileUtil(segs[1])
		if err != nil {
			return nil, fmt.Errorf("variable %q: %w", text, err)
		}
		v.src, v.util = srcUtil, u
		return v, nil
	}
	if segs[0] != "args" {
		return nil, fmt.Errorf("variable %q must start with args. or utils.", text)
	}
	head := func(i int) (string, bool) {
		if i >= len(segs) {
			return "", false
		}
		return segs[i], !strings.ContainsAny(segs[i], "[]()")
	}
	rest := 2
	name, ok := head(1)
	switch {
	case len(segs) == 1:
		v.src, rest = srcArgs, 1
	case !ok:
		return nil, fmt.Errorf("variable %q: %q must be a plain name (auth, token, params, query, or a stored result)", text, segs[1])
	case name == "auth":
		v.src = srcAuth
	case name == "token":
		v.src = srcToken
	case name == "params":
		v.src = srcParams
	case name == "query":
		sub, ok := head(2)
		switch {
		case len(segs) == 2:
			v.src = srcQuery
		case !ok:
			return nil, fmt.Errorf("variable %q: after args.query comes path, pathArray, params or headers", text)
		case sub == "path":
			v.src, rest = srcPath, 3
		case sub == "pathArray":
			v.src, rest = srcPathArray, 3
		case sub == "params" || sub == "headers":
			key, ok := head(3)
			switch {
			case len(segs) == 3:
				v.src, rest = srcQueryParams, 3
				if sub == "headers" {
					v.src = srcHeaders
				}
			case !ok:
				return nil, fmt.Errorf("variable %q: %q must be a plain name", text, segs[3])
			case sub == "params":
				v.src, v.key, rest = srcQueryParam, key, 4
			default:
				v.src, v.key, rest = srcHeader, textproto.CanonicalMIMEHeaderKey(key), 4
			}
		default:
			return nil, fmt.Errorf("variable %q: args.query has path, pathArray, params and headers, not %q", text, sub)
		}
	default:
		v.src, v.key = srcStored, name
	}
	steps, err := compileSteps(segs[rest:])
	if err != nil {
		return nil, fmt.Errorf("variable %q: %w", text, err)
	}
	v.steps = steps
	return v, nil
}

// compileSteps turns path segments into steps, merging plain segments into
// one dotted run so that lookupPath can match claim names with dots.
func compileSteps(segs []string) ([]step, error) {
	var steps []step
	var run []string
	flush := func() {
		if len(run) > 0 {
			steps = append(steps, step{static: strings.Join(run, ".")})
			run = run[:0]
		}
	}
	for _, seg := range segs {
		if strings.ContainsAny(seg, "()") {
			return nil, fmt.Errorf("parentheses in path segment %q", seg)
		}
		open := strings.IndexByte(seg, '[')
		if open < 0 {
			if strings.ContainsRune(seg, ']') {
				return nil, fmt.Errorf("unbalanced brackets in %q", seg)
			}
			run = append(run, seg)
			continue
		}
		if open > 0 {
			run = append(run, seg[:open])
		}
		flush()
		for b := seg[open:]; b != ""; {
			if b[0] != '[' {
				return nil, fmt.Errorf("path segment %q: text after a closing bracket", seg)
			}
			end := matchingBracket(b)
			if end < 0 {
				return nil, fmt.Errorf("unbalanced brackets in %q", seg)
			}
			inner := strings.TrimSpace(b[1:end])
			st, err := compileBracket(inner)
			if err != nil {
				return nil, fmt.Errorf("path segment %q: %w", seg, err)
			}
			steps = append(steps, st)
			b = b[end+1:]
		}
	}
	flush()
	return steps, nil
}

func matchingBracket(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func compileBracket(inner string) (step, error) {
	switch {
	case inner == "":
		return step{}, errors.New("empty brackets")
	case isVariable(inner):
		v, err := compileVariable(inner)
		if err != nil {
			return step{}, err
		}
		return step{dyn: v}, nil
	case len(inner) >= 2 && (inner[0] == '\'' || inner[0] == '"') && inner[len(inner)-1] == inner[0]:
		return step{lit: inner[1 : len(inner)-1], isLit: true}, nil
	default:
		if _, ok := arrayIndex(inner, 1<<30); ok {
			return step{lit: inner, isLit: true}, nil
		}
		return step{}, fmt.Errorf("brackets hold a variable (args.* or utils.*), a quoted name or an index, not %q", inner)
	}
}

// resolve reads the variable's value for this request; false when it does
// not resolve.
func (v *variable) resolve(env *ruleEnv) (any, bool) {
	var cur any
	switch v.src {
	case srcAuth:
		if env.id == nil {
			return nil, false
		}
		cur = env.id.claims
	case srcToken:
		if env.id == nil {
			return nil, false
		}
		cur = env.id.token
	case srcParams:
		if env.ensureParams(); !env.paramsOK {
			return nil, false
		}
		cur = env.params
	case srcQuery:
		cur = map[string]any{"path": env.r.URL.Path, "pathArray": env.pathArray(), "params": env.queryObject(), "headers": env.headerObject()}
	case srcPath:
		cur = env.r.URL.Path
	case srcPathArray:
		cur = env.pathArray()
	case srcQueryParams:
		cur = env.queryObject()
	case srcQueryParam:
		vals := env.queryValues()[v.key]
		if len(vals) == 0 {
			return nil, false
		}
		cur = vals[0]
	case srcHeaders:
		cur = env.headerObject()
	case srcHeader:
		vals := env.r.Header[v.key]
		if len(vals) == 0 {
			return nil, false
		}
		cur = vals[0]
	case srcArgs:
		cur = env.argsObject()
	case srcStored:
		x, ok := env.stored[v.key]
		if !ok {
			return nil, false
		}
		cur = x
	case srcUtil:
		return v.util.call(env)
	}
	for i := range v.steps {
		st := &v.steps[i]
		var ok bool
		switch {
		case st.static != "":
			cur, ok = lookupPath(cur, st.static)
		case st.isLit:
			cur, ok = member(cur, st.lit)
		default:
			var k any
			if k, ok = st.dyn.resolve(env); !ok {
				return nil, false
			}
			switch k := k.(type) {
			case string:
				cur, ok = member(cur, k)
			case json.Number:
				cur, ok = member(cur, k.String())
			default:
				ok = false
			}
		}
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// member is one exact step: an object member or an array index.
func member(v any, key string) (any, bool) {
	switch node := v.(type) {
	case map[string]any:
		x, ok := node[key]
		return x, ok
	case []any:
		i, ok := arrayIndex(key, len(node))
		if !ok {
			return nil, false
		}
		return node[i], true
	}
	return nil, false
}

// utilCall is a compiled utils.* function.
type utilCall struct {
	fn   string
	arg  *variable // exists, length
	ts   *operand  // addDuration, roundUpDate
	dur  time.Duration
	unit string
}

func compileUtil(call string) (*utilCall, error) {
	open := strings.IndexByte(call, '(')
	if open < 0 || !strings.HasSuffix(call, ")") {
		return nil, fmt.Errorf("%q is not a function call like now()", call)
	}
	u := &utilCall{fn: call[:open]}
	inner := strings.TrimSpace(call[open+1 : len(call)-1])
	var params []string
	if inner != "" {
		parts, err := splitOutside(inner, ',')
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			params = append(params, strings.TrimSpace(p))
		}
	}
	want := map[string]int{"now": 0, "exists": 1, "length": 1, "addDuration": 2, "roundUpDate": 2}
	n, known := want[u.fn]
	if !known {
		return nil, fmt.Errorf("unknown function utils.%s (want now, exists, length, addDuration or roundUpDate)", u.fn)
	}
	if len(params) != n {
		return nil, fmt.Errorf("utils.%s takes %d argument(s), got %d", u.fn, n, len(params))
	}
	switch u.fn {
	case "exists", "length":
		if !isVariable(params[0]) {
			return nil, fmt.Errorf("utils.%s needs a variable, not %q", u.fn, params[0])
		}
		v, err := compileVariable(params[0])
		if err != nil {
			return nil, err
		}
		u.arg = v
	case "addDuration", "roundUpDate":
		ts, err := compileStringOperand(unquote(params[0]))
		if err != nil {
			return nil, err
		}
		if ts.v == nil && ts.tmpl == "" {
			if _, err := parseDate(ts.str); err != nil {
				return nil, fmt.Errorf("utils.%s: %w", u.fn, err)
			}
		}
		u.ts = ts
		second := unquote(params[1])
		if u.fn == "addDuration" {
			d, err := time.ParseDuration(second)
			if err != nil {
				return nil, fmt.Errorf("utils.addDuration: %q is not a duration like 24h or -30m", second)
			}
			u.dur = d
		} else {
			switch second {
			case "year", "month", "day", "hour", "minute", "second":
				u.unit = second
			default:
				return nil, fmt.Errorf("utils.roundUpDate: unit %q is not one of year, month, day, hour, minute, second", second)
			}
		}
	}
	return u, nil
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// call evaluates the function. Dates come out as RFC 3339 strings in UTC,
// as in Space Cloud, so they compare under type date.
func (u *utilCall) call(env *ruleEnv) (any, bool) {
	switch u.fn {
	case "now":
		return env.now().UTC().Format(time.RFC3339Nano), true
	case "exists":
		_, ok := u.arg.resolve(env)
		return ok, true
	case "length":
		x, ok := u.arg.resolve(env)
		if !ok {
			return nil, false
		}
		switch x := x.(type) {
		case []any:
			return json.Number(strconv.Itoa(len(x))), true
		case map[string]any:
			return json.Number(strconv.Itoa(len(x))), true
		case string:
			return json.Number(strconv.Itoa(len(x))), true
		}
		return nil, false
	}
	s, ok := u.ts.str1(env)
	if !ok {
		return nil, false
	}
	t, err := parseDate(s)
	if err != nil {
		return nil, false
	}
	if u.fn == "addDuration" {
		return t.Add(u.dur).UTC().Format(time.RFC3339Nano), true
	}
	// Space Cloud's roundUpDate truncates to the start of the unit.
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	switch u.unit {
	case "year":
		mo, d, h, mi, sec = time.January, 1, 0, 0, 0
	case "month":
		d, h, mi, sec = 1, 0, 0, 0
	case "day":
		h, mi, sec = 0, 0, 0
	case "hour":
		mi, sec = 0, 0
	case "minute":
		sec = 0
	}
	return time.Date(y, mo, d, h, mi, sec, 0, t.Location()).UTC().Format(time.RFC3339Nano), true
}

// parseDate reads RFC 3339 (fractional seconds allowed) or YYYY-MM-DD (UTC).
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (RFC 3339 or YYYY-MM-DD)", s)
}

// Request views, built on first use and kept for the request.

func (env *ruleEnv) queryValues() url.Values {
	if env.query == nil {
		env.query = env.r.URL.Query()
	}
	return env.query
}

func (env *ruleEnv) queryObject() map[string]any {
	m := make(map[string]any)
	for k, v := range env.queryValues() {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

func (env *ruleEnv) headerObject() map[string]any {
	m := make(map[string]any, len(env.r.Header))
	for k, v := range env.r.Header {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

func (env *ruleEnv) pathArray() []any {
	parts := strings.Split(strings.TrimPrefix(env.r.URL.Path, "/"), "/")
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out
}

// argsObject is the whole args object: what a webhook receives by default.
func (env *ruleEnv) argsObject() map[string]any {
	env.ensureParams()
	args := map[string]any{
		"query": map[string]any{"path": env.r.URL.Path, "pathArray": env.pathArray(), "params": env.queryObject(), "headers": env.headerObject()},
	}
	if env.id != nil {
		args["auth"] = env.id.claims
		args["token"] = env.id.token
	}
	if env.paramsOK {
		args["params"] = env.params
	}
	for k, v := range env.stored {
		args[k] = v
	}
	return args
}

// loadParams reads a JSON body for args.params, bounded, and puts it back
// for the next handler. A body that is not JSON leaves args.params unset.
func (env *ruleEnv) loadParams() error {
	r := env.r
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil
	}
	if r.ContentLength > maxParamsBody {
		return caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", maxParamsBody))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxParamsBody+1))
	if err != nil {
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
	}
	if len(body) > maxParamsBody {
		return caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", maxParamsBody))
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) == nil && !dec.More() {
		env.params, env.paramsOK = v, true
	}
	return nil
}
