package jwtguard

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseRuleText parses `rule ...` as the jwt_guard block would.
func parseRuleText(t *testing.T, text string) (*Rule, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(text)
	d.Next() // "rule"
	return parseRule(d)
}

func TestNativeRuleMatchesJSONForm(t *testing.T) {
	tests := []struct{ name, native, json string }{
		{"keyword", "rule authenticated", `{"rule":"authenticated"}`},
		{"string match", "rule match args.auth.role == admin", `{"rule":"match","eval":"==","type":"string","f1":"args.auth.role","f2":"admin"}`},
		{"quoted value with spaces", `rule match args.auth.name != "Ada Lovelace"`, `{"rule":"match","eval":"!=","type":"string","f1":"args.auth.name","f2":"Ada Lovelace"}`},
		{"a value that names a type", "rule match args.auth.kind == date", `{"rule":"match","eval":"==","type":"string","f1":"args.auth.kind","f2":"date"}`},
		{"number", "rule match args.auth.age >= 18 number", `{"rule":"match","eval":">=","type":"number","f1":"args.auth.age","f2":18}`},
		{"number variable", "rule match args.auth.age < args.auth.limit number", `{"rule":"match","eval":"<","type":"number","f1":"args.auth.age","f2":"args.auth.limit"}`},
		{"bool", "rule match args.auth.email_verified == true bool", `{"rule":"match","eval":"==","type":"bool","f1":"args.auth.email_verified","f2":true}`},
		{"JSON list", `rule match args.auth.role in ["admin","editor"]`, `{"rule":"match","eval":"in","type":"string","f1":"args.auth.role","f2":["admin","editor"]}`},
		{"bare list", `rule match args.auth.level notin [1, 2] number`, `{"rule":"match","eval":"notIn","type":"number","f1":"args.auth.level","f2":[1,2]}`},
		{"placeholder", "rule match args.auth.sub == {http.request.uri.query.owner}", `{"rule":"match","eval":"==","type":"string","f1":"args.auth.sub","f2":"{http.request.uri.query.owner}"}`},
		{"and/or with errors", "rule and {\n match args.auth.a == x\n or {\n  deny\n  allow\n  error inner\n }\n error outer\n name both\n}",
			`{"rule":"and","clauses":[{"rule":"match","eval":"==","type":"string","f1":"args.auth.a","f2":"x"},{"rule":"or","clauses":[{"rule":"deny"},{"rule":"allow"}],"error":"inner"}],"error":"outer","name":"both"}`},
		{"JSON clause inside native", "rule or {\n `{\"rule\":\"deny\",\"error\":\"x\"}`\n authenticated\n}", `{"rule":"or","clauses":[{"rule":"deny","error":"x"},{"rule":"authenticated"}]}`},
		{"force with clause", "rule force args.query.headers.X-User-Id args.auth.sub {\n clause match args.auth.role != guest\n}",
			`{"rule":"force","field":"args.query.headers.X-User-Id","value":"args.auth.sub","clause":{"rule":"match","eval":"!=","type":"string","f1":"args.auth.role","f2":"guest"}}`},
		{"remove", "rule remove args.query.headers.X-A args.params.b", `{"rule":"remove","fields":["args.query.headers.X-A","args.params.b"]}`},
		{"webhook", "rule webhook https://h.example/c {\n store args.h\n outputFormat string\n requestTemplate \"{{.auth.sub}}\"\n timeout 1s\n}",
			`{"rule":"webhook","url":"https://h.example/c","store":"args.h","outputFormat":"string","requestTemplate":"{{.auth.sub}}","timeout":1000000000}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRuleText(t, tc.native)
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(mustRule(t, tc.json))
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("native form adapts to\n %s\nwant\n %s", gotJSON, wantJSON)
			}
			if _, err := compileRule(got); err != nil {
				t.Errorf("does not compile: %v", err)
			}
		})
	}
}

func TestNativeRuleErrorsNameTheLine(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown kind", "rule sometimes", `unknown rule "sometimes"`},
		{"match too short", "rule match args.auth.role ==", "match takes <f1> <operator> <f2> [type]"},
		{"two values", "rule match args.auth.name == Ada Lovelace", "match takes one value after =="},
		{"operator for the type", "rule match args.auth.age >= 18", `operator ">=" does not apply to type string`},
		{"not a number", "rule match args.auth.age >= x18 number", `"x18" is not a number`},
		{"not a bool", "rule match args.auth.v == yes bool", `"yes" is not true or false`},
		{"unclosed list", "rule match args.auth.r in [a, b", "the list must end with ]"},
		{"list with ==", "rule match args.auth.r == [a]", "compare with in or notIn"},
		{"and without block", "rule and", "and needs a block"},
		{"keyword with arguments", "rule deny now", "deny takes no arguments"},
		{"unknown option", "rule match args.auth.a == b {\n reason x\n}", "unrecognized option 'reason' in a match rule"},
		{"nested error on its line", "rule and {\n allow\n or {\n  allow\n  match args.auth.a < b\n }\n}", "Testfile:5"},
		{"force arity", "rule force args.query.headers.X-A", "force takes a field and a value"},
		{"remove arity", "rule remove", "remove takes the fields"},
		{"webhook without URL", "rule webhook", "webhook needs a URL"},
		{"two clauses", "rule force args.query.headers.X-A b {\n clause allow\n clause deny\n}", "clause already specified"},
		{"transform incomplete", "rule transform {\n store args.x\n}", "transform needs requestTemplate and clause"},
		{"bad JSON", "rule `{\"rule\": }`", "invalid JSON rule"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRuleText(t, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}
