package jwtguard

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestCaddyfileExample runs Caddyfile.example (ports moved to the test's)
// and walks through what its header comment promises.
func TestCaddyfileExample(t *testing.T) {
	data, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	backendPort := httpPort + 1
	cfg := strings.NewReplacer(
		"http_port 8080", fmt.Sprintf("http_port %d\n\thttps_port %d\n\tskip_install_trust\n\tgrace_period 1ns", httpPort, httpsPort),
		"admin localhost:2019", fmt.Sprintf("admin localhost:%d", adminPort),
		"http://localhost:8080", baseURL,
		"localhost:8081", fmt.Sprintf("localhost:%d", backendPort),
	).Replace(string(data))
	tester := startCaddyfile(t, cfg)

	token := sign(t, algorithms["HS256"].method, []byte(demoSecret), claims{
		"sub": "ada", "name": "Ada", "email": "ada@example.com",
		"roles": []string{"admin", "editor"}, "app_metadata": map[string]any{"plan": "pro"},
		"exp": validClaims()["exp"],
	})

	resp, body := get(t, tester, baseURL+"/?access_token="+token)
	if resp.StatusCode != 200 || !strings.Contains(body, "<h1>Hello Ada</h1>") ||
		!strings.Contains(body, "roles: admin,editor, first role: admin, plan: pro") {
		t.Errorf("signed-in page: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, tester, baseURL+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "Hello guest") {
		t.Errorf("guest page: %d %q", resp.StatusCode, body)
	}

	resp, body = get(t, tester, baseURL+"/api/me", bearer(token), "X-User-Id: mallory")
	var me map[string]string
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &me) != nil ||
		me["user"] != "ada" || me["email"] != "ada@example.com" || me["plan"] != "pro" {
		t.Errorf("api with token: %d %q", resp.StatusCode, body)
	}

	resp, body = get(t, tester, baseURL+"/api/me")
	var fail map[string]any
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="restricted"` ||
		json.Unmarshal([]byte(body), &fail) != nil || fail["error"] != "no token" {
		t.Errorf("api without token: %d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
}
