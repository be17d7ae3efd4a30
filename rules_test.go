package jwtguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ruleClock is the time rules see in these tests.
var ruleClock = time.Date(2026, 6, 15, 12, 30, 45, 0, time.UTC)

// testClaims is the claim set most rule tests evaluate against.
const testClaims = `{
	"sub": "user-1",
	"role": "admin",
	"Role": "Admin",
	"roles": ["admin", "editor"],
	"age": 42,
	"big": 12345678901234567890,
	"price": 1.5,
	"sci": 1.5e3,
	"neg": -7,
	"seven": "7",
	"verified": true,
	"flag": "true",
	"born": "1990-05-17",
	"seen": "2026-06-15T12:00:00Z",
	"app_metadata": {"plan": "pro", "tier": {"level": 3}},
	"perms": {"docs": "read", "billing": "none"},
	"ids": [1, 2, 12345678901234567890],
	"https://example.com/tenant": "acme",
	"nothing": null
}`

func mustRule(t testing.TB, js string) *Rule {
	t.Helper()
	var r Rule
	if err := caddy.StrictUnmarshalJSON([]byte(js), &r); err != nil {
		t.Fatalf("rule JSON %s: %v", js, err)
	}
	return &r
}

func testIdentity(t testing.TB, claimsJSON string) *identity {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(claimsJSON))
	dec.UseNumber()
	var c map[string]any
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return &identity{token: "the.caller.token", claims: c}
}

// runRule compiles js and evaluates it for req (GET / when nil) as the
// handler does, returning the handler's verdict.
func runRule(t testing.TB, js string, id *identity, req *http.Request) error {
	t.Helper()
	h := &Handler{Rule: mustRule(t, js), now: func() time.Time { return ruleClock }}
	var err error
	if h.program, err = compileRule(h.Rule); err != nil {
		t.Fatalf("compiling %s: %v", js, err)
	}
	if req == nil {
		req = httptest.NewRequest(http.MethodGet, "/", nil)
	}
	repl := caddyhttp.NewTestReplacer(req)
	repl.Set("http.regexp.id.1", "42")
	return h.authorize(req, repl, id)
}

func match(typ, f1, eval, f2 string) string {
	return fmt.Sprintf(`{"rule":"match","type":%q,"f1":%s,"eval":%q,"f2":%s}`, typ, f1, eval, f2)
}

func TestRuleMatch(t *testing.T) {
	req := func(target string, headers ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ":")
			r.Header.Add(name, strings.TrimSpace(value))
		}
		return r
	}
	tests := []struct {
		name string
		rule string
		req  *http.Request
		pass bool
	}{
		// string
		{"string == claim", match("string", `"args.auth.role"`, "==", `"admin"`), nil, true},
		{"string == is case-sensitive", match("string", `"args.auth.Role"`, "==", `"admin"`), nil, false},
		{"string != differs", match("string", `"args.auth.role"`, "!=", `"editor"`), nil, true},
		{"string != same", match("string", `"args.auth.role"`, "!=", `"admin"`), nil, false},
		{"string literal on the left", match("string", `"admin"`, "==", `"args.auth.role"`), nil, true},
		{"string missing claim refuses ==", match("string", `"args.auth.nope"`, "==", `"admin"`), nil, false},
		{"string missing claim refuses !=", match("string", `"args.auth.nope"`, "!=", `"admin"`), nil, false},
		{"string number claim is not a string", match("string", `"args.auth.age"`, "==", `"42"`), nil, false},
		{"string null claim is not a string", match("string", `"args.auth.nothing"`, "!=", `"x"`), nil, false},
		{"string nested claim", match("string", `"args.auth.app_metadata.plan"`, "==", `"pro"`), nil, true},
		{"string array element", match("string", `"args.auth.roles.1"`, "==", `"editor"`), nil, true},
		{"string array index out of range", match("string", `"args.auth.roles.2"`, "!=", `"x"`), nil, false},
		{"string negative index refuses", match("string", `"args.auth.roles.-1"`, "!=", `"x"`), nil, false},
		{"string claim name with dots", match("string", `"args.auth.https://example.com/tenant"`, "==", `"acme"`), nil, true},
		{"string bracket indirection", match("string", `"args.auth.perms[args.query.params.res]"`, "==", `"read"`), req("/?res=docs"), true},
		{"string bracket indirection other member", match("string", `"args.auth.perms[args.query.params.res]"`, "==", `"read"`), req("/?res=billing"), false},
		{"string bracket indirection missing key", match("string", `"args.auth.perms[args.query.params.res]"`, "==", `"read"`), nil, false},
		{"string bracket literal", match("string", `"args.auth.perms['docs']"`, "==", `"read"`), nil, true},
		{"string bracket index", match("string", `"args.auth.roles[0]"`, "==", `"admin"`), nil, true},
		{"string in literal list", match("string", `"args.auth.role"`, "in", `["editor","admin"]`), nil, true},
		{"string in literal list misses", match("string", `"args.auth.role"`, "in", `["editor","viewer"]`), nil, false},
		{"string notIn literal list", match("string", `"args.auth.role"`, "notIn", `["editor","viewer"]`), nil, true},
		{"string notin (Space Cloud's spelling)", match("string", `"args.auth.role"`, "notin", `["admin"]`), nil, false},
		{"string in claim array", match("string", `"editor"`, "in", `"args.auth.roles"`), nil, true},
		{"string notIn claim array", match("string", `"owner"`, "notIn", `"args.auth.roles"`), nil, true},
		{"string in a claim that is not an array refuses", match("string", `"admin"`, "in", `"args.auth.role"`), nil, false},
		{"string notIn a missing claim refuses", match("string", `"admin"`, "notIn", `"args.auth.nope"`), nil, false},
		{"string list element is a variable", match("string", `"user-1"`, "in", `["nobody","args.query.params.owner"]`), req("/?owner=user-1"), true},
		{"string list element unresolved refuses", match("string", `"user-1"`, "in", `["args.query.params.owner","user-1"]`), nil, false},
		{"string list stops at the first match", match("string", `"user-1"`, "in", `["user-1","args.query.params.owner"]`), nil, true},
		{"string token", match("string", `"args.token"`, "==", `"the.caller.token"`), nil, true},
		// request variables
		{"query param", match("string", `"args.auth.sub"`, "==", `"args.query.params.owner"`), req("/?owner=user-1&owner=x"), true},
		{"query param other", match("string", `"args.auth.sub"`, "==", `"args.query.params.owner"`), req("/?owner=user-2"), false},
		{"header canonical name", match("string", `"args.query.headers.X-Tenant"`, "==", `"acme"`), req("/", "x-tenant: acme"), true},
		{"header written in lower case", match("string", `"args.query.headers.x-tenant"`, "==", `"acme"`), req("/", "X-Tenant: acme"), true},
		{"path", match("string", `"args.query.path"`, "==", `"/docs/42"`), req("/docs/42"), true},
		{"path array", match("string", `"args.query.pathArray.1"`, "==", `"42"`), req("/docs/42"), true},
		// placeholders
		{"placeholder query", match("string", `"args.auth.sub"`, "==", `"{http.request.uri.query.owner}"`), req("/?owner=user-1"), true},
		{"placeholder header", match("string", `"args.auth.https://example.com/tenant"`, "==", `"{http.request.header.X-Tenant}"`), req("/", "X-Tenant: acme"), true},
		{"placeholder regexp capture", match("number", `"args.auth.age"`, ">", `"{http.regexp.id.1}"`), nil, false},
		{"placeholder inside text", match("string", `"org-{http.request.uri.query.o}"`, "==", `"org-acme"`), req("/?o=acme"), true},
		{"unknown placeholder refuses", match("string", `"args.auth.role"`, "!=", `"{http.nope}"`), nil, false},
		// number
		{"number ==", match("number", `"args.auth.age"`, "==", `42`), nil, true},
		{"number !=", match("number", `"args.auth.age"`, "!=", `41`), nil, true},
		{"number <", match("number", `"args.auth.age"`, "<", `43`), nil, true},
		{"number < equal", match("number", `"args.auth.age"`, "<", `42`), nil, false},
		{"number <=", match("number", `"args.auth.age"`, "<=", `42`), nil, true},
		{"number >", match("number", `"args.auth.age"`, ">", `18`), nil, true},
		{"number >= fails", match("number", `"args.auth.age"`, ">=", `43`), nil, false},
		{"number negative", match("number", `"args.auth.neg"`, "<", `-6.5`), nil, true},
		{"number big integer exact", match("number", `"args.auth.big"`, "==", `"{http.request.uri.query.n}"`), req("/?n=12345678901234567890"), true},
		{"number big integer off by one", match("number", `"args.auth.big"`, "==", `"{http.request.uri.query.n}"`), req("/?n=12345678901234567891"), false},
		{"number big integer ordered", match("number", `"args.auth.big"`, "<", `"{http.request.uri.query.n}"`), req("/?n=12345678901234567891"), true},
		{"number big integer vs a float near it", match("number", `"args.auth.big"`, ">", `1.23456789012345e19`), nil, true},
		{"number big integer in a claim array", match("number", `"args.auth.big"`, "in", `"args.auth.ids"`), nil, true},
		{"number float", match("number", `"args.auth.price"`, "==", `1.50`), nil, true},
		{"number float ordered", match("number", `"args.auth.price"`, ">", `1.49999999999999`), nil, true},
		{"number float ordered exactly", match("number", `"args.auth.price"`, ">", `"{http.request.uri.query.n}"`), req("/?n=1.4999999999999999999999"), true},
		{"number exponent", match("number", `"args.auth.sci"`, "==", `1500`), nil, true},
		{"number huge exponent compares without expanding", match("number", `"args.auth.age"`, "<", `1e999999999`), nil, true},
		{"number string claim is not a number", match("number", `"args.auth.seven"`, "==", `7`), nil, false},
		{"number missing claim refuses !=", match("number", `"args.auth.nope"`, "!=", `7`), nil, false},
		{"number in list", match("number", `"args.auth.age"`, "in", `[1, 42.0]`), nil, true},
		{"number notIn list", match("number", `"args.auth.age"`, "notIn", `[1, 2]`), nil, true},
		{"number in claim array", match("number", `2`, "in", `"args.auth.ids"`), nil, true},
		{"number from placeholder", match("number", `"{http.request.uri.query.n}"`, ">=", `10`), req("/?n=12"), true},
		{"number placeholder not a number", match("number", `"{http.request.uri.query.n}"`, ">=", `10`), req("/?n=twelve"), false},
		{"number query param is a string", match("number", `"args.query.params.n"`, ">=", `10`), req("/?n=12"), false},
		// bool
		{"bool == true", match("bool", `"args.auth.verified"`, "==", `true`), nil, true},
		{"bool != true", match("bool", `"args.auth.verified"`, "!=", `true`), nil, false},
		{"bool == false", match("bool", `"args.auth.verified"`, "==", `false`), nil, false},
		{"bool string claim is not a bool", match("bool", `"args.auth.flag"`, "==", `true`), nil, false},
		{"bool missing claim refuses !=", match("bool", `"args.auth.nope"`, "!=", `true`), nil, false},
		{"bool utils.exists", match("bool", `"utils.exists(args.auth.app_metadata.plan)"`, "==", `true`), nil, true},
		{"bool utils.exists missing", match("bool", `"utils.exists(args.auth.nope)"`, "==", `false`), nil, true},
		{"bool from placeholder", match("bool", `"{http.request.uri.query.b}"`, "==", `true`), req("/?b=true"), true},
		// utils.length
		{"length of array", match("number", `"utils.length(args.auth.roles)"`, "==", `2`), nil, true},
		{"length of object", match("number", `"utils.length(args.auth.perms)"`, ">=", `2`), nil, true},
		{"length of missing refuses", match("number", `"utils.length(args.auth.nope)"`, "!=", `0`), nil, false},
		// date
		{"date day vs RFC 3339", match("date", `"args.auth.born"`, "<", `"1990-05-17T00:00:01Z"`), nil, true},
		{"date equal across forms", match("date", `"args.auth.born"`, "==", `"1990-05-17T02:00:00+02:00"`), nil, true},
		{"date <= now", match("date", `"args.auth.seen"`, "<=", `"utils.now()"`), nil, true},
		{"date > now", match("date", `"args.auth.seen"`, ">", `"utils.now()"`), nil, false},
		{"date addDuration", match("date", `"utils.addDuration(args.auth.seen, '1h')"`, ">", `"utils.now()"`), nil, true},
		{"date addDuration negative", match("date", `"utils.addDuration(utils.now(), '-31m')"`, "<", `"args.auth.seen"`), nil, true},
		{"date roundUpDate truncates", match("date", `"utils.roundUpDate(utils.now(), 'day')"`, "==", `"2026-06-15"`), nil, true},
		{"date roundUpDate hour", match("date", `"utils.roundUpDate(args.auth.seen, 'month')"`, "==", `"2026-06-01"`), nil, true},
		{"date claim that is not a date refuses", match("date", `"args.auth.role"`, "!=", `"2020-01-01"`), nil, false},
		{"date number claim refuses", match("date", `"args.auth.age"`, "!=", `"2020-01-01"`), nil, false},
	}
	id := testIdentity(t, testClaims)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runRule(t, tc.rule, id, tc.req)
			if tc.pass && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.pass {
				var d *ruleDenied
				if !errors.As(err, &d) {
					t.Fatalf("got %v, want a refusal", err)
				}
			}
		})
	}
}

func TestRuleAndOrErrors(t *testing.T) {
	pass := match("string", `"args.auth.role"`, "==", `"admin"`)
	fail := match("string", `"args.auth.role"`, "==", `"editor"`)
	failNamed := `{"rule":"match","type":"number","f1":"args.auth.age","eval":">","f2":100,"name":"old enough","error":"too young"}`
	tests := []struct {
		name       string
		rule       string
		wantErr    string // "" = pass
		wantClause string
	}{
		{"and passes", `{"rule":"and","clauses":[` + pass + `,` + pass + `]}`, "", ""},
		{"and stops at first refusal", `{"rule":"and","clauses":[` + pass + `,` + failNamed + `,{"rule":"deny","error":"never reached"}]}`, "too young", "old enough"},
		{"or passes at first pass", `{"rule":"or","clauses":[` + fail + `,` + pass + `,{"rule":"webhook","url":"http://127.0.0.1:1/never"}]}`, "", ""},
		{"or reports the last refusal", `{"rule":"or","clauses":[{"rule":"deny","error":"first"},{"rule":"deny","error":"last"}]}`, "last", "clauses[1]"},
		{"outermost error wins", `{"rule":"and","error":"outer","clauses":[{"rule":"or","error":"inner","clauses":[` + failNamed + `]}]}`, "outer", "old enough"},
		{"inner error without outer", `{"rule":"and","clauses":[{"rule":"or","error":"inner","clauses":[` + fail + `]}]}`, "inner", "rule.clauses[0].clauses[0]"},
		{"default message", `{"rule":"and","clauses":[` + fail + `]}`, defaultDenyMessage, `match "args.auth.role" == "editor"`},
		{"deny", `{"rule":"deny"}`, defaultDenyMessage, "rule"},
		{"four levels deep", `{"rule":"and","clauses":[{"rule":"or","clauses":[` + fail + `,{"rule":"and","clauses":[` + pass + `,{"rule":"or","clauses":[` + fail + `,` + pass + `]}]}]}]}`, "", ""},
		{"four levels deep refusing", `{"rule":"and","clauses":[{"rule":"or","clauses":[` + fail + `,{"rule":"and","clauses":[` + pass + `,{"rule":"or","clauses":[` + fail + `,{"rule":"deny","name":"bottom"}]}]}]}]}`, defaultDenyMessage, "bottom"},
		{"authenticated inside or", `{"rule":"or","clauses":[` + fail + `,{"rule":"authenticated"}]}`, "", ""},
	}
	id := testIdentity(t, testClaims)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runRule(t, tc.rule, id, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var d *ruleDenied
			if !errors.As(err, &d) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if d.message != tc.wantErr || !strings.Contains(d.clause, tc.wantClause) {
				t.Errorf("refusal = %q by %q, want %q by a clause containing %q", d.message, d.clause, tc.wantErr, tc.wantClause)
			}
		})
	}
}

func TestRuleCompileErrors(t *testing.T) {
	tests := []struct{ name, rule, want string }{
		{"unknown rule", `{"rule":"sometimes"}`, `rule: unknown rule "sometimes"`},
		{"missing rule", `{"eval":"=="}`, "missing the rule name"},
		{"match without type", `{"rule":"match","f1":"args.auth.a","eval":"==","f2":"x"}`, "match needs a type"},
		{"unknown type", `{"rule":"match","type":"integer","f1":"args.auth.a","eval":"==","f2":1}`, `unknown match type "integer"`},
		{"unknown operator", `{"rule":"match","type":"string","f1":"args.auth.a","eval":"=~","f2":"x"}`, `operator "=~" does not apply to type string`},
		{"ordering strings", `{"rule":"match","type":"string","f1":"args.auth.a","eval":"<","f2":"x"}`, `operator "<" does not apply to type string`},
		{"in on bools", `{"rule":"match","type":"bool","f1":"args.auth.a","eval":"in","f2":[true]}`, `operator "in" does not apply to type bool`},
		{"missing f1", `{"rule":"match","type":"string","eval":"==","f2":"x"}`, "rule: f1: missing"},
		{"missing f2", `{"rule":"match","type":"string","eval":"==","f1":"args.auth.a"}`, "rule: f2: missing"},
		{"string literal in a number match", `{"rule":"match","type":"number","f1":"args.auth.age","eval":">=","f2":"18"}`, `"18" is a string: a number match takes a JSON number`},
		{"number literal Caddy would round", `{"rule":"match","type":"number","f1":"args.auth.n","eval":"==","f2":12345678901234567890}`, "more than 15 significant digits"},
		{"string literal in a bool match", `{"rule":"match","type":"bool","f1":"args.auth.v","eval":"==","f2":"true"}`, `"true" is a string: a bool match`},
		{"number in a string match", `{"rule":"match","type":"string","f1":"args.auth.a","eval":"==","f2":7}`, "7 is a number, but the match type is string"},
		{"in against a string", `{"rule":"match","type":"string","f1":"args.auth.a","eval":"in","f2":"admin"}`, `f2 of in must be a list or a variable holding one, not "admin"`},
		{"in against a number", `{"rule":"match","type":"number","f1":"args.auth.a","eval":"in","f2":7}`, "f2 of in must be a list"},
		{"list with ==", `{"rule":"match","type":"string","f1":"args.auth.a","eval":"==","f2":["a"]}`, "f2 is a list: compare with in or notIn"},
		{"list element of the wrong type", `{"rule":"match","type":"string","f1":"args.auth.a","eval":"in","f2":["a",1]}`, "f2[1]: 1 is a number"},
		{"bad date literal", `{"rule":"match","type":"date","f1":"args.auth.d","eval":"<","f2":"next tuesday"}`, `"next tuesday" is not a date`},
		{"bad variable scope", `{"rule":"match","type":"string","f1":"args.query.cookies.a","eval":"==","f2":"x"}`, "args.query has path, pathArray, params and headers"},
		{"unbalanced brackets", `{"rule":"match","type":"string","f1":"args.auth.a[args.b","eval":"==","f2":"x"}`, "unbalanced brackets"},
		{"unknown utils", `{"rule":"match","type":"date","f1":"utils.tomorrow()","eval":"<","f2":"2020-01-01"}`, "unknown function utils.tomorrow"},
		{"bad duration", `{"rule":"match","type":"date","f1":"utils.addDuration(utils.now(), 'a while')","eval":"<","f2":"2020-01-01"}`, `"a while" is not a duration`},
		{"bad round unit", `{"rule":"match","type":"date","f1":"utils.roundUpDate(utils.now(), 'week')","eval":"<","f2":"2020-01-01"}`, `unit "week"`},
		{"empty and", `{"rule":"and","clauses":[]}`, "and needs at least one clause"},
		{"empty or", `{"rule":"or"}`, "or needs at least one clause"},
		{"bad nested clause names its path", `{"rule":"and","clauses":[{"rule":"allow"},{"rule":"or","clauses":[{"rule":"nope"}]}]}`, `rule.clauses[1].clauses[0]: unknown rule "nope"`},
		{"query", `{"rule":"query","db":"mongo","col":"users","find":{"id":"args.auth.id"}}`, "an HTTP gateway has no documents"},
		{"encrypt", `{"rule":"encrypt","fields":["args.params.ssn"]}`, "an HTTP gateway has no documents"},
		{"decrypt", `{"rule":"decrypt","fields":["res.ssn"]}`, "an HTTP gateway has no documents"},
		{"hash", `{"rule":"hash","fields":["args.params.password"]}`, "an HTTP gateway has no documents"},
		{"graphql", `{"rule":"graphql","graphqlQuery":"{ x }"}`, "GraphQL layer"},
		{"webhook without url", `{"rule":"webhook"}`, "webhook needs a url"},
		{"webhook bad url", `{"rule":"webhook","url":"ftp://example.com"}`, "is not an http or https URL"},
		{"webhook with claims", `{"rule":"webhook","url":"http://x.example","claims":"{}"}`, "holds no signing key"},
		{"webhook yaml", `{"rule":"webhook","url":"http://x.example","requestTemplate":"a: 1","outputFormat":"yaml"}`, "outputFormat yaml is not supported"},
		{"webhook bad template", `{"rule":"webhook","url":"http://x.example","requestTemplate":"{{ .args"}`, "requestTemplate"},
		{"webhook store over auth", `{"rule":"webhook","url":"http://x.example","store":"args.auth.x"}`, "would overwrite the request's own args.auth"},
		{"force without field", `{"rule":"force","value":"x"}`, "force needs a field"},
		{"force on claims", `{"rule":"force","field":"args.auth.role","value":"admin"}`, "want args.query.headers.<Name>"},
		{"force on a response", `{"rule":"force","field":"res.owner","value":"x"}`, "res.* edits Space Cloud's database responses"},
		{"force on Content-Length", `{"rule":"force","field":"args.query.headers.Content-Length","value":"0"}`, "cannot be edited by a rule"},
		{"force a header to an object", `{"rule":"force","field":"args.query.headers.X-A","value":{"a":1}}`, "set to a string"},
		{"remove without fields", `{"rule":"remove"}`, "remove needs fields"},
		{"remove non-string field", `{"rule":"remove","fields":[1]}`, "fields[0] is not a string"},
		{"transform without clause", `{"rule":"transform","requestTemplate":"{}"}`, "transform needs a clause"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileRule(mustRule(t, tc.rule))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("compile error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRuleAcceptsSpaceCloudRulesVerbatim decodes rules as Space Cloud's
// console writes them, stray keys included.
func TestRuleAcceptsSpaceCloudRulesVerbatim(t *testing.T) {
	rules := []string{
		`{"id":"r1","rule":"deny","eval":"!=","type":"string","f1":"a","f2":"b","db":"mongo","col":"default","name":"","error":""}`,
		`{"rule":"and","clauses":[{"rule":"match","eval":"==","type":"string","f1":"args.auth.role","f2":"admin"},{"rule":"allow"}]}`,
		`{"rule":"webhook","url":"https://hooks.example/check","store":"args.hook","template":"go","outputFormat":"json","requestTemplate":"{\"user\": \"{{.auth.sub}}\"}"}`,
		`{"rule":"force","field":"args.query.headers.X-User","value":"args.auth.sub","clause":{"rule":"allow"}}`,
		`{"rule":"remove","fields":"args.query.headers.X-User"}`,
	}
	for _, js := range rules {
		if _, err := compileRule(mustRule(t, js)); err != nil {
			t.Errorf("%s: %v", js, err)
		}
	}
}

func TestRuleParamsBody(t *testing.T) {
	id := testIdentity(t, testClaims)
	owns := match("string", `"args.params.owner"`, "==", `"args.auth.sub"`)
	post := func(ct, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		return r
	}
	t.Run("JSON body is read and restored", func(t *testing.T) {
		r := post("application/json", `{"owner":"user-1","n":12345678901234567890}`)
		if err := runRule(t, owns, id, r); err != nil {
			t.Fatalf("refused: %v", err)
		}
		got, _ := io.ReadAll(r.Body)
		if string(got) != `{"owner":"user-1","n":12345678901234567890}` {
			t.Errorf("next handler reads %q", got)
		}
	})
	t.Run("other owner refused", func(t *testing.T) {
		if err := runRule(t, owns, id, post("application/json; charset=utf-8", `{"owner":"user-2"}`)); err == nil {
			t.Fatal("passed")
		}
	})
	t.Run("non-JSON content type has no params", func(t *testing.T) {
		r := post("text/plain", `{"owner":"user-1"}`)
		if err := runRule(t, owns, id, r); err == nil {
			t.Fatal("passed")
		}
		if got, _ := io.ReadAll(r.Body); string(got) != `{"owner":"user-1"}` {
			t.Errorf("body changed: %q", got)
		}
	})
	t.Run("malformed JSON has no params", func(t *testing.T) {
		if err := runRule(t, owns, id, post("application/json", `{"owner":`)); err == nil {
			t.Fatal("passed")
		}
	})
	t.Run("body is not read when the rule does not use it", func(t *testing.T) {
		r := post("application/json", `{"owner":"user-1"}`)
		body := r.Body
		if err := runRule(t, `{"rule":"authenticated"}`, id, r); err != nil {
			t.Fatal(err)
		}
		if r.Body != body {
			t.Error("body was replaced")
		}
	})
	t.Run("oversized body is 413", func(t *testing.T) {
		big := `{"owner":"` + strings.Repeat("a", maxParamsBody) + `"}`
		r := post("application/json", big)
		err := runRule(t, owns, id, r)
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %v, want a 413 handler error", err)
		}
	})
	t.Run("oversized body without Content-Length is 413", func(t *testing.T) {
		r := post("application/json", "")
		r.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"owner":"`), bytes.NewReader(bytes.Repeat([]byte("a"), maxParamsBody+1))))
		r.ContentLength = -1
		var he caddyhttp.HandlerError
		if err := runRule(t, owns, id, r); !errors.As(err, &he) || he.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %v, want a 413 handler error", err)
		}
	})
}

func TestRuleForceRemove(t *testing.T) {
	newReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api?debug=1&keep=yes", strings.NewReader(`{"owner":"someone-else","meta":{"a":1}}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-User-Id", "spoofed")
		r.Header.Set("X-Spoof", "1")
		return r
	}
	tests := []struct {
		name  string
		rule  string
		check func(t *testing.T, r *http.Request)
	}{
		{"force header from claim", `{"rule":"force","field":"args.query.headers.X-User-Id","value":"args.auth.sub"}`, func(t *testing.T, r *http.Request) {
			if got := r.Header.Values("X-User-Id"); len(got) != 1 || got[0] != "user-1" {
				t.Errorf("X-User-Id = %q", got)
			}
		}},
		{"force header from nested number claim", `{"rule":"force","field":"args.query.headers.x-level","value":"args.auth.app_metadata.tier.level"}`, func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("X-Level"); got != "3" {
				t.Errorf("X-Level = %q", got)
			}
		}},
		{"force header from array claim", `{"rule":"force","field":"args.query.headers.X-Roles","value":"args.auth.roles"}`, func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("X-Roles"); got != "admin,editor" {
				t.Errorf("X-Roles = %q", got)
			}
		}},
		{"force header literal and placeholder", `{"rule":"force","field":"args.query.headers.X-Via","value":"jwt_guard {http.request.method}"}`, func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("X-Via"); got != "jwt_guard POST" {
				t.Errorf("X-Via = %q", got)
			}
		}},
		{"remove headers and a query parameter", `{"rule":"remove","fields":["args.query.headers.X-Spoof","args.query.headers.X-User-Id","args.query.params.debug"]}`, func(t *testing.T, r *http.Request) {
			if r.Header.Get("X-Spoof") != "" || r.Header.Get("X-User-Id") != "" {
				t.Errorf("headers left: %v", r.Header)
			}
			if r.URL.RawQuery != "keep=yes" {
				t.Errorf("query = %q", r.URL.RawQuery)
			}
		}},
		{"force query parameter", `{"rule":"force","field":"args.query.params.user","value":"args.auth.sub"}`, func(t *testing.T, r *http.Request) {
			if got := r.URL.Query().Get("user"); got != "user-1" {
				t.Errorf("user = %q (query %q)", got, r.URL.RawQuery)
			}
		}},
		{"force body field", `{"rule":"force","field":"args.params.owner","value":"args.auth.sub"}`, func(t *testing.T, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"meta":{"a":1},"owner":"user-1"}` || r.ContentLength != int64(len(b)) || r.Header.Get("Content-Length") != fmt.Sprint(len(b)) {
				t.Errorf("body %q, length %d / %q", b, r.ContentLength, r.Header.Get("Content-Length"))
			}
		}},
		{"force nested body field creates objects", `{"rule":"force","field":"args.params.audit.by","value":"args.auth.big"}`, func(t *testing.T, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if !strings.Contains(string(b), `"audit":{"by":12345678901234567890}`) {
				t.Errorf("body %q", b)
			}
		}},
		{"force literal JSON into the body", `{"rule":"force","field":"args.params.meta.a","value":{"x":[1,true]}}`, func(t *testing.T, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if !strings.Contains(string(b), `"meta":{"a":{"x":[1,true]}}`) {
				t.Errorf("body %q", b)
			}
		}},
		{"remove body field", `{"rule":"remove","fields":["args.params.meta.a"]}`, func(t *testing.T, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"meta":{},"owner":"someone-else"}` {
				t.Errorf("body %q", b)
			}
		}},
		{"clause that refuses skips the action", `{"rule":"force","field":"args.query.headers.X-User-Id","value":"forced","clause":{"rule":"match","type":"string","f1":"args.auth.role","eval":"==","f2":"editor"}}`, func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("X-User-Id"); got != "spoofed" {
				t.Errorf("X-User-Id = %q", got)
			}
		}},
		{"later clauses see the edit", `{"rule":"and","clauses":[{"rule":"remove","fields":["args.query.headers.X-Spoof"]},{"rule":"match","type":"bool","f1":"utils.exists(args.query.headers.X-Spoof)","eval":"==","f2":false}]}`, func(t *testing.T, r *http.Request) {}},
	}
	id := testIdentity(t, testClaims)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReq()
			if err := runRule(t, tc.rule, id, r); err != nil {
				t.Fatalf("refused: %v", err)
			}
			tc.check(t, r)
		})
	}

	t.Run("force from a missing claim refuses", func(t *testing.T) {
		r := newReq()
		if err := runRule(t, `{"rule":"force","field":"args.query.headers.X-User-Id","value":"args.auth.email"}`, id, r); err == nil {
			t.Fatal("passed")
		}
	})
	t.Run("editing the body never edits the claims", func(t *testing.T) {
		own := testIdentity(t, testClaims)
		rule := `{"rule":"and","clauses":[{"rule":"force","field":"args.params.md","value":"args.auth.app_metadata"},{"rule":"force","field":"args.params.md.plan","value":"free"}]}`
		if err := runRule(t, rule, own, newReq()); err != nil {
			t.Fatal(err)
		}
		if plan := own.claims["app_metadata"].(map[string]any)["plan"]; plan != "pro" {
			t.Errorf("claim app_metadata.plan = %v", plan)
		}
	})
}

func TestRuleWebhook(t *testing.T) {
	type seen struct {
		auth, body string
	}
	var last atomic.Pointer[seen]
	release := make(chan struct{})
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		last.Store(&seen{auth: r.Header.Get("Authorization"), body: string(b)})
	}
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"allowed":true,"quota":12345678901234567890}`)
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `["`+strings.Repeat("a", maxWebhookResponse)+`"]`)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	id := testIdentity(t, testClaims)
	hook := func(path, extra string) string {
		return fmt.Sprintf(`{"rule":"webhook","url":"%s%s"%s}`, srv.URL, path, extra)
	}
	tests := []struct {
		name        string
		rule        string
		wantPass    bool
		unavailable bool
	}{
		{"2xx JSON passes", hook("/ok", ""), true, false},
		{"stored result feeds later clauses", `{"rule":"and","clauses":[` + hook("/ok", "") + `,` + match("bool", `"args.result.allowed"`, "==", "true") + `,` + match("number", `"args.result.quota"`, ">", "1e19") + `]}`, true, false},
		{"custom store", `{"rule":"and","clauses":[` + hook("/ok", `,"store":"args.hooks.quota"`) + `,` + match("bool", `"args.hooks.quota.allowed"`, "==", "true") + `]}`, true, false},
		{"non-2xx is a refusal", hook("/forbidden", ""), false, false},
		{"redirect is not followed", hook("/redirect", ""), false, false},
		{"answer that is not JSON", hook("/text", ""), false, true},
		{"answer over the size cap", hook("/huge", ""), false, true},
		{"timeout", hook("/slow", `,"timeout":50000000`), false, true},
		{"webhook down", fmt.Sprintf(`{"rule":"webhook","url":"%s/ok"}`, downURL), false, true},
		{"or falls through a webhook that is down", `{"rule":"or","clauses":[` + fmt.Sprintf(`{"rule":"webhook","url":"%s/ok"}`, downURL) + `,{"rule":"authenticated"}]}`, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := runRule(t, tc.rule, id, nil)
			if tc.wantPass {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var d *ruleDenied
			if !errors.As(err, &d) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if d.unavailable != tc.unavailable {
				t.Errorf("unavailable = %v, want %v (%s)", d.unavailable, tc.unavailable, d.clause)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}

	t.Run("an outage logs no credential from the URL", func(t *testing.T) {
		// The clause is logged; the URL may carry an API key ({env.*}).
		err := runRule(t, fmt.Sprintf(`{"rule":"webhook","url":"%s/ok?key=hunter2"}`, downURL), id, nil)
		var d *ruleDenied
		if !errors.As(err, &d) || !d.unavailable {
			t.Fatalf("got %v, want unavailable", err)
		}
		if strings.Contains(d.clause, "hunter2") || strings.Contains(d.message, "hunter2") {
			t.Errorf("refusal %q / %q carries the URL's key", d.clause, d.message)
		}
	})
	t.Run("sends the args object with the caller's token", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/docs/7?x=1", nil)
		r.Header.Set("X-Tenant", "acme")
		if err := runRule(t, hook("/ok", ""), id, r); err != nil {
			t.Fatal(err)
		}
		s := last.Load()
		if s.auth != "Bearer the.caller.token" {
			t.Errorf("Authorization = %q", s.auth)
		}
		var body map[string]any
		dec := json.NewDecoder(strings.NewReader(s.body))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("body %q: %v", s.body, err)
		}
		q := body["query"].(map[string]any)
		if body["token"] != "the.caller.token" || body["auth"].(map[string]any)["big"] != json.Number("12345678901234567890") ||
			q["path"] != "/docs/7" || q["params"].(map[string]any)["x"] != "1" || q["headers"].(map[string]any)["X-Tenant"] != "acme" {
			t.Errorf("body = %s", s.body)
		}
	})
	t.Run("requestTemplate renders the body", func(t *testing.T) {
		tmpl := `,"requestTemplate":"{\"user\": \"{{.auth.sub}}\", \"roles\": {{marshalJSON .auth.roles}}, \"path\": \"{{.args.query.path}}\", \"up\": \"{{upper .auth.role}}\"}"`
		if err := runRule(t, hook("/ok", tmpl), id, nil); err != nil {
			t.Fatal(err)
		}
		if got := last.Load().body; got != `{"user": "user-1", "roles": ["admin","editor"], "path": "/", "up": "ADMIN"}` {
			t.Errorf("body = %s", got)
		}
	})
	t.Run("a template cannot change the claims", func(t *testing.T) {
		own := testIdentity(t, testClaims)
		tmpl := `,"requestTemplate":"{{ $_ := set .auth \"role\" \"root\" }}{\"role\": \"{{.auth.role}}\"}"`
		if err := runRule(t, hook("/ok", tmpl), own, nil); err != nil {
			t.Fatal(err)
		}
		if last.Load().body != `{"role": "root"}` || own.claims["role"] != "admin" {
			t.Errorf("body %s, claim role %v", last.Load().body, own.claims["role"])
		}
	})
	t.Run("transform stores a rendered result", func(t *testing.T) {
		rule := `{"rule":"transform","requestTemplate":"{\"plan\": \"{{.auth.app_metadata.plan}}\"}","clause":` + match("string", `"args.result.plan"`, "==", `"pro"`) + `}`
		if err := runRule(t, rule, id, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkRuleEval measures rules per request against `authenticated` as
// the baseline: a nested rule over claims, a header and a query parameter,
// and a big-number comparison. Compare with benchstat -col /rule.
func BenchmarkRuleEval(b *testing.B) {
	rules := []struct{ name, rule string }{
		{"authenticated", `{"rule":"authenticated"}`},
		{"nested", `{"rule":"and","clauses":[` +
			match("bool", `"args.auth.verified"`, "==", "true") + `,` +
			match("number", `"args.auth.age"`, ">=", "18") + `,` +
			`{"rule":"or","clauses":[` + match("string", `"args.auth.role"`, "in", `["owner","admin"]`) + `,` +
			match("string", `"args.auth.sub"`, "==", `"args.query.headers.X-Owner"`) + `]},` +
			match("string", `"args.auth.app_metadata.plan"`, "==", `"{http.request.uri.query.plan}"`) + `]}`},
		{"bignumber", match("number", `"args.auth.big"`, ">", `1.23456789012345e19`)},
	}
	id := testIdentity(b, testClaims)
	for _, rc := range rules {
		b.Run("rule="+rc.name, func(b *testing.B) {
			h := &Handler{Rule: mustRule(b, rc.rule), now: time.Now}
			var err error
			if h.program, err = compileRule(h.Rule); err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/?plan=pro", nil)
			r.Header.Set("X-Owner", "user-1")
			repl := caddyhttp.NewTestReplacer(r)
			b.ReportAllocs()
			for b.Loop() {
				if err := h.authorize(r, repl, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRuleRefusesHostileNumbers: numbers an attacker can put in a body are
// compared without being expanded, and absurd exponents refuse.
func TestRuleRefusesHostileNumbers(t *testing.T) {
	id := testIdentity(t, testClaims)
	rule := match("number", `"args.params.n"`, ">", `1`)
	tests := []struct {
		n    string
		pass bool
	}{
		{"1e999999999", true},
		{"-1e999999999", false},
		{"1e-999999999", false},
		{"1e99999999999999", false}, // exponent beyond 9 digits: refused, not rounded
		{"0.000000000000000000000000000001", false},
		{"1." + strings.Repeat("0", 100000) + "1", true},
	}
	for _, tc := range tests {
		t.Run(tc.n[:min(len(tc.n), 20)], func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"n":`+tc.n+`}`))
			r.Header.Set("Content-Type", "application/json")
			start := time.Now()
			err := runRule(t, rule, id, r)
			if (err == nil) != tc.pass {
				t.Errorf("pass = %v, want %v (%v)", err == nil, tc.pass, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestRuleConcurrentRequestsShareClaims evaluates editing rules on one
// cached identity from many goroutines; -race catches any shared write.
func TestRuleConcurrentRequestsShareClaims(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer hook.Close()
	rule := `{"rule":"and","clauses":[
		{"rule":"force","field":"args.params.md","value":"args.auth.app_metadata"},
		{"rule":"force","field":"args.params.md.plan","value":"free"},
		{"rule":"remove","fields":["args.params.md.tier"]},
		{"rule":"webhook","url":"` + hook.URL + `","requestTemplate":"{{ $_ := set .auth.app_metadata \"plan\" \"x\" }}{}"},
		{"rule":"force","field":"args.query.headers.X-Roles","value":"args.auth.roles"}]}`
	h := &Handler{Rule: mustRule(t, rule), now: time.Now}
	var err error
	if h.program, err = compileRule(h.Rule); err != nil {
		t.Fatal(err)
	}
	id := testIdentity(t, testClaims)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"a":1}`))
			r.Header.Set("Content-Type", "application/json")
			errs <- h.authorize(r, caddyhttp.NewTestReplacer(r), id)
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if md := id.claims["app_metadata"].(map[string]any); md["plan"] != "pro" || md["tier"] == nil {
		t.Errorf("claims changed: %v", md)
	}
}
