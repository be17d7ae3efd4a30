package jwtguard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// guardSite is one Caddy config with a route per feature, so the whole
// end-to-end table runs against a single config load.
func guardSite(t *testing.T, backend string) string {
	k := testKeys(t)
	other := strings.Repeat("b", 32)
	return fmt.Sprintf(`
	handle /algs/* {
		jwt_guard {
			secret HS256 %[1]s
			secret HS384 %[2]s
			secret HS512 %[3]s
			secret RS256 %[4]s/rsa.pem
			secret RS384 %[4]s/rsa_pkcs1.pem
			secret RS512 %[4]s/rsa_cert.pem
			secret PS256 %[4]s/rsa.pem
			secret PS384 %[4]s/rsa.pem
			secret PS512 %[4]s/rsa.pem
			secret ES256 %[4]s/ec256.pem
			secret ES384 %[4]s/ec384.pem
			secret ES512 %[4]s/ec521.pem
			secret EdDSA %[4]s/ed.pem
			secret RS256_PUBLIC %[4]s/rsa2.pem
		}
		respond "ok {http.auth.user.id}"
	}
	handle /multi/* {
		jwt_guard {
			secret HS256 %[5]s
			secret HS256 %[1]s
		}
		respond "ok"
	}
	handle /iss/* {
		jwt_guard {
			secret HS256 %[1]s
			issuer https://issuer.example
			audience api admin
		}
		respond "ok"
	}
	handle /persecret/* {
		jwt_guard {
			secret HS256 %[5]s {
				issuer https://a.example
				audience app-a
			}
			secret HS256 %[1]s {
				issuer https://b.example
			}
		}
		respond "ok"
	}
	handle /kid/* {
		jwt_guard {
			secret RS256 %[4]s/rsa.pem {
				kid one
			}
			secret RS256 %[4]s/rsa2.pem {
				kid two
			}
		}
		respond "ok"
	}
	handle /leeway0/* {
		jwt_guard {
			secret HS256 %[1]s
			leeway 0s
		}
		respond "ok"
	}
	handle /lifetime/* {
		jwt_guard {
			secret HS256 %[1]s
			max_lifetime 1h
		}
		respond "ok"
	}
	handle /requireexp/* {
		jwt_guard {
			secret HS256 %[1]s
			require_exp
		}
		respond "ok"
	}
	handle /sources/* {
		jwt_guard {
			secret HS256 %[1]s
			from_cookie session
			from_query access_token
		}
		respond "ok {http.auth.user.id}"
	}
	handle /ph/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		respond "plan={http.auth.claims.app_metadata.plan} role0={http.auth.claims.roles.0} roles={http.auth.claims.roles} big={http.auth.claims.big} f={http.auth.claims.f} ok={http.auth.claims.verified} exp={http.auth.claims.exp} obj={http.auth.claims.app_metadata} ns={http.auth.claims.https://example.com/tenant} missing=[{http.auth.claims.nope}] deep={http.auth.claims.orgs.1.name}"
	}
	handle /tpl/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		templates
		header Content-Type text/html
		respond <<HTML
			<p>Hello {{placeholder "http.auth.claims.email"}} ({{placeholder "http.auth.user.id"}})</p>
			HTML 200
	}
	handle /proxy/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		request_header X-Plan {http.auth.claims.app_metadata.plan}
		reverse_proxy %[6]s {
			header_up X-User-Id {http.auth.user.id}
		}
	}
	handle /hdr/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		header X-User {http.auth.user.id} {
			defer
		}
		respond "ok"
	}
	handle /uid/* {
		jwt_guard {
			secret HS256 %[1]s
			user_id_claim email
		}
		respond "{http.auth.user.id}"
	}
	handle /realm/* {
		jwt_guard {
			secret HS256 %[1]s
			realm api
		}
		respond "ok"
	}
	handle /allow/* {
		jwt_guard {
			secret HS256 %[1]s
			rule allow
		}
		respond "hi [{http.auth.user.id}]"
	}
	handle /deny/* {
		jwt_guard {
			secret HS256 %[1]s
			rule deny
		}
		respond "ok"
	}
	`, k.hmac, k.hmac384, k.hmac512, k.dir, other, backend)
}

// TestHandlerEndToEnd runs every issue-2 behaviour through a real Caddy.
func TestHandlerEndToEnd(t *testing.T) {
	k := testKeys(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend user=%s plan=%s", r.Header.Get("X-User-Id"), r.Header.Get("X-Plan"))
	}))
	defer backend.Close()
	errorsSite := fmt.Sprintf(`http://errors.localhost:%d {
	jwt_guard {
		secret HS256 %s
	}
	respond "ok"
	handle_errors {
		respond "custom {err.status_code}: {http.auth.jwt_guard.error}"
	}
}`, httpPort, k.hmac)
	tester := startCaddyfile(t, fmt.Sprintf("%s\n%s {\n%s\n}\n%s\n", globalOptions(), baseURL, guardSite(t, backend.URL), errorsSite))

	errorsURL := fmt.Sprintf("http://errors.localhost:%d/", httpPort)
	now := time.Now()
	ok := validClaims()
	other := []byte(strings.Repeat("b", 32))
	stranger := []byte(strings.Repeat("z", 32))
	with := func(extra claims) claims {
		c := validClaims()
		for name, v := range extra {
			c[name] = v
		}
		return c
	}
	tamper := func(token string) string {
		parts := strings.Split(token, ".")
		payload := strictB64.EncodeToString([]byte(`{"sub":"admin","exp":9999999999}`))
		return parts[0] + "." + payload + "." + parts[2]
	}
	placeholderClaims := claims{
		"sub":                        "user-1",
		"exp":                        json64(now.Add(time.Hour).Unix()),
		"app_metadata":               map[string]any{"plan": "pro", "seats": 5},
		"roles":                      []string{"admin", "editor"},
		"big":                        jsonNumber("12345678901234567890"),
		"f":                          jsonNumber("1.5e3"),
		"verified":                   true,
		"https://example.com/tenant": "acme",
		"orgs":                       []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}},
	}

	tests := []struct {
		name       string
		path       string
		headers    []string
		wantStatus int
		wantBody   string // exact when set
		wantHeader map[string]string
	}{
		// Every algorithm, each key bound to its own algorithm.
		{name: "HS256", path: "/algs/", headers: []string{bearer(hs256(t, ok))}, wantStatus: 200, wantBody: "ok user-1"},
		{name: "HS384", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodHS384, []byte(k.hmac384), ok))}, wantStatus: 200},
		{name: "HS512", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodHS512, []byte(k.hmac512), ok))}, wantStatus: 200},
		{name: "RS256 PKIX", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa, ok))}, wantStatus: 200},
		{name: "RS384 PKCS1", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodRS384, k.rsa, ok))}, wantStatus: 200},
		{name: "RS512 certificate", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodRS512, k.rsa, ok))}, wantStatus: 200},
		{name: "PS256", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodPS256, k.rsa, ok))}, wantStatus: 200},
		{name: "PS384", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodPS384, k.rsa, ok))}, wantStatus: 200},
		{name: "PS512", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodPS512, k.rsa, ok))}, wantStatus: 200},
		{name: "ES256", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodES256, k.ec256, ok))}, wantStatus: 200},
		{name: "ES384", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodES384, k.ec384, ok))}, wantStatus: 200},
		{name: "ES512", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodES512, k.ec521, ok))}, wantStatus: 200},
		{name: "EdDSA", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodEdDSA, k.ed, ok))}, wantStatus: 200},
		{name: "Space Cloud RS256_PUBLIC", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, ok))}, wantStatus: 200},
		{name: "RSA key under ES256 alg refused", path: "/algs/", headers: []string{bearer(forgeAlg(t, sign(t, jwt.SigningMethodRS256, k.rsa, ok), "ES256"))}, wantStatus: 401},
		{name: "HS256 forged with the RSA public key PEM", path: "/algs/", headers: []string{bearer(sign(t, jwt.SigningMethodHS256, readFile(t, k.path("rsa.pem")), ok))}, wantStatus: 401},
		{name: "EC key of the wrong curve", path: "/algs/", headers: []string{bearer(forgeAlg(t, sign(t, jwt.SigningMethodES384, k.ec384, ok), "ES256"))}, wantStatus: 401},

		// Several secrets: any one verifies.
		{name: "second secret verifies", path: "/multi/", headers: []string{bearer(hs256(t, ok))}, wantStatus: 200},
		{name: "first secret verifies", path: "/multi/", headers: []string{bearer(sign(t, jwt.SigningMethodHS256, other, ok))}, wantStatus: 200},
		{name: "wrong secret", path: "/multi/", headers: []string{bearer(sign(t, jwt.SigningMethodHS256, stranger, ok))}, wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted", error="invalid_token", error_description="token signature is invalid"`}},
		{name: "tampered payload", path: "/multi/", headers: []string{bearer(tamper(hs256(t, ok)))}, wantStatus: 401},

		// Time claims with the default 30s leeway.
		{name: "expired", path: "/algs/", headers: []string{bearer(hs256(t, with(claims{"exp": now.Add(-time.Minute).Unix()})))}, wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted", error="invalid_token", error_description="token has expired"`}},
		{name: "expired within leeway", path: "/algs/", headers: []string{bearer(hs256(t, with(claims{"exp": now.Add(-10 * time.Second).Unix()})))}, wantStatus: 200},
		{name: "expired, leeway 0", path: "/leeway0/", headers: []string{bearer(hs256(t, with(claims{"exp": now.Add(-10 * time.Second).Unix()})))}, wantStatus: 401},
		{name: "not yet valid", path: "/algs/", headers: []string{bearer(hs256(t, with(claims{"nbf": now.Add(time.Minute).Unix()})))}, wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted", error="invalid_token", error_description="token is not valid yet"`}},
		{name: "nbf within leeway", path: "/algs/", headers: []string{bearer(hs256(t, with(claims{"nbf": now.Add(10 * time.Second).Unix()})))}, wantStatus: 200},
		{name: "issued in the future", path: "/algs/", headers: []string{bearer(hs256(t, with(claims{"iat": now.Add(time.Minute).Unix()})))}, wantStatus: 401},
		{name: "no exp is fine by default", path: "/algs/", headers: []string{bearer(hs256(t, claims{"sub": "user-1"}))}, wantStatus: 200},
		{name: "require_exp", path: "/requireexp/", headers: []string{bearer(hs256(t, claims{"sub": "user-1"}))}, wantStatus: 401},
		{name: "max_lifetime ok", path: "/lifetime/", headers: []string{bearer(hs256(t, with(claims{"iat": now.Unix(), "exp": now.Add(30 * time.Minute).Unix()})))}, wantStatus: 200},
		{name: "max_lifetime exceeded", path: "/lifetime/", headers: []string{bearer(hs256(t, with(claims{"iat": now.Unix(), "exp": now.Add(3 * time.Hour).Unix()})))}, wantStatus: 401},
		{name: "max_lifetime needs exp", path: "/lifetime/", headers: []string{bearer(hs256(t, claims{"sub": "x"}))}, wantStatus: 401},

		// Issuer and audience, global and per secret.
		{name: "issuer and audience ok", path: "/iss/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://issuer.example", "aud": []string{"web", "api"}})))}, wantStatus: 200},
		{name: "wrong issuer", path: "/iss/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://evil.example", "aud": "api"})))}, wantStatus: 401},
		{name: "wrong audience", path: "/iss/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://issuer.example", "aud": "web"})))}, wantStatus: 401},
		{name: "missing audience", path: "/iss/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://issuer.example"})))}, wantStatus: 401},
		{name: "audience of the wrong type", path: "/iss/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://issuer.example", "aud": 7})))}, wantStatus: 401},
		{name: "per-secret issuer a", path: "/persecret/", headers: []string{bearer(sign(t, jwt.SigningMethodHS256, other, with(claims{"iss": "https://a.example", "aud": "app-a"})))}, wantStatus: 200},
		{name: "per-secret audience a", path: "/persecret/", headers: []string{bearer(sign(t, jwt.SigningMethodHS256, other, with(claims{"iss": "https://a.example", "aud": "app-b"})))}, wantStatus: 401},
		{name: "per-secret issuer b", path: "/persecret/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://b.example"})))}, wantStatus: 200},
		{name: "issuer of the other secret", path: "/persecret/", headers: []string{bearer(hs256(t, with(claims{"iss": "https://a.example", "aud": "app-a"})))}, wantStatus: 401},

		// kid selects one secret.
		{name: "kid one", path: "/kid/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa, ok, "kid", "one"))}, wantStatus: 200},
		{name: "kid two", path: "/kid/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, ok, "kid", "two"))}, wantStatus: 200},
		{name: "kid names the other key", path: "/kid/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, ok, "kid", "one"))}, wantStatus: 401},
		{name: "no kid tries all", path: "/kid/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, ok))}, wantStatus: 200},
		{name: "unknown kid", path: "/kid/", headers: []string{bearer(sign(t, jwt.SigningMethodRS256, k.rsa, ok, "kid", "three"))}, wantStatus: 401},

		// Missing and malformed credentials.
		{name: "missing token", path: "/algs/", wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted"`}},
		{name: "custom realm", path: "/realm/", wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="api"`}},
		{name: "lowercase scheme", path: "/algs/", headers: []string{"Authorization: bearer " + hs256(t, ok)}, wantStatus: 200},
		{name: "basic scheme", path: "/algs/", headers: []string{"Authorization: Basic dXNlcjpwYXNz"}, wantStatus: 400,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted", error="invalid_request", error_description="authorization scheme must be Bearer"`}},
		{name: "bare Bearer", path: "/algs/", headers: []string{"Authorization: Bearer"}, wantStatus: 400},
		{name: "empty Authorization", path: "/algs/", headers: []string{"Authorization: "}, wantStatus: 400},
		{name: "garbage token", path: "/algs/", headers: []string{bearer("not-a-jwt")}, wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted", error="invalid_token", error_description="token is malformed"`}},
		{name: "alg none", path: "/algs/", headers: []string{bearer(noneToken(ok))}, wantStatus: 401},

		// Cookie and query sources.
		{name: "cookie", path: "/sources/", headers: []string{"Cookie: session=" + hs256(t, ok)}, wantStatus: 200, wantBody: "ok user-1"},
		{name: "query", path: "/sources/?access_token=" + hs256(t, ok), wantStatus: 200, wantBody: "ok user-1"},
		{name: "query on a route without it", path: "/algs/?access_token=" + hs256(t, ok), wantStatus: 401},
		{name: "same token twice", path: "/sources/?access_token=" + hs256(t, ok), headers: []string{bearer(hs256(t, ok))}, wantStatus: 200},
		{name: "two different tokens", path: "/sources/?access_token=" + hs256(t, with(claims{"sub": "other"})), headers: []string{bearer(hs256(t, ok))}, wantStatus: 400},

		// Placeholders.
		{name: "claims placeholders", path: "/ph/", headers: []string{bearer(hs256(t, placeholderClaims))}, wantStatus: 200,
			wantBody: fmt.Sprintf(`plan=pro role0=admin roles=admin,editor big=12345678901234567890 f=1.5e3 ok=true exp=%d obj={"plan":"pro","seats":5} ns=acme missing=[] deep=b`, now.Add(time.Hour).Unix())},
		{name: "templates", path: "/tpl/", headers: []string{bearer(hs256(t, with(claims{"email": "ada@example.com"})))}, wantStatus: 200,
			wantBody: "<p>Hello ada@example.com (user-1)</p>"},
		{name: "reverse_proxy header_up and request_header", path: "/proxy/", headers: []string{bearer(hs256(t, placeholderClaims)), "X-User-Id: spoofed"}, wantStatus: 200,
			wantBody: "backend user=user-1 plan=pro"},
		{name: "response header with defer", path: "/hdr/", headers: []string{bearer(hs256(t, ok))}, wantStatus: 200,
			wantHeader: map[string]string{"X-User": "user-1"}},
		{name: "user_id_claim", path: "/uid/", headers: []string{bearer(hs256(t, with(claims{"email": "ada@example.com"})))}, wantStatus: 200, wantBody: "ada@example.com"},

		// Minimal rules.
		{name: "allow without token", path: "/allow/", wantStatus: 200, wantBody: "hi []"},
		{name: "allow with token", path: "/allow/", headers: []string{bearer(hs256(t, ok))}, wantStatus: 200, wantBody: "hi [user-1]"},
		{name: "allow with a bad token", path: "/allow/", headers: []string{bearer("x.y.z")}, wantStatus: 200, wantBody: "hi []"},
		{name: "deny without token is 401", path: "/deny/", wantStatus: 401},
		{name: "deny with token is 403", path: "/deny/", headers: []string{bearer(hs256(t, ok))}, wantStatus: 403,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted", error="insufficient_scope", error_description="access denied by rule"`}},

		// handle_errors renders the failure with the reason placeholder.
		{name: "handle_errors missing", path: errorsURL, wantStatus: 401, wantBody: "custom 401: no token",
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="restricted"`}},
		{name: "handle_errors expired", path: errorsURL, headers: []string{bearer(hs256(t, with(claims{"exp": now.Add(-time.Hour).Unix()})))}, wantStatus: 401,
			wantBody: "custom 401: token has expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.path
			if !strings.HasPrefix(url, "http") {
				url = baseURL + url
			}
			resp, body := get(t, tester, url, tc.headers...)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %q, challenge %q)", resp.StatusCode, tc.wantStatus, body, resp.Header.Get("WWW-Authenticate"))
			}
			if tc.wantBody != "" && strings.TrimSpace(body) != tc.wantBody {
				t.Errorf("body = %q, want %q", body, tc.wantBody)
			}
			for name, want := range tc.wantHeader {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tc.wantStatus >= 400 {
				for _, h := range tc.headers {
					if tok, ok := strings.CutPrefix(h, "Authorization: Bearer "); ok && len(tok) > 8 &&
						(strings.Contains(body, tok) || strings.Contains(resp.Header.Get("WWW-Authenticate"), tok)) {
						t.Errorf("response echoes the token")
					}
				}
			}
		})
	}
}
