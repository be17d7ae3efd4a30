package jwtguard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccessLogShowsUserID: {http.auth.user.id} becomes the access log's
// user_id, claims can be logged with log_append, and the token itself never
// reaches the log (Caddy redacts Authorization).
func TestAccessLogShowsUserID(t *testing.T) {
	k := testKeys(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	tester := startCaddy(t, fmt.Sprintf(`
	log {
		output file %s
		format json
	}
	log_append plan {http.auth.claims.app_metadata.plan}
	jwt_guard {
		secret HS256 %s
	}
	respond "ok"`, logFile, k.hmac))
	token := hs256(t, claims{"sub": "ada", "app_metadata": map[string]any{"plan": "pro"}, "exp": time.Now().Add(time.Hour).Unix()})
	if resp, _ := get(t, tester, baseURL+"/", bearer(token)); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The access log is written after the response; wait for the line.
	var logged string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logFile)
		if logged = string(b); strings.Contains(logged, `"user_id"`) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{`"user_id":"ada"`, `"plan":"pro"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("access log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, token) || strings.Contains(logged, k.hmac) {
		t.Errorf("access log contains the token or the secret:\n%s", logged)
	}
}
