package jwtguard

import (
	"bytes"
	"encoding/json"
	"testing"
)

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClaimPlaceholderValues(t *testing.T) {
	c := decodeJSON(t, `{
		"sub": "u1",
		"exp": 1767225600,
		"big": 123456789012345678901234567890,
		"f": 0.1,
		"e": 1E+3,
		"ok": true, "no": false, "nil": null,
		"roles": ["admin", "editor"],
		"mixed": [1, "a", true, null],
		"objs": [{"a": 1}, {"a": 2}],
		"app_metadata": {"plan": "pro", "limits": {"seats": 5}},
		"https://example.com/roles": ["x"],
		"a.b": {"c": "dotted"},
		"a": {"b": {"c": "nested"}},
		"html": "<b>&</b>"
	}`)
	tests := []struct {
		path  string
		want  string
		found bool
	}{
		{"sub", "u1", true},
		{"exp", "1767225600", true},
		{"big", "123456789012345678901234567890", true},
		{"f", "0.1", true},
		{"e", "1E+3", true},
		{"ok", "true", true},
		{"no", "false", true},
		{"nil", "", true},
		{"roles", "admin,editor", true},
		{"roles.0", "admin", true},
		{"roles.1", "editor", true},
		{"roles.2", "", false},
		{"roles.-1", "", false},
		{"roles.+1", "", false},
		{"roles.01", "editor", true},
		{"roles.x", "", false},
		{"mixed", "1,a,true,", true},
		{"objs", `[{"a":1},{"a":2}]`, true},
		{"objs.1.a", "2", true},
		{"app_metadata", `{"limits":{"seats":5},"plan":"pro"}`, true},
		{"app_metadata.plan", "pro", true},
		{"app_metadata.limits.seats", "5", true},
		{"app_metadata.nope", "", false},
		{"https://example.com/roles", "x", true},
		{"https://example.com/roles.0", "x", true},
		{"a.b.c", "dotted", true},
		{"html", "<b>&</b>", true},
		{"sub.x", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			v, found := lookupPath(c, tc.path)
			if found != tc.found {
				t.Fatalf("found = %v, want %v", found, tc.found)
			}
			if got := claimString(v); found && got != tc.want {
				t.Fatalf("claimString = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClaimsProviderAnswersItsNamespace(t *testing.T) {
	p := new(claimsProvider)
	if v, ok := p.replace("http.auth.claims.email"); !ok || v != "" {
		t.Fatalf("before a token: %v %v, want empty and known", v, ok)
	}
	if _, ok := p.replace("http.request.uri"); ok {
		t.Fatal("answered a key outside its namespace")
	}
	p.id.Store(&identity{claims: decodeJSON(t, `{"email":"a@b.c","n":1}`)})
	if v, _ := p.replace("http.auth.claims.email"); v != "a@b.c" {
		t.Fatalf("email = %v", v)
	}
	if v, _ := p.replace("http.auth.claims"); v != `{"email":"a@b.c","n":1}` {
		t.Fatalf("all claims = %v", v)
	}
}
