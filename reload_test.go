package jwtguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestConfigReloadUnderLoad reloads the config through Caddy's admin API
// (POST /load) while clients keep sending good and bad tokens: every
// request must get its usual answer (200 or 401: no connection error, no
// 5xx), and once the load stops the goroutine count must come back, with no
// goroutine left in this module's code.
//
// One failure is Caddy's and the kernel's, not a dropped request: each
// config binds a fresh SO_REUSEPORT socket and closes the old one, and
// Linux resets the connections still waiting in the old socket's accept
// queue. Such a connection is new, was never answered, and never reached
// an HTTP handler; the client retries it (as browsers do), at most
// three times, as an immediate retry can land in the same handover, and a
// retry must succeed. Everything else fails the test.
func TestConfigReloadUnderLoad(t *testing.T) {
	k := testKeys(t)
	// A real grace period: in-flight requests finish on the old config.
	global := strings.Replace(globalOptions(), "grace_period 1ns", "grace_period 5s", 1)
	configs := []string{
		fmt.Sprintf("jwt_guard {\n\t\tsecret HS256 %s\n\t}", k.hmac),
		fmt.Sprintf("jwt_guard {\n\t\tsecret RS256 %s\n\t\tsecret HS256 %s\n\t\trealm reloaded\n\t}", k.path("rsa.pem"), k.hmac),
		fmt.Sprintf("jwt_guard {\n\t\tsecret HS256 %s\n\t\ttoken_cache_size -1\n\t\tleeway 1m\n\t}", k.hmac),
	}
	caddyfile := func(i int) string {
		return fmt.Sprintf("%s\n%s {\n\t%s\n\trespond \"ok\"\n}\n", global, baseURL, configs[i%len(configs)])
	}
	tester := startCaddyfile(t, caddyfile(0))
	good := hs256(t, validClaims())
	bad := hs256(t, claims{"sub": "u", "exp": time.Now().Add(-time.Hour).Unix()})

	var handoverResets atomic.Int64
	send := func(token string) (int, error) {
		for attempt := 0; ; attempt++ {
			var reused, answered atomic.Bool
			trace := &httptrace.ClientTrace{
				GotConn:              func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
				GotFirstResponseByte: func() { answered.Store(true) },
			}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, baseURL+"/", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := tester.Client.Do(req)
			if err != nil {
				// A failed dial never reached a handler, even when the
				// transport made it to replace a reused connection the
				// old server had closed.
				var op *net.OpError
				dialed := errors.As(err, &op) && op.Op == "dial"
				if attempt < 3 && (dialed || !reused.Load() && !answered.Load()) && isConnReset(err) {
					handoverResets.Add(1)
					continue
				}
				return 0, err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, err
		}
	}
	// Warm up, then take the baseline with no client connection open.
	for range 3 {
		send(good)
	}
	tester.Client.CloseIdleConnections()
	baseline := settledGoroutines()

	const workers, reloads = 3, 8
	var (
		done     atomic.Int64
		failures sync.Map // description -> count, for the report
		nFailed  atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				token, want := good, 200
				if (i+w)%2 == 1 {
					token, want = bad, 401
				}
				status, err := send(token)
				if err != nil || status != want {
					nFailed.Add(1)
					failures.LoadOrStore(fmt.Sprintf("want %d, got %d (%v)", want, status, err), true)
				}
				done.Add(1)
			}
		}()
	}
	// Each reload waits until the clients have been served under the
	// previous config: a condition, not a sleep.
	waitFor := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for done.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("clients stalled at %d requests", done.Load())
			}
			runtime.Gosched()
		}
	}
	// Caddy restarts its admin endpoint on every load too: a fresh
	// connection per reload, and a load (idempotent) retried if the old
	// endpoint reset the connection.
	admin := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	defer admin.CloseIdleConnections()
	load := func(body string) (*http.Response, error) {
		for attempt := 0; ; attempt++ {
			resp, err := admin.Post(fmt.Sprintf("http://localhost:%d/load", adminPort), "text/caddyfile", strings.NewReader(body))
			if err != nil && attempt < 2 && isConnReset(err) {
				continue
			}
			return resp, err
		}
	}
	for i := 1; i <= reloads; i++ {
		waitFor(done.Load() + 30)
		resp, err := load(caddyfile(i))
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload %d: %d %s", i, resp.StatusCode, body)
		}
	}
	waitFor(done.Load() + 30)
	close(stop)
	wg.Wait()

	failures.Range(func(k, _ any) bool {
		t.Errorf("during reloads: %s", k)
		return true
	})
	t.Logf("%d requests from %d clients across %d reloads, %d unexpected; %d new connections reset by the listener handover and retried",
		done.Load(), workers, reloads, nFailed.Load(), handoverResets.Load())

	tester.Client.CloseIdleConnections()
	// The last config must still answer as configured.
	if status, err := send(good); err != nil || status != 200 {
		t.Fatalf("after the reloads: %d %v", status, err)
	}
	tester.Client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	n := settledGoroutines()
	for n > baseline+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling a count; nothing to wait on
		n = settledGoroutines()
	}
	if n > baseline+2 {
		t.Errorf("goroutines: %d after the reloads, %d before\n%s", n, baseline, goroutineDump())
	}
	if stacks := moduleGoroutines(); len(stacks) > 0 {
		t.Errorf("goroutines left in jwt_guard code:\n%s", strings.Join(stacks, "\n\n"))
	}
}

// isConnReset: the peer reset or closed a connection before answering.
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func settledGoroutines() int {
	runtime.GC()
	return runtime.NumGoroutine()
}

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// moduleGoroutines are the goroutines running this module's non-test code.
func moduleGoroutines() []string {
	var out []string
	for _, g := range strings.Split(goroutineDump(), "\n\n") {
		if strings.Contains(g, "caddy-jwt-guard.") && !strings.Contains(g, "_test.go") {
			out = append(out, g)
		}
	}
	return out
}
