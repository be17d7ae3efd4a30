package jwtguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// matchKind is a match rule's `type`.
type matchKind uint8

const (
	kindString matchKind = iota
	kindNumber
	kindBool
	kindDate
)

var matchKinds = map[string]matchKind{"string": kindString, "number": kindNumber, "bool": kindBool, "date": kindDate}

// Operators each type allows, as in Space Cloud's match_types.go.
var matchOps = map[matchKind][]string{
	kindString: {"==", "!=", "in", "notIn"},
	kindNumber: {"==", "!=", "<", "<=", ">", ">=", "in", "notIn"},
	kindBool:   {"==", "!="},
	kindDate:   {"==", "!=", "<", "<=", ">", ">="},
}

// operand is one side of a match: a literal, a variable (args.* or
// utils.*), or a string with Caddy placeholders expanded per request.
type operand struct {
	text string
	v    *variable
	tmpl string
	// str is a literal string; lit a literal number (json.Number) or bool.
	str  string
	lit  any
	date time.Time // a literal date, parsed at provision
}

// compileStringOperand: a string is a variable only if it starts with
// args. or utils. (Space Cloud's LoadStringIfExists); with braces it is a
// placeholder template; else a literal.
func compileStringOperand(s string) (*operand, error) {
	o := &operand{text: s}
	switch {
	case isVariable(s):
		v, err := compileVariable(s)
		if err != nil {
			return nil, err
		}
		o.v = v
	case strings.ContainsRune(s, '{'):
		o.tmpl = s
	default:
		o.str = s
	}
	return o, nil
}

// compileOperand type-checks one JSON operand for kind.
func compileOperand(raw any, kind matchKind) (*operand, error) {
	switch x := raw.(type) {
	case string:
		o, err := compileStringOperand(x)
		if err != nil {
			return nil, err
		}
		if o.v == nil && o.tmpl == "" {
			switch kind {
			case kindNumber:
				return nil, fmt.Errorf("%q is a string: a number match takes a JSON number or a variable (args.*, utils.*); write %s without quotes", x, x)
			case kindBool:
				return nil, fmt.Errorf("%q is a string: a bool match takes true, false or a variable (args.*, utils.*)", x)
			case kindDate:
				t, err := parseDate(x)
				if err != nil {
					return nil, err
				}
				o.date = t
			}
		}
		return o, nil
	case json.Number:
		if kind != kindNumber {
			return nil, fmt.Errorf("%s is a number, but the match type is %s", x, kindName(kind))
		}
		d, ok := parseDecimal(string(x))
		if !ok {
			return nil, fmt.Errorf("number %s is out of range", x)
		}
		if len(d.digits) > maxLiteralDigits {
			return nil, fmt.Errorf("number %s has more than %d significant digits: Caddy keeps config numbers as 64-bit floats, so it would not stay exact; compare against a claim or a placeholder such as {http.vars.limit} instead", x, maxLiteralDigits)
		}
		return &operand{text: string(x), lit: x}, nil
	case bool:
		if kind != kindBool {
			return nil, fmt.Errorf("%t is a boolean, but the match type is %s", x, kindName(kind))
		}
		return &operand{text: strconv.FormatBool(x), lit: x}, nil
	case nil:
		return nil, errors.New("missing")
	default:
		return nil, fmt.Errorf("want a %s or a variable, not %s", kindName(kind), compactJSON(x))
	}
}

func kindName(k matchKind) string {
	for name, v := range matchKinds {
		if v == k {
			return name
		}
	}
	return "?"
}

// expand renders a placeholder template; an unknown placeholder makes the
// operand unresolved rather than silently empty.
func (o *operand) expand(env *ruleEnv) (string, bool) {
	s, err := env.repl.ReplaceOrErr(o.tmpl, false, true)
	return s, err == nil
}

// str1 resolves a string-typed operand.
func (o *operand) str1(env *ruleEnv) (string, bool) {
	switch {
	case o.v != nil:
		x, ok := o.v.resolve(env)
		if !ok {
			return "", false
		}
		s, ok := x.(string)
		return s, ok
	case o.tmpl != "":
		return o.expand(env)
	}
	return o.str, true
}

func (o *operand) number(env *ruleEnv) (string, bool) {
	switch {
	case o.v != nil:
		x, ok := o.v.resolve(env)
		if !ok {
			return "", false
		}
		n, ok := x.(json.Number)
		return string(n), ok
	case o.tmpl != "":
		s, ok := o.expand(env)
		if !ok {
			return "", false
		}
		_, ok = parseDecimal(s)
		return s, ok
	}
	return string(o.lit.(json.Number)), true
}

func (o *operand) boolean(env *ruleEnv) (bool, bool) {
	switch {
	case o.v != nil:
		x, ok := o.v.resolve(env)
		if !ok {
			return false, false
		}
		b, ok := x.(bool)
		return b, ok
	case o.tmpl != "":
		s, ok := o.expand(env)
		if !ok {
			return false, false
		}
		b, err := strconv.ParseBool(s)
		return b, err == nil && (s == "true" || s == "false")
	}
	return o.lit.(bool), true
}

func (o *operand) time(env *ruleEnv) (time.Time, bool) {
	if o.v == nil && o.tmpl == "" {
		return o.date, true
	}
	s, ok := o.str1(env)
	if !ok {
		return time.Time{}, false
	}
	t, err := parseDate(s)
	return t, err == nil
}

// matchRule is a compiled `match`.
type matchRule struct {
	label string
	kind  matchKind
	op    string
	f1    *operand
	f2    *operand   // nil when f2 is a literal list
	list  []*operand // in / notIn against a literal array
	deny  *ruleDenied
}

func compileMatch(r *Rule, label string, deny *ruleDenied) (evaluator, error) {
	if r.Type == "" {
		return nil, fmt.Errorf("%s: match needs a type: string, number, bool or date", label)
	}
	kind, ok := matchKinds[r.Type]
	if !ok {
		return nil, fmt.Errorf("%s: unknown match type %q (want string, number, bool or date)", label, r.Type)
	}
	op := r.Eval
	if op == "notin" { // Space Cloud's code spells it so; its docs say notIn
		op = "notIn"
	}
	if op == "" {
		return nil, fmt.Errorf("%s: match needs an eval operator", label)
	}
	allowed := false
	for _, a := range matchOps[kind] {
		allowed = allowed || a == op
	}
	if !allowed {
		return nil, fmt.Errorf("%s: operator %q does not apply to type %s (want one of %s)", label, r.Eval, r.Type, strings.Join(matchOps[kind], " "))
	}
	m := &matchRule{label: label, kind: kind, op: op, deny: deny}
	f1, err := decodeOperand(r.F1)
	if err != nil {
		return nil, fmt.Errorf("%s: f1: %w", label, err)
	}
	if m.f1, err = compileOperand(f1, kind); err != nil {
		return nil, fmt.Errorf("%s: f1: %w", label, err)
	}
	f2, err := decodeOperand(r.F2)
	if err != nil {
		return nil, fmt.Errorf("%s: f2: %w", label, err)
	}
	if op == "in" || op == "notIn" {
		switch x := f2.(type) {
		case []any:
			for i, e := range x {
				o, err := compileOperand(e, kind)
				if err != nil {
					return nil, fmt.Errorf("%s: f2[%d]: %w", label, i, err)
				}
				m.list = append(m.list, o)
			}
			return m, nil
		case string:
			if !isVariable(x) {
				return nil, fmt.Errorf("%s: f2 of %s must be a list or a variable holding one, not %q", label, op, x)
			}
		default:
			return nil, fmt.Errorf("%s: f2 of %s must be a list or a variable holding one", label, op)
		}
	} else if _, isList := f2.([]any); isList {
		return nil, fmt.Errorf("%s: f2 is a list: compare with in or notIn", label)
	}
	if m.f2, err = compileOperand(f2, kind); err != nil {
		return nil, fmt.Errorf("%s: f2: %w", label, err)
	}
	return m, nil
}

func decodeOperand(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, errors.New("missing")
	}
	v, err := decodeExact(raw)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, errors.New("missing (null)")
	}
	return v, nil
}

func (m *matchRule) eval(env *ruleEnv) error {
	var ok bool
	switch m.kind {
	case kindString:
		ok = m.evalString(env)
	case kindNumber:
		ok = m.evalNumber(env)
	case kindBool:
		ok = m.evalBool(env)
	case kindDate:
		ok = m.evalDate(env)
	}
	if ok {
		return nil
	}
	return m.deny
}

func (m *matchRule) evalString(env *ruleEnv) bool {
	a, ok := m.f1.str1(env)
	if !ok {
		return false
	}
	switch m.op {
	case "==", "!=":
		b, ok := m.f2.str1(env)
		return ok && (a == b) == (m.op == "==")
	}
	found, ok := m.member(env, func(o *operand) (bool, bool) {
		b, ok := o.str1(env)
		return ok && a == b, ok
	}, func(x any) bool {
		b, ok := x.(string)
		return ok && a == b
	})
	return ok && found == (m.op == "in")
}

func (m *matchRule) evalNumber(env *ruleEnv) bool {
	a, ok := m.f1.number(env)
	if !ok {
		return false
	}
	switch m.op {
	case "in", "notIn":
		found, ok := m.member(env, func(o *operand) (bool, bool) {
			b, ok := o.number(env)
			if !ok {
				return false, false
			}
			c, ok := cmpNumbers(a, b)
			return ok && c == 0, ok
		}, func(x any) bool {
			b, ok := x.(json.Number)
			if !ok {
				return false
			}
			c, ok := cmpNumbers(a, string(b))
			return ok && c == 0
		})
		return ok && found == (m.op == "in")
	}
	b, ok := m.f2.number(env)
	if !ok {
		return false
	}
	c, ok := cmpNumbers(a, b)
	return ok && cmpHolds(m.op, c)
}

func (m *matchRule) evalBool(env *ruleEnv) bool {
	a, ok := m.f1.boolean(env)
	if !ok {
		return false
	}
	b, ok := m.f2.boolean(env)
	return ok && (a == b) == (m.op == "==")
}

func (m *matchRule) evalDate(env *ruleEnv) bool {
	a, ok := m.f1.time(env)
	if !ok {
		return false
	}
	b, ok := m.f2.time(env)
	return ok && cmpHolds(m.op, a.Compare(b))
}

// member reports whether f1 is in f2 (a literal list or a variable holding
// an array); ok is false when something does not resolve.
func (m *matchRule) member(env *ruleEnv, eqOperand func(*operand) (bool, bool), eqValue func(any) bool) (found, ok bool) {
	if m.f2 == nil {
		for _, o := range m.list {
			eq, ok := eqOperand(o)
			if !ok {
				return false, false
			}
			if eq {
				return true, true
			}
		}
		return false, true
	}
	x, ok := m.f2.v.resolve(env)
	if !ok {
		return false, false
	}
	arr, ok := x.([]any)
	if !ok {
		return false, false
	}
	// Elements of a claim array are values, never variables: a claim
	// "args.auth.x" must not be dereferenced (Space Cloud does).
	for _, e := range arr {
		if eqValue(e) {
			return true, true
		}
	}
	return false, true
}

func cmpHolds(op string, c int) bool {
	switch op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

// decimal is an exact JSON number: value = ±0.digits × 10^exp, digits
// without leading or trailing zeros ("" is zero).
type decimal struct {
	neg    bool
	digits string
	exp    int
}

// maxLiteralDigits is what survives Caddy's config handling exactly: the
// admin API decodes the JSON config into float64 and back, and every
// decimal of up to 15 significant digits round-trips.
const maxLiteralDigits = 15

// maxExpDigits bounds exponents: 1e999999999 compares exactly, without
// ever being expanded (a body can carry any number an attacker likes).
const maxExpDigits = 9

// parseDecimal reads a JSON number exactly.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[start:i]
	if intPart == "" || (len(intPart) > 1 && intPart[0] == '0') {
		return d, false
	}
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fs:i]
		if frac == "" {
			return d, false
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		e := strings.TrimLeft(s[es:i], "0")
		if i == es || len(e) > maxExpDigits {
			return d, false
		}
		for j := 0; j < len(e); j++ {
			exp = exp*10 + int(e[j]-'0')
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return d, false
	}
	// Normalise: strip leading zeros of the integer part (moving the point)
	// and trailing zeros of the whole mantissa.
	digits := intPart
	if frac != "" {
		digits += frac
	}
	point := len(intPart)
	lead := len(digits) - len(strings.TrimLeft(digits, "0"))
	digits = strings.TrimRight(digits[lead:], "0")
	if digits == "" {
		return decimal{}, true // zero, sign dropped: -0 == 0
	}
	d.digits = digits
	d.exp = point - lead + exp
	return d, true
}

func (a decimal) cmp(b decimal) int {
	if a.digits == "" && b.digits == "" {
		return 0
	}
	sa, sb := a.sign(), b.sign()
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	// Same sign, both non-zero: compare magnitudes.
	m := 0
	switch {
	case a.exp != b.exp:
		m = 1
		if a.exp < b.exp {
			m = -1
		}
	default:
		m = strings.Compare(a.digits, b.digits)
	}
	return m * sa
}

func (a decimal) sign() int {
	switch {
	case a.digits == "":
		return 0
	case a.neg:
		return -1
	}
	return 1
}

// smallInt reports whether s is a plain integer that surely fits int64, so
// that ParseInt never fails (its errors allocate).
func smallInt(s string) bool {
	t := strings.TrimPrefix(s, "-")
	if t == "" || len(t) > 18 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}

// cmpNumbers compares two JSON numbers exactly: integers that fit int64 on
// a fast path, anything else (big integers, fractions, exponents) by
// digits.
func cmpNumbers(a, b string) (int, bool) {
	if smallInt(a) && smallInt(b) {
		x, errX := strconv.ParseInt(a, 10, 64)
		y, errY := strconv.ParseInt(b, 10, 64)
		if errX == nil && errY == nil {
			switch {
			case x < y:
				return -1, true
			case x > y:
				return 1, true
			}
			return 0, true
		}
	}
	da, ok := parseDecimal(a)
	if !ok {
		return 0, false
	}
	db, ok := parseDecimal(b)
	if !ok {
		return 0, false
	}
	return da.cmp(db), true
}
