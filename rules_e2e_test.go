package jwtguard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestRulesEndToEnd runs rules through a real Caddy: native grammar and
// backtick JSON, placeholders from the request, a webhook and a backend
// on loopback, and handle_errors rendering the refusals.
func TestRulesEndToEnd(t *testing.T) {
	k := testKeys(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "user=%s role=%s spoof=%s q=%s body=%s", r.Header.Get("X-User-Id"), r.Header.Get("X-Role"),
			r.Header.Get("X-Spoof"), r.URL.RawQuery, body)
	}))
	defer backend.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var args struct {
			Auth struct {
				Plan string `json:"plan"`
			} `json:"auth"`
		}
		if r.Header.Get("Authorization") == "" || json.NewDecoder(r.Body).Decode(&args) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if args.Auth.Plan != "pro" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"seats": 5}`)
	}))
	defer hook.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	site := fmt.Sprintf(`
	handle /admin/* {
		jwt_guard {
			secret HS256 %[1]s
			rule match args.auth.role == admin
		}
		respond "admin ok"
	}
	handle /adult/* {
		jwt_guard {
			secret HS256 %[1]s
			rule match args.auth.age >= 18 number
		}
		respond "adult ok"
	}
	handle /docs/* {
		jwt_guard {
			secret HS256 %[1]s
			rule and {
				match args.auth.email_verified == true bool
				or {
					match args.auth.role in ["admin","editor"]
					match args.auth.sub == {query.owner}
				}
				error "not your document"
			}
		}
		respond "doc ok"
	}
	@item path_regexp item ^/items/(\d+)$
	handle @item {
		jwt_guard {
			secret HS256 %[1]s
			rule match {re.item.1} in args.auth.items
		}
		respond "item {re.item.1} ok"
	}
	handle /big/* {
		jwt_guard {
			secret HS256 %[1]s
			rule `+"`"+`{"rule": "match", "type": "number", "f1": "args.auth.big", "eval": "==", "f2": "{query.n}"}`+"`"+`
		}
		respond "big ok"
	}
	handle /hook/* {
		jwt_guard {
			secret HS256 %[1]s
			rule and {
				webhook %[2]s/check
				match args.result.seats >= 3 number
			}
		}
		respond "hook ok"
	}
	handle /hookdown/* {
		jwt_guard {
			secret HS256 %[1]s
			rule webhook %[3]s/check {
				error "authorization service down"
			}
		}
		respond "ok"
	}
	handle /proxy/* {
		jwt_guard {
			secret HS256 %[1]s
			rule and {
				remove args.query.headers.X-Spoof args.query.params.debug
				force args.query.headers.X-User-Id args.auth.sub
				force args.query.headers.X-Role args.auth.role {
					clause match args.auth.role != guest
				}
			}
		}
		reverse_proxy %[4]s
	}
	handle /hookguard/* {
		jwt_guard {
			secret HS256 %[1]s
			rule remove args.query.headers.X-Spoof {
				clause webhook %[3]s/check
			}
		}
		reverse_proxy %[4]s
	}
	handle /owned/* {
		jwt_guard {
			secret HS256 %[1]s
			rule and {
				match args.params.owner == args.auth.sub
				force args.params.checked_by args.auth.sub
			}
		}
		reverse_proxy %[4]s
	}
	handle /guest/* {
		jwt_guard {
			secret HS256 %[1]s
			rule allow
		}
		respond "hello [{http.auth.claims.name}]"
	}
	handle_errors 403 413 503 {
		respond "refused {err.status_code}: {http.auth.jwt_guard.error}"
	}
	`, k.hmac, hook.URL, downURL, backend.URL)
	tester := startCaddy(t, site)

	exp := time.Now().Add(time.Hour).Unix()
	tok := func(c claims) string {
		c["exp"] = exp
		if _, ok := c["sub"]; !ok {
			c["sub"] = "user-1"
		}
		return bearer(hs256(t, c))
	}
	admin := tok(claims{"role": "admin", "age": 30, "email_verified": true})
	editor := tok(claims{"role": "editor", "age": 17, "email_verified": true})
	reader := tok(claims{"role": "reader", "email_verified": true, "items": []string{"7", "9"}})
	unverified := tok(claims{"role": "admin", "email_verified": false})
	stringAge := tok(claims{"role": "admin", "age": "30"})
	big := tok(claims{"big": jsonNumber("12345678901234567890")})
	bigOff := tok(claims{"big": jsonNumber("12345678901234567891")})
	pro := tok(claims{"plan": "pro"})
	free := tok(claims{"plan": "free"})
	guest := tok(claims{"role": "guest", "name": "Ada"})

	tests := []struct {
		name       string
		method     string
		path       string
		headers    []string
		body       string
		wantStatus int
		wantBody   string
		wantAuth   string // WWW-Authenticate
	}{
		{name: "match passes", path: "/admin/", headers: []string{admin}, wantStatus: 200, wantBody: "admin ok"},
		{name: "match refuses with 403", path: "/admin/", headers: []string{editor}, wantStatus: 403, wantBody: "refused 403: access denied by rule",
			wantAuth: `Bearer realm="restricted", error="insufficient_scope", error_description="access denied by rule"`},
		{name: "match without token is 401", path: "/admin/", wantStatus: 401, wantAuth: `Bearer realm="restricted"`},
		{name: "match with a bad token is 401", path: "/admin/", headers: []string{bearer("a.b.c")}, wantStatus: 401},
		{name: "number passes", path: "/adult/", headers: []string{admin}, wantStatus: 200},
		{name: "number refuses", path: "/adult/", headers: []string{editor}, wantStatus: 403},
		{name: "number claim written as a string refuses", path: "/adult/", headers: []string{stringAge}, wantStatus: 403},
		{name: "nested: role in list", path: "/docs/", headers: []string{editor}, wantStatus: 200, wantBody: "doc ok"},
		{name: "nested: owner from the query", path: "/docs/?owner=user-1", headers: []string{reader}, wantStatus: 200},
		{name: "nested: other owner, custom error", path: "/docs/?owner=user-2", headers: []string{reader}, wantStatus: 403, wantBody: "refused 403: not your document",
			wantAuth: `Bearer realm="restricted", error="insufficient_scope", error_description="not your document"`},
		{name: "nested: unverified", path: "/docs/", headers: []string{unverified}, wantStatus: 403, wantBody: "refused 403: not your document"},
		{name: "path regexp capture in claim list", path: "/items/9", headers: []string{reader}, wantStatus: 200, wantBody: "item 9 ok"},
		{name: "path regexp capture not in list", path: "/items/8", headers: []string{reader}, wantStatus: 403},
		{name: "backtick JSON rule, big integer", path: "/big/?n=12345678901234567890", headers: []string{big}, wantStatus: 200},
		{name: "backtick JSON rule, big integer off by one", path: "/big/?n=12345678901234567890", headers: []string{bigOff}, wantStatus: 403},
		{name: "webhook passes and stores", path: "/hook/", headers: []string{pro}, wantStatus: 200, wantBody: "hook ok"},
		{name: "webhook refuses", path: "/hook/", headers: []string{free}, wantStatus: 403},
		{name: "webhook down is 503", path: "/hookdown/", headers: []string{pro}, wantStatus: 503, wantBody: "refused 503: authorization service down"},
		{name: "force and remove headers for the backend", path: "/proxy/?debug=1&keep=1", headers: []string{admin, "X-User-Id: spoofed", "X-Spoof: 1"}, wantStatus: 200,
			wantBody: "user=user-1 role=admin spoof= q=keep=1 body="},
		{name: "force skipped by its clause", path: "/proxy/", headers: []string{guest, "X-Role: root"}, wantStatus: 200,
			wantBody: "user=user-1 role=root spoof= q= body="},
		{name: "a clause whose webhook is down does not skip the action", path: "/hookguard/", headers: []string{admin, "X-Spoof: 1"}, wantStatus: 503},
		{name: "body owner passes and the body is edited", method: "POST", path: "/owned/", headers: []string{admin, "Content-Type: application/json"},
			body: `{"owner":"user-1","n":1}`, wantStatus: 200, wantBody: `user= role= spoof= q= body={"checked_by":"user-1","n":1,"owner":"user-1"}`},
		{name: "body of someone else", method: "POST", path: "/owned/", headers: []string{admin, "Content-Type: application/json"},
			body: `{"owner":"user-2"}`, wantStatus: 403},
		{name: "body over the limit is 413", method: "POST", path: "/owned/", headers: []string{admin, "Content-Type: application/json"},
			body: `{"owner":"` + strings.Repeat("a", maxParamsBody) + `"}`, wantStatus: 413, wantBody: "refused 413: request body is larger than 1048576 bytes"},
		{name: "allow greets a guest", path: "/guest/", wantStatus: 200, wantBody: "hello []"},
		{name: "allow reads a valid token", path: "/guest/", headers: []string{guest}, wantStatus: 200, wantBody: "hello [Ada]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, baseURL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.headers {
				name, value, _ := strings.Cut(h, ":")
				req.Header.Add(name, strings.TrimSpace(value))
			}
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body := strings.TrimSpace(string(b))
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("body = %q, want %q", body, tc.wantBody)
			}
			if tc.wantAuth != "" && resp.Header.Get("WWW-Authenticate") != tc.wantAuth {
				t.Errorf("WWW-Authenticate = %q, want %q", resp.Header.Get("WWW-Authenticate"), tc.wantAuth)
			}
		})
	}
}

// TestRuleValidationThroughCaddy: a bad rule fails the config load.
func TestRuleValidationThroughCaddy(t *testing.T) {
	k := testKeys(t)
	tests := []struct{ name, site, want string }{
		{"operator for the wrong type", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule match args.auth.age >= 18\n}", `operator ">=" does not apply to type string`},
		{"not a number", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule match args.auth.age >= eighteen number\n}", `"eighteen" is not a number`},
		{"empty and", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule and\n}", "and needs a block with at least one clause"},
		{"unknown clause", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule or {\n  allow\n  maybe\n }\n}", `unknown rule "maybe"`},
		{"unknown option", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule deny {\n  reason x\n }\n}", "unrecognized option 'reason' in a deny rule"},
		{"database rule in JSON", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule `{\"rule\":\"query\",\"db\":\"pg\"}`\n}", "an HTTP gateway has no documents"},
		{"unknown JSON key", "jwt_guard {\n secret HS256 " + k.hmac + "\n rule `{\"rule\":\"allow\",\"colour\":1}`\n}", `unknown field "colour"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := adaptError(t, tc.site)
			if got == "" {
				// Errors found when the rule compiles show at provision.
				got = provisionError(t, tc.site)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

// provisionError adapts a site body and provisions its jwt_guard handler,
// as `caddy validate` does, returning the error.
func provisionError(t *testing.T, site string) string {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+site+"\n}\n"), nil)
	if err != nil {
		return err.Error()
	}
	var find func(v any) map[string]any
	find = func(v any) map[string]any {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "jwt_guard" {
				return x
			}
			for _, e := range x {
				if m := find(e); m != nil {
					return m
				}
			}
		case []any:
			for _, e := range x {
				if m := find(e); m != nil {
					return m
				}
			}
		}
		return nil
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	hj := find(cfg)
	if hj == nil {
		t.Fatalf("no jwt_guard handler in %s", out)
	}
	delete(hj, "handler")
	raw, _ := json.Marshal(hj)
	var h Handler
	if err := caddy.StrictUnmarshalJSON(raw, &h); err != nil {
		return err.Error()
	}
	ctx, cancel := newTestContext()
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		return err.Error()
	}
	return ""
}
