package jwtguard

import (
	"net/http"
	"strings"
	"testing"
)

func TestSmokeBearerHS256(t *testing.T) {
	k := testKeys(t)
	tester := startCaddy(t, `
	jwt_guard {
		secret HS256 `+k.hmac+`
	}
	respond "hello {http.auth.user.id}"`)
	resp, body := get(t, tester, baseURL+"/", bearer(hs256(t, validClaims())))
	if resp.StatusCode != http.StatusOK || body != "hello user-1" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, tester, baseURL+"/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
