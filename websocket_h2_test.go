package jwtguard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestWebsocketOverHTTP2 opens websockets with HTTP/2 extended CONNECT
// (RFC 8441) through Caddy, over h2c. Go's HTTP/2 server offers extended
// CONNECT only with GODEBUG=http2xconnect=1, read once at start-up, so the
// test runs itself again in a child process with it set (and its own
// ports, as this process's Caddy may still hold ours).
func TestWebsocketOverHTTP2(t *testing.T) {
	if !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		exe, err := os.Executable() // caddytest rewrites os.Args
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestWebsocketOverHTTP2$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "GODEBUG=http2xconnect=1",
			"JWT_GUARD_TEST_PORT_OFFSET="+strconv.Itoa(portOffset+7))
		out, err := cmd.CombinedOutput()
		var report []string
		for line := range strings.SplitSeq(string(out), "\n") {
			if !strings.HasPrefix(line, "{") { // drop Caddy's JSON logs
				report = append(report, line)
			}
		}
		t.Log(strings.Join(report, "\n"))
		if err != nil || !strings.Contains(string(out), "--- PASS: TestWebsocketOverHTTP2") {
			t.Fatalf("child test failed: %v", err)
		}
		return
	}

	backend := newEchoBackend(t)
	// plain is an ordinary HTTP backend: it answers the upgrade reverse_proxy
	// makes of an extended CONNECT with 200 and a large body.
	plainDone := make(chan struct{}, 1)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { plainDone <- struct{}{} }()
		w.Header().Set("X-Backend", "answered")
		chunk := bytes.Repeat([]byte("p"), 64<<10)
		for i := 0; i < 256; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() { plain.CloseClientConnections(); plain.Close() })
	plainSite := fmt.Sprintf("\thandle /big/* {\n\t\tjwt_guard {\n\t\t\tsecret HS256 %s\n\t\t\twebsocket {\n\t\t\t\ttimeout 500ms\n\t\t\t}\n\t\t}\n\t\treverse_proxy %s\n\t}\n",
		testKeys(t).hmac, strings.TrimPrefix(plain.URL, "http://"))
	global := strings.TrimSuffix(globalOptions(), "}") + "\tservers {\n\t\tprotocols h1 h2c\n\t}\n}"
	startCaddyfile(t, fmt.Sprintf("%s\n%s {\n%s\n%s}\n", global, baseURL, wsSite(t, backend.URL), plainSite))
	valid := hs256(t, validClaims())
	forged := hs256(t, claims{"sub": "user-1", "exp": time.Now().Add(-time.Minute).Unix()})

	t.Run("first message accepted", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2ok", nil)
		first := authMessage(valid)
		c.write(t, frame(opText|finBit, first), frame(opText|finBit, []byte("next")))
		c.expectText(t, first)
		c.expectText(t, []byte("next"))
	})
	t.Run("fragmented first message", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2frag", nil)
		first := authMessage(valid)
		c.write(t, frame(opText, first[:20]))
		c.write(t, frame(opContinuation|finBit, first[20:]))
		c.expectText(t, first)
	})
	t.Run("expired token", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2expired?greet=1", nil)
		c.write(t, frame(opText|finBit, authMessage(forged)))
		c.expectClose(t, 4401) // and not the backend's greeting
	})
	t.Run("denied by rule", func(t *testing.T) {
		c := h2Dial(t, "/deny/h2", nil)
		c.write(t, frame(opText|finBit, authMessage(valid)))
		c.expectClose(t, 4403)
	})
	t.Run("no message", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2silent", nil)
		c.expectClose(t, 4408)
	})
	t.Run("oversized", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2big", nil)
		c.write(t, frame(opText|finBit, make([]byte, 4096)))
		c.expectClose(t, 1009)
	})
	t.Run("unmasked", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2unmasked", nil)
		c.write(t, []byte{finBit | opText, 1, 'x'})
		c.expectClose(t, 1002)
	})
	t.Run("token in header", func(t *testing.T) {
		c := h2Dial(t, "/ws/h2header", http.Header{"Authorization": {"Bearer " + valid}})
		c.write(t, frame(opText|finBit, []byte("hi")))
		c.expectText(t, []byte("hi"))
	})
	t.Run("expiry mid-session", func(t *testing.T) {
		exp := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
		c := h2Dial(t, "/ws/h2expiry", nil)
		first := authMessage(hs256(t, claims{"sub": "user-1", "exp": exp.Unix()}))
		c.write(t, frame(opText|finBit, first))
		c.expectText(t, first)
		c.expectClose(t, 4401)
		if time.Now().Before(exp) {
			t.Errorf("closed before exp")
		}
	})
	t.Run("rule on args.params does not read the stream as a body", func(t *testing.T) {
		// The stream is the request body: a rule reading the body would
		// read the websocket itself while judging its first message.
		c := h2Dial(t, "/params/h2", http.Header{"Content-Type": {"application/json"}})
		c.write(t, frame(opText|finBit, authMessage(valid)))
		c.expectClose(t, 4403)
	})
	t.Run("a backend that does not switch cannot hold the proxy forever", func(t *testing.T) {
		// Nobody reads the stream, so no first message is ever judged;
		// what the backend sends is held, and the wait for a verdict that
		// cannot come must end, or each such CONNECT pins a goroutine and
		// a backend connection for good.
		resp := h2Connect(t, "/big/x", nil)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Backend") != "" {
			t.Errorf("status %d, X-Backend %q; want 401 and none of the backend's headers", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
		body, _ := io.ReadAll(resp.Body)
		if bytes.Contains(body, []byte("p")) {
			t.Errorf("the client got %d bytes of the backend's answer", len(body))
		}
		select {
		case <-plainDone:
		case <-time.After(10 * time.Second):
			t.Fatal("the backend's answer is still being held by the proxy")
		}
	})
	t.Run("extended CONNECT to an ordinary route does not skip the token", func(t *testing.T) {
		resp := h2Connect(t, "/plain/", nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || len(body) != 0 {
			t.Errorf("status %d, body %q; want 401 and no body", resp.StatusCode, body)
		}
	})
	if got := backend.messages("/ws/h2expired"); len(got) != 0 {
		t.Errorf("backend received %q from a refused client", got)
	}
}

// h2Dial opens a websocket with an HTTP/2 extended CONNECT over h2c.
func h2Dial(t *testing.T, path string, header http.Header) *rawConn {
	t.Helper()
	resp := h2Connect(t, path, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("extended CONNECT %s: status %d", path, resp.StatusCode)
	}
	return &rawConn{resp.Request.Body.(io.Writer), bufio.NewReader(resp.Body)}
}

// h2Connect sends the extended CONNECT; the request body (a pipe) is what
// the client sends on the stream.
func h2Connect(t *testing.T, path string, header http.Header) *http.Response {
	t.Helper()
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, baseURL+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT %s: %v", path, err)
	}
	t.Cleanup(func() { pw.Close(); resp.Body.Close() })
	resp.Request.Body = pipeBody{pw}
	return resp
}

// pipeBody carries the client's side of the stream back to h2Dial.
type pipeBody struct{ *io.PipeWriter }

func (pipeBody) Read([]byte) (int, error) { return 0, io.EOF }
