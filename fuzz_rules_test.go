package jwtguard

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Fuzz targets for the rule parser and evaluator. The seed corpora under
// testdata/fuzz/ run with plain `go test`; to fuzz one:
//
//	go test -run '^$' -fuzz '^FuzzRuleEval$' -fuzztime 4m -parallel 1 .

// FuzzRuleCompile: any JSON a config may hold as a rule either compiles or
// fails with an error, never a panic; a rule that compiles evaluates, on a
// fixed request, to a pass or a *ruleDenied and leaves the claims as they
// were.
func FuzzRuleCompile(f *testing.F) {
	for _, js := range fuzzRuleEvalRules {
		f.Add([]byte(js.rule))
	}
	claimsJSON := []byte(testClaims)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rule
		if json.Unmarshal(data, &r) != nil {
			return
		}
		p, err := compileRule(&r)
		if (p == nil) == (err == nil) {
			t.Fatalf("compileRule returned %v and %v", p, err)
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("compile error spans lines: %q", err)
			}
			return
		}
		if p.root == nil || p.needsToken != (r.Rule != "allow") {
			t.Fatalf("program %+v for rule %q", p, r.Rule)
		}
		// Webhooks call out and templates run what the admin wrote (a
		// config, not a request, is trusted): neither is evaluated here.
		if fuzzRuleCallsOut(&r) {
			return
		}
		claims := fuzzRuleMustClaims(t, claimsJSON)
		id := &identity{token: "the.caller.token", claims: claims}
		req := fuzzRuleRequest("/docs/a", "res=docs&n=7", http.Header{"X-User": {"user-1"}}, []byte(`{"owner":"user-1","doc":"docs","items":[1,2]}`))
		h := &Handler{program: p, now: func() time.Time { return ruleClock }}
		fuzzRuleCheckVerdict(t, h.authorize(req, caddyhttp.NewTestReplacer(req), id))
		if !reflect.DeepEqual(claims, fuzzRuleMustClaims(t, claimsJSON)) {
			t.Fatalf("evaluating %s changed the claims", data)
		}
	})
}

// fuzzRuleCallsOut reports whether a rule holds a webhook or a transform.
func fuzzRuleCallsOut(r *Rule) bool {
	if r == nil {
		return false
	}
	if r.Rule == "webhook" || r.Rule == "transform" || fuzzRuleCallsOut(r.Clause) {
		return true
	}
	for _, c := range r.Clauses {
		if fuzzRuleCallsOut(c) {
			return true
		}
	}
	return false
}

// fuzzRuleEvalRules exercise every operator, type, variable source, utils
// function, bracket form and action; editsBody marks those whose verdict
// may rewrite the JSON body.
var fuzzRuleEvalRules = []struct {
	rule      string
	editsBody bool
}{
	{match("string", `"args.auth.role"`, "==", `"admin"`), false},
	{match("string", `"args.auth.sub"`, "!=", `"args.query.headers.X-User"`), false},
	{match("string", `"args.query.params.role"`, "in", `["admin","editor","args.auth.role"]`), false},
	{match("string", `"args.query.params.role"`, "notIn", `"args.auth.roles"`), false},
	{match("string", `"args.auth.perms[args.query.params.res]"`, "==", `"read"`), false},
	{match("string", `"args.auth.perms['docs']"`, "==", `"args.params.perm"`), false},
	{match("string", `"args.auth.roles[0]"`, "==", `"args.params.items[args.query.params.i]"`), false},
	{match("string", `"args.auth.a[args.auth.b[args.query.params.k]]"`, "==", `"args.params.o[\"x.y\"]"`), false},
	{match("string", `"args.query.pathArray.1"`, "==", `"args.params.doc"`), false},
	{match("string", `"args.token"`, "!=", `"{http.request.uri.query.token}"`), false},
	{match("string", `"args.result"`, "==", `"x"`), false},
	{match("number", `"args.auth.age"`, ">=", `18`), false},
	{match("number", `"args.auth.age"`, "<", `"args.params.max"`), false},
	{match("number", `"args.params.n"`, "<=", `"{http.request.uri.query.n}"`), false},
	{match("number", `"args.params.n"`, ">", `1e-3`), false},
	{match("number", `"args.auth.level"`, "in", `[1, 2.5, 1e3, "args.params.n"]`), false},
	{match("number", `"args.params.n"`, "notIn", `"args.auth.ids"`), false},
	{match("number", `"utils.length(args.auth.roles)"`, "==", `"utils.length(args.params.items)"`), false},
	{match("number", `"utils.length(args.query.headers)"`, "!=", `"utils.length(args.query)"`), false},
	{match("number", `"utils.length(args.query.params)"`, ">", `"utils.length(args.params)"`), false},
	{match("bool", `"args.auth.verified"`, "==", `true`), false},
	{match("bool", `"args.params.ok"`, "!=", `"{http.request.uri.query.flag}"`), false},
	{match("bool", `"utils.exists(args.params.owner[args.query.params.k])"`, "==", `"utils.exists(args.auth.perms[args.params.doc])"`), false},
	{match("date", `"args.auth.seen"`, "<", `"utils.now()"`), false},
	{match("date", `"utils.addDuration(args.params.at, '24h')"`, ">=", `"utils.now()"`), false},
	{match("date", `"utils.roundUpDate(args.query.params.d, 'month')"`, "<=", `"utils.addDuration('2026-01-02', '-1h')"`), false},
	{match("date", `"utils.roundUpDate(args.auth.born, 'year')"`, "!=", `"{http.request.uri.query.d}"`), false},
	{`{"rule":"and","error":"outer","clauses":[{"rule":"authenticated"},{"rule":"or","error":"inner","clauses":[{"rule":"deny"},` +
		match("string", `"args.params.owner"`, "==", `"args.auth.sub"`) + `]}]}`, false},
	{`{"rule":"or","clauses":[{"rule":"deny","error":"no"},` + match("number", `"args.params.n"`, "==", `"args.auth.age"`) + `]}`, false},
	{`{"rule":"and","clauses":[
		{"rule":"force","field":"args.query.headers.X-User-Id","value":"args.auth.sub"},
		{"rule":"force","field":"args.query.headers.X-Roles","value":"args.params.roles"},
		{"rule":"force","field":"args.query.params.user","value":"args.auth.roles"},
		{"rule":"force","field":"args.query.headers.X-Via","value":"jwt {http.request.uri.query.via}"},
		{"rule":"remove","fields":["args.query.headers.Authorization","args.query.params.token"]}]}`, false},
	{`{"rule":"and","clauses":[
		{"rule":"force","field":"args.params.md","value":"args.auth.app_metadata"},
		{"rule":"force","field":"args.params.md.plan","value":"free"},
		{"rule":"remove","fields":["args.params.md.tier","args.params.secret"]},
		{"rule":"force","field":"args.params.owner.id","value":"args.params.items"},
		{"rule":"force","field":"args.params.lit","value":{"x":[1,true,null]}}]}`, true},
	{`{"rule":"force","field":"args.params.by","value":"args.auth.roles","clause":` + match("string", `"args.params.owner"`, "!=", `"args.auth.sub"`) + `}`, true},
	{`{"rule":"remove","fields":"args.params.items","clause":` + match("number", `"args.params.n"`, ">", `0`) + `}`, true},
	{`{"rule":"transform","store":"args.t","requestTemplate":"{{ $_ := set .auth \"role\" \"root\" }}{{ $_ := unset .args.auth \"sub\" }}{\"n\": {{ len .args.query.params }}, \"p\": {{ marshalJSON .args.params }}}","clause":` +
		match("number", `"args.t.n"`, ">", `0`) + `}`, false},
	{`{"rule":"transform","outputFormat":"string","requestTemplate":"{{ .auth.sub }}-{{ .args.query.path }}","clause":` +
		match("string", `"args.result"`, "!=", `"args.auth.role"`) + `}`, false},
}

// FuzzRuleEval evaluates the rules above against fuzzed claims, query,
// headers and JSON body: a pass or a *ruleDenied, never a panic; the claims
// (shared by every request with the same token) never change; a rule that
// does not edit the body hands the next handler the body byte for byte; an
// edited body is JSON of its declared length; no header gets a line break.
func FuzzRuleEval(f *testing.F) {
	programs := make([]*program, len(fuzzRuleEvalRules))
	for i, r := range fuzzRuleEvalRules {
		p, err := compileRule(mustRule(f, r.rule))
		if err != nil {
			f.Fatalf("rule %d: %v", i, err)
		}
		programs[i] = p
	}
	f.Add([]byte(testClaims), "res=docs&role=admin&n=7&k=plan&i=0&flag=true&d=2026-01-01", "X-User: user-1\nAuthorization: Bearer x", []byte(`{"owner":"user-1","n":7,"items":["admin",2],"at":"2026-06-15T00:00:00Z","perm":"read"}`))
	f.Fuzz(func(t *testing.T, claimsJSON []byte, query, headers string, body []byte) {
		// Small inputs: the size limits are tested elsewhere, and every
		// byte makes the fuzzer's minimizing slower.
		if len(claimsJSON) > 4096 || len(body) > 4096 || len(query)+len(headers) > 2048 {
			return
		}
		claims, ok := fuzzRuleClaims(claimsJSON)
		if !ok {
			return // the verifier takes only a JSON object as claims
		}
		hdr := fuzzRuleHeaders(headers)
		for i, p := range programs {
			id := &identity{token: "the.caller.token", claims: claims}
			req := fuzzRuleRequest("/docs/a", query, hdr.Clone(), body)
			h := &Handler{program: p, now: func() time.Time { return ruleClock }}
			err := h.authorize(req, caddyhttp.NewTestReplacer(req), id)
			fuzzRuleCheckVerdict(t, err)
			if fresh, _ := fuzzRuleClaims(claimsJSON); !reflect.DeepEqual(claims, fresh) {
				t.Fatalf("rule %d changed the claims", i)
			}
			got, rerr := io.ReadAll(req.Body)
			if rerr != nil {
				t.Fatalf("rule %d: next handler cannot read the body: %v", i, rerr)
			}
			if !bytes.Equal(got, body) {
				if !fuzzRuleEvalRules[i].editsBody {
					t.Fatalf("rule %d altered the body %q into %q", i, body, got)
				}
				if !json.Valid(got) || req.ContentLength != int64(len(got)) || req.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
					t.Fatalf("rule %d: edited body %q, Content-Length %d / %q", i, got, req.ContentLength, req.Header.Get("Content-Length"))
				}
			}
			for name, vals := range req.Header {
				for _, v := range vals {
					if !httpguts.ValidHeaderFieldName(name) || strings.ContainsAny(v, "\r\n\x00") {
						t.Fatalf("rule %d set header %q: %q", i, name, v)
					}
				}
			}
		}
	})
}

// fuzzRuleCheckVerdict: a rule passes (nil) or refuses with a *ruleDenied
// whose message is set; a body within the limit is never a request error.
func fuzzRuleCheckVerdict(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	rd, ok := err.(*ruleDenied)
	if !ok {
		t.Fatalf("refusal is a %T (%v), not a *ruleDenied", err, err)
	}
	if rd.message == "" || rd.unavailable {
		t.Fatalf("refusal %+v", rd)
	}
}

// fuzzRuleClaims decodes claims as the verifier does (decodeClaims): a JSON
// object with exact numbers, nothing after it.
func fuzzRuleClaims(raw []byte) (map[string]any, bool) {
	if !isJSONObject(raw) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var c map[string]any
	if dec.Decode(&c) != nil || dec.More() {
		return nil, false
	}
	return c, true
}

func fuzzRuleMustClaims(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	c, ok := fuzzRuleClaims(raw)
	if !ok {
		t.Fatalf("claims %s", raw)
	}
	return c
}

// fuzzRuleHeaders reads "Name: value" lines, keeping only what net/http's
// server would accept.
func fuzzRuleHeaders(s string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		name, value, ok := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		if ok && httpguts.ValidHeaderFieldName(name) && httpguts.ValidHeaderFieldValue(value) {
			h.Add(name, value)
		}
	}
	return h
}

// fuzzRuleRequest is a POST with a JSON body, as the server would hand it on.
func fuzzRuleRequest(path, query string, h http.Header, body []byte) *http.Request {
	h.Set("Content-Type", "application/json")
	return &http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Path: path, RawQuery: query},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          "example.com",
		RemoteAddr:    "192.0.2.1:1234",
	}
}

// FuzzRuleCaddyfile: the native `rule` grammar fails with an error that
// names the Caddyfile line, never a panic; what it accepts survives the
// trip through JSON (what Caddy loads) and compiles the same either way.
func FuzzRuleCaddyfile(f *testing.F) {
	f.Add("match args.auth.role == admin")
	f.Fuzz(func(t *testing.T, text string) {
		tokens, err := caddyfile.Tokenize([]byte("rule "+text), "fuzz.Caddyfile")
		if err != nil {
			return // the lexer's error (an unclosed quote), before any rule
		}
		d := caddyfile.NewDispenser(tokens)
		d.Next() // "rule"
		r, err := parseRule(d)
		if err != nil {
			if !strings.Contains(err.Error(), ", at fuzz.Caddyfile:") {
				t.Fatalf("error without its line: %q", err)
			}
			return
		}
		if r == nil {
			t.Fatal("no rule and no error")
		}
		adapted, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal %+v: %v", r, err)
		}
		var loaded Rule
		if err := caddy.StrictUnmarshalJSON(adapted, &loaded); err != nil {
			t.Fatalf("adapted rule %s does not load: %v", adapted, err)
		}
		if again, _ := json.Marshal(&loaded); !bytes.Equal(again, adapted) {
			t.Fatalf("adapted rule %s loads as %s", adapted, again)
		}
		_, errNative := compileRule(r)
		_, errLoaded := compileRule(&loaded)
		if (errNative == nil) != (errLoaded == nil) {
			t.Fatalf("native rule compiles with %v, loaded JSON with %v", errNative, errLoaded)
		}
	})
}
