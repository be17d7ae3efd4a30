package jwtguard

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	gws "github.com/gorilla/websocket"
)

// echoBackend is a real websocket server (coder/websocket, compression
// with context takeover offered) that echoes every message and records
// what it received. With ?greet=1 it first sends "welcome".
type echoBackend struct {
	*httptest.Server
	mu       sync.Mutex
	received map[string][][]byte // by request path
	open     map[string]int      // connections still open, by path
}

func newEchoBackend(t testing.TB) *echoBackend {
	b := &echoBackend{received: map[string][][]byte{}, open: map[string]int{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := cws.Accept(w, r, &cws.AcceptOptions{CompressionMode: cws.CompressionContextTakeover})
		if err != nil {
			return
		}
		defer c.CloseNow()
		b.mu.Lock()
		b.open[r.URL.Path]++
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.open[r.URL.Path]--
			b.mu.Unlock()
		}()
		c.SetReadLimit(1 << 20)
		ctx := r.Context()
		if r.URL.Query().Get("greet") == "1" {
			if c.Write(ctx, cws.MessageText, []byte("welcome")) != nil {
				return
			}
		}
		if r.URL.Query().Get("bye") == "1" {
			_ = c.Write(ctx, cws.MessageText, []byte("bye"))
			return // the deferred CloseNow drops the TCP connection
		}
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			b.mu.Lock()
			b.received[r.URL.Path] = append(b.received[r.URL.Path], data)
			b.mu.Unlock()
			if c.Write(ctx, typ, data) != nil {
				return
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// waitClosed waits until the backend has seen its connections on path
// closed.
func (b *echoBackend) waitClosed(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		n := b.open[path]
		b.mu.Unlock()
		if n == 0 {
			return
		}
	}
	t.Fatalf("backend connection on %s still open", path)
}

func (b *echoBackend) messages(path string) [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received[path]
}

func wsSite(t *testing.T, backend string) string {
	k := testKeys(t)
	return fmt.Sprintf(`
	handle /ws/* {
		jwt_guard {
			secret HS256 %[1]s
			leeway 0s
			websocket {
				timeout 500ms
				max_message 1KiB
			}
		}
		reverse_proxy %[2]s
	}
	handle /graphql/* {
		jwt_guard {
			secret HS256 %[1]s
			websocket {
				token_path payload.token
			}
		}
		reverse_proxy %[2]s
	}
	handle /noexpiry/* {
		jwt_guard {
			secret HS256 %[1]s
			leeway 0s
			websocket {
				close_on_expiry off
			}
		}
		reverse_proxy %[2]s
	}
	handle /deny/* {
		jwt_guard {
			secret HS256 %[1]s
			rule deny
		}
		reverse_proxy %[2]s
	}
	handle /open/* {
		jwt_guard {
			secret HS256 %[1]s
			rule allow
		}
		reverse_proxy %[2]s
	}
	handle /webhookdown/* {
		jwt_guard {
			secret HS256 %[1]s
			rule webhook http://127.0.0.1:1/check
		}
		reverse_proxy %[2]s
	}
	handle /plain/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		respond "members only"
	}
	handle /params/* {
		jwt_guard {
			secret HS256 %[1]s
			rule match args.params.room == lobby
		}
		reverse_proxy %[2]s
	}
`, k.hmac, strings.TrimPrefix(backend, "http://"))
}

var wsBase = strings.Replace(baseURL, "http://", "ws://", 1)

func authMessage(token string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "subscribe", "id": "1", "data": map[string]any{"token": token, "db": "mydb"}})
	return b
}

// gorillaDial opens a websocket through Caddy with gorilla/websocket.
func gorillaDial(t *testing.T, path string, header http.Header) *gws.Conn {
	t.Helper()
	c, resp, err := gws.DefaultDialer.Dial(wsBase+path, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closeCode reads until the connection ends and returns the close frame's
// code and reason.
func gorillaCloseCode(t *testing.T, c *gws.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := c.ReadMessage()
		if err == nil {
			t.Fatalf("got message %q; want the connection closed", msg)
		}
		var ce *gws.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func gorillaEcho(t *testing.T, c *gws.Conn, want []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading echo of %.40q: %v", want, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo = %.60q, want %.60q", got, want)
	}
}

func TestWebsocketFirstMessageAuth(t *testing.T) {
	backend := newEchoBackend(t)
	tester := startCaddy(t, wsSite(t, backend.URL))
	valid := hs256(t, validClaims())
	expired := hs256(t, claims{"sub": "user-1", "exp": time.Now().Add(-time.Hour).Unix()})
	forged := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), validClaims())

	refusals := []struct {
		name       string
		path       string
		first      []byte
		wantCode   int
		wantReason string
	}{
		{"invalid signature", "/ws/invalid", authMessage(forged), 4401, "token signature is invalid"},
		{"expired token", "/ws/expired", authMessage(expired), 4401, "token has expired"},
		{"malformed token", "/ws/malformed", authMessage("not-a-jwt"), 4401, "token is malformed"},
		{"no token in message", "/ws/notoken", []byte(`{"type":"subscribe","data":{}}`), 4401, "no token at data.token in the first message"},
		{"message not JSON", "/ws/notjson", []byte(`hello`), 4401, "no token at data.token in the first message"},
		{"token not a string", "/ws/number", []byte(`{"data":{"token":42}}`), 4401, "no token at data.token in the first message"},
		{"denied by rule", "/deny/x", authMessage(valid), 4403, "access denied by rule"},
		{"rule webhook unavailable", "/webhookdown/x", authMessage(valid), 1013, "access denied by rule"},
		{"oversized", "/ws/big", authMessage(valid + `", "pad": "` + strings.Repeat("p", 2048)), 1009, "first message is too large"},
		{"token at another path", "/graphql/x", authMessage(valid), 4401, "no token at payload.token in the first message"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			c := gorillaDial(t, tc.path, nil)
			if err := c.WriteMessage(gws.TextMessage, tc.first); err != nil {
				t.Fatal(err)
			}
			code, reason := gorillaCloseCode(t, c)
			if code != tc.wantCode || reason != tc.wantReason {
				t.Errorf("close = %d %q, want %d %q", code, reason, tc.wantCode, tc.wantReason)
			}
			if got := backend.messages(tc.path); len(got) != 0 {
				t.Errorf("backend received %d messages from a refused client", len(got))
			}
			backend.waitClosed(t, tc.path)
		})
	}

	t.Run("valid token then messages", func(t *testing.T) {
		c := gorillaDial(t, "/ws/valid", nil)
		first := authMessage(valid)
		for _, m := range [][]byte{first, []byte("hello"), []byte("world")} {
			if err := c.WriteMessage(gws.TextMessage, m); err != nil {
				t.Fatal(err)
			}
			gorillaEcho(t, c, m)
		}
		if got := backend.messages("/ws/valid"); len(got) != 3 || !bytes.Equal(got[0], first) {
			t.Errorf("backend received %q; want the first message unchanged, then two more", got)
		}
	})

	t.Run("graphql-ws token path", func(t *testing.T) {
		c := gorillaDial(t, "/graphql/ok", nil)
		init := []byte(`{"type":"connection_init","payload":{"token":"` + valid + `"}}`)
		if err := c.WriteMessage(gws.TextMessage, init); err != nil {
			t.Fatal(err)
		}
		gorillaEcho(t, c, init)
	})

	t.Run("no message within the timeout", func(t *testing.T) {
		c := gorillaDial(t, "/ws/silent", nil)
		start := time.Now()
		code, reason := gorillaCloseCode(t, c)
		if code != 4408 || reason != "no first message within 500ms" {
			t.Errorf("close = %d %q, want 4408", code, reason)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closed after %s; the timeout is 500ms", d)
		}
	})

	t.Run("token in header needs no message", func(t *testing.T) {
		c := gorillaDial(t, "/ws/header", http.Header{"Authorization": {"Bearer " + valid}})
		if err := c.WriteMessage(gws.TextMessage, []byte("no token here")); err != nil {
			t.Fatal(err)
		}
		gorillaEcho(t, c, []byte("no token here"))
	})

	t.Run("bad token in header is refused before the handshake", func(t *testing.T) {
		_, resp, err := gws.DefaultDialer.Dial(wsBase+"/ws/badheader", http.Header{"Authorization": {"Bearer " + forged}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial = %v, %v; want 401", resp, err)
		}
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("allow rule waits for nothing", func(t *testing.T) {
		c := gorillaDial(t, "/open/x", nil)
		if err := c.WriteMessage(gws.TextMessage, []byte("guest")); err != nil {
			t.Fatal(err)
		}
		gorillaEcho(t, c, []byte("guest"))
	})

	t.Run("coder client with compression", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := cws.Dial(ctx, wsBase+"/ws/coder", &cws.DialOptions{
			CompressionMode: cws.CompressionContextTakeover, CompressionThreshold: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("compression not negotiated: %q", ext)
		}
		for _, m := range [][]byte{authMessage(valid), []byte(strings.Repeat("compress me ", 50))} {
			if err := c.Write(ctx, cws.MessageText, m); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("echo = %.40q, %v", got, err)
			}
		}
	})

	t.Run("coder client refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := cws.Dial(ctx, wsBase+"/deny/coder", &cws.DialOptions{CompressionMode: cws.CompressionContextTakeover, CompressionThreshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, cws.MessageText, authMessage(valid)); err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Read(ctx)
		if got := cws.CloseStatus(err); got != 4403 {
			t.Errorf("close status = %d (%v), want 4403", got, err)
		}
	})

	t.Run("upgrade headers on an ordinary route do not skip the token", func(t *testing.T) {
		resp, body := get(t, tester, baseURL+"/plain/", "Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "members only") {
			t.Errorf("status %d, body %q; want 401 and no body", resp.StatusCode, body)
		}
		if resp.Header.Get("WWW-Authenticate") != `Bearer realm="restricted"` {
			t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
		}
	})
}

func TestWebsocketRawFrames(t *testing.T) {
	backend := newEchoBackend(t)
	startCaddy(t, wsSite(t, backend.URL))
	valid := hs256(t, validClaims())
	forged := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), validClaims())

	t.Run("fragmented first message", func(t *testing.T) {
		c := rawDial(t, "/ws/frag", false)
		first := authMessage(valid)
		third := len(first) / 3
		c.write(t,
			frame(opText, first[:third]),
			frame(opContinuation, first[third:2*third]),
			frame(opContinuation|finBit, first[2*third:]))
		c.expectText(t, first)
	})

	t.Run("ping before the first message", func(t *testing.T) {
		c := rawDial(t, "/ws/ping", false)
		first := authMessage(valid)
		c.write(t, frame(opPing|finBit, []byte("are you there")), frame(opText|finBit, first))
		// The backend's pong is held until the first message is accepted.
		op, payload := c.read(t)
		if op != opPong || string(payload) != "are you there" {
			t.Fatalf("got opcode %d %q; want the backend's pong", op, payload)
		}
		c.expectText(t, first)
	})

	t.Run("ping inside a fragmented first message", func(t *testing.T) {
		c := rawDial(t, "/ws/pingfrag", false)
		first := authMessage(valid)
		c.write(t, frame(opText, first[:10]), frame(opPing|finBit, []byte("p")), frame(opContinuation|finBit, first[10:]))
		op, _ := c.read(t)
		if op != opPong {
			t.Fatalf("opcode %d, want pong", op)
		}
		c.expectText(t, first)
	})

	t.Run("first and next messages in one TCP write", func(t *testing.T) {
		c := rawDial(t, "/ws/onewrite", false)
		msgs := [][]byte{authMessage(valid), []byte("two"), []byte("three"), bytes.Repeat([]byte("4"), 300)}
		var all []byte
		for _, m := range msgs {
			all = append(all, frame(opText|finBit, m)...)
		}
		c.write(t, all) // one Write call
		for _, m := range msgs {
			c.expectText(t, m)
		}
	})

	t.Run("handshake and first message in one TCP write", func(t *testing.T) {
		// The server reads the first message with the request: the bytes it
		// buffered must still be authenticated and forwarded.
		first := authMessage(valid)
		c := rawDialWith(t, "/ws/buffered", false, frame(opText|finBit, first))
		c.expectText(t, first)
	})

	t.Run("compressed first message", func(t *testing.T) {
		c := rawDial(t, "/ws/deflate", true)
		first := authMessage(valid)
		c.write(t, frame(opText|finBit|rsv1Bit, deflateMessage(t, first)), frame(opText|finBit, []byte("plain")))
		c.expectText(t, first)
		c.expectText(t, []byte("plain"))
	})

	t.Run("compressed first message with a bad token", func(t *testing.T) {
		c := rawDial(t, "/ws/deflatebad", true)
		c.write(t, frame(opText|finBit|rsv1Bit, deflateMessage(t, authMessage(forged))))
		c.expectClose(t, 4401)
	})

	t.Run("compression bomb", func(t *testing.T) {
		c := rawDial(t, "/ws/bomb", true)
		c.write(t, frame(opText|finBit|rsv1Bit, deflateMessage(t, bytes.Repeat([]byte("a"), 100_000))))
		c.expectClose(t, 1009)
	})

	protocol := []struct {
		name    string
		deflate bool
		frames  [][]byte
	}{
		{"unmasked frame", false, [][]byte{{finBit | opText, 2, 'h', 'i'}}},
		{"reserved opcode", false, [][]byte{frame(0x3|finBit, []byte("x"))}},
		{"RSV2 set", false, [][]byte{frame(opText|finBit|rsv2Bit, []byte("x"))}},
		{"RSV1 without deflate", false, [][]byte{frame(opText|finBit|rsv1Bit, []byte("x"))}},
		{"continuation first", false, [][]byte{frame(opContinuation|finBit, []byte("x"))}},
		{"fragmented ping", false, [][]byte{frame(opPing, []byte("x"))}},
		{"invalid compressed data", true, [][]byte{frame(opText|finBit|rsv1Bit, []byte{0xff, 0xff, 0xff, 0xff})}},
	}
	for _, tc := range protocol {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, "/ws/proto", tc.deflate)
			c.write(t, tc.frames...)
			c.expectClose(t, 1002)
		})
	}

	t.Run("backend messages wait for the verdict", func(t *testing.T) {
		c := rawDial(t, "/ws/greet?greet=1", false)
		c.write(t, frame(opText|finBit, authMessage(forged)))
		c.expectClose(t, 4401) // and not "welcome" first

		c = rawDial(t, "/ws/greet?greet=1", false)
		first := authMessage(valid)
		c.write(t, frame(opText|finBit, first))
		c.expectText(t, []byte("welcome"))
		c.expectText(t, first)
	})
	t.Run("backend done before the verdict", func(t *testing.T) {
		// The backend's half-close must not overtake what it sent first.
		c := rawDial(t, "/ws/bye?bye=1", false)
		backend.waitClosed(t, "/ws/bye")
		c.write(t, frame(opText|finBit, authMessage(valid)))
		c.expectText(t, []byte("bye"))
	})
	if got := backend.messages("/ws/proto"); len(got) != 0 {
		t.Errorf("backend received %q from protocol violators", got)
	}
}

func TestWebsocketManyMessages(t *testing.T) {
	backend := newEchoBackend(t)
	startCaddy(t, wsSite(t, backend.URL))
	c := gorillaDial(t, "/ws/many", nil)
	first := authMessage(hs256(t, validClaims()))

	const n = 10000
	sent := make([][]byte, n)
	sent[0] = first
	for i := 1; i < n; i++ {
		m := make([]byte, 1+i%997)
		_, _ = rand.Read(m)
		sent[i] = m
	}
	errc := make(chan error, 1)
	go func() {
		for i, m := range sent {
			typ := gws.BinaryMessage
			if i == 0 {
				typ = gws.TextMessage
			}
			if err := c.WriteMessage(typ, m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := range n {
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, sent[i]) {
			t.Fatalf("echo %d differs: %d bytes, want %d", i, len(got), len(sent[i]))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := backend.messages("/ws/many")
	if len(got) != n {
		t.Fatalf("backend received %d messages, want %d", len(got), n)
	}
	for i := range got {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("backend message %d differs", i)
		}
	}
}

func TestWebsocketClosesOnExpiry(t *testing.T) {
	backend := newEchoBackend(t)
	startCaddy(t, wsSite(t, backend.URL))
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	short := hs256(t, claims{"sub": "user-1", "exp": exp.Unix()})

	var wg sync.WaitGroup
	wg.Add(1)
	// close_on_expiry off: the same token keeps its session past exp.
	go func() {
		defer wg.Done()
		c := gorillaDial(t, "/noexpiry/x", nil)
		first := authMessage(short)
		if err := c.WriteMessage(gws.TextMessage, first); err != nil {
			t.Error(err)
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Error(err)
			return
		}
		for time.Now().Before(exp.Add(time.Second)) {
			time.Sleep(100 * time.Millisecond) // let exp pass on the clock
		}
		if err := c.WriteMessage(gws.TextMessage, []byte("still here")); err != nil {
			t.Error(err)
			return
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != "still here" {
			t.Errorf("after exp with close_on_expiry off: %q, %v", got, err)
		}
	}()

	c := gorillaDial(t, "/ws/expiry", nil)
	first := authMessage(short)
	if err := c.WriteMessage(gws.TextMessage, first); err != nil {
		t.Fatal(err)
	}
	gorillaEcho(t, c, first)
	// Keep traffic flowing until the close, so it lands between frames.
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				if c.WriteMessage(gws.TextMessage, []byte("tick")) != nil {
					return
				}
			}
		}
	}()
	defer close(done)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := c.ReadMessage()
		if err == nil {
			if string(msg) != "tick" {
				t.Fatalf("unexpected message %q", msg)
			}
			continue
		}
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 4401 || ce.Text != "token expired" {
			t.Fatalf("session ended with %v; want close 4401 token expired", err)
		}
		if now := time.Now(); now.Before(exp) {
			t.Errorf("closed at %s, before exp %s", now, exp)
		}
		break
	}
	wg.Wait()
}

// rawConn is a websocket client written frame by frame, for what the
// libraries will not send: chosen fragmentation, several frames in one
// write, protocol violations.
type rawConn struct {
	w  io.Writer
	br *bufio.Reader
}

func rawDial(t *testing.T, path string, deflate bool) *rawConn {
	return rawDialWith(t, path, deflate, nil)
}

// rawDialWith sends the handshake followed by extra in one write.
func rawDialWith(t *testing.T, path string, deflate bool, extra []byte) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(baseURL, "http://") + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if deflate {
		req += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
	}
	if _, err := conn.Write(append([]byte(req+"\r\n"), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", resp.StatusCode)
	}
	if deflate && !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("permessage-deflate not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return &rawConn{conn, br}
}

// frame builds a masked client frame with a random key; b0 holds FIN, RSV
// and the opcode.
func frame(b0 byte, payload []byte) []byte {
	var key [4]byte
	_, _ = rand.Read(key[:])
	return fuzzWSFrameWithKey(b0, payload, key)
}

func (c *rawConn) write(t *testing.T, frames ...[]byte) {
	t.Helper()
	if _, err := c.w.Write(bytes.Join(frames, nil)); err != nil {
		t.Fatal(err)
	}
}

// read returns the next server frame's opcode and payload (inflated when
// RSV1 is set).
func (c *rawConn) read(t *testing.T) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(c.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(c.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&maskBit != 0 {
		t.Fatal("server frame is masked")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		t.Fatalf("reading payload: %v", err)
	}
	if h[0]&finBit == 0 {
		t.Fatal("fragmented server message; not expected in these tests")
	}
	if h[0]&rsv1Bit != 0 {
		out, err := inflate(payload, 1<<20)
		if err != nil {
			t.Fatalf("inflating server message: %v", err)
		}
		payload = out
	}
	return h[0] & 0x0f, payload
}

func (c *rawConn) expectText(t *testing.T, want []byte) {
	t.Helper()
	op, got := c.read(t)
	if op != opText || !bytes.Equal(got, want) {
		t.Fatalf("got opcode %d %.60q; want text %.60q", op, got, want)
	}
}

func (c *rawConn) expectClose(t *testing.T, code int) {
	t.Helper()
	op, payload := c.read(t)
	if op != opClose || len(payload) < 2 {
		t.Fatalf("got opcode %d %.60q; want close %d", op, payload, code)
	}
	if got := int(binary.BigEndian.Uint16(payload)); got != code {
		t.Fatalf("close code %d %q, want %d", got, payload[2:], code)
	}
}

// deflateMessage compresses a message as permessage-deflate does: a raw
// deflate stream ending in a sync flush, without the 00 00 ff ff tail.
func deflateMessage(t testing.TB, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = zw.Write(msg)
	if err := zw.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

// TestWebsocketAccessLogShowsFirstMessageUser: placeholders set from the
// first message reach the access log, written when the websocket ends; the
// token in the message does not.
func TestWebsocketAccessLogShowsFirstMessageUser(t *testing.T) {
	backend := newEchoBackend(t)
	k := testKeys(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	startCaddy(t, fmt.Sprintf(`
	log {
		output file %s
		format json
	}
	log_append plan {http.auth.claims.app_metadata.plan}
	jwt_guard {
		secret HS256 %s
	}
	reverse_proxy %s`, logFile, k.hmac, strings.TrimPrefix(backend.URL, "http://")))
	token := hs256(t, claims{"sub": "ada", "app_metadata": map[string]any{"plan": "pro"}, "exp": time.Now().Add(time.Hour).Unix()})
	c := gorillaDial(t, "/ws", nil)
	first := authMessage(token)
	if err := c.WriteMessage(gws.TextMessage, first); err != nil {
		t.Fatal(err)
	}
	gorillaEcho(t, c, first)
	_ = c.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Close()

	var logged string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logFile)
		if logged = string(b); strings.Contains(logged, `"status":101`) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{`"status":101`, `"user_id":"ada"`, `"plan":"pro"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("access log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, token) {
		t.Errorf("access log contains the token:\n%s", logged)
	}
}

// TestUpgradeHeadersRevealNothingBehindTheGuard: a tokenless request that
// only claims to be a websocket is passed on to the next handler, so what
// that handler answers (a file_server's 404 for a missing file, a proxy's
// 502) must become the 401 as well, or the guard is an oracle for what
// exists behind it.
func TestUpgradeHeadersRevealNothingBehindTheGuard(t *testing.T) {
	k := testKeys(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "files", "present.txt"), []byte("secret file"), 0o644); err != nil {
		t.Fatal(err)
	}
	tester := startCaddy(t, fmt.Sprintf(`
	handle /files/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		file_server {
			root %[2]s
		}
	}
	handle /down/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		reverse_proxy 127.0.0.1:1
	}
	handle /err/* {
		jwt_guard {
			secret HS256 %[1]s
		}
		error "no such thing" 404
	}
	handle_errors {
		respond "error page {err.status_code} {err.message}"
	}
`, k.hmac, root))
	upgrade := []string{"Connection: Upgrade", "Upgrade: websocket",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}
	for _, path := range []string{"/files/present.txt", "/files/absent.txt", "/files/", "/down/x", "/err/x"} {
		t.Run(path, func(t *testing.T) {
			resp, body := get(t, tester, baseURL+path, upgrade...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, body %q; want 401", resp.StatusCode, body)
			}
			if strings.Contains(body, "secret file") || strings.Contains(body, "no such thing") || strings.Contains(body, "404") || strings.Contains(body, "502") {
				t.Errorf("body %q tells what is behind the guard", body)
			}
			if resp.Header.Get("WWW-Authenticate") != `Bearer realm="restricted"` {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestIncompleteHandshakeNeverReachesTheBackend: Upgrade headers without
// a websocket key and version are an ordinary tokenless request, refused
// before the backend sees it (a GET with side effects stays protected).
func TestIncompleteHandshakeNeverReachesTheBackend(t *testing.T) {
	var hits atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	defer backend.Close()
	tester := startCaddy(t, fmt.Sprintf(`
	handle /api/* {
		jwt_guard {
			secret HS256 %s
		}
		reverse_proxy %s
	}
`, testKeys(t).hmac, strings.TrimPrefix(backend.URL, "http://")))
	for _, headers := range [][]string{
		{"Connection: Upgrade", "Upgrade: websocket"},
		{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13"},
		{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="},
	} {
		resp, _ := get(t, tester, baseURL+"/api/delete-everything", headers...)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%q: status %d, want 401", headers, resp.StatusCode)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the backend received %d tokenless requests", n)
	}
}

// TestWebsocketHandshakeCarriesNoSpoofedIdentity: a rule that forces or
// removes a header or query parameter cannot edit a first-message
// websocket's handshake (it goes on before the token is known), so the
// client's own values for them must not reach the backend either: else
// `remove args.query.headers.X-User-Id` would let any client that sends
// its token in the first message name itself admin to the backend.
func TestWebsocketHandshakeCarriesNoSpoofedIdentity(t *testing.T) {
	k := testKeys(t)
	type seen struct{ user, role, keep, debug, page string }
	got := make(chan seen, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("X-User-Id"), r.Header.Get("X-Role"), r.Header.Get("X-Keep"),
			r.URL.Query().Get("debug"), r.URL.Query().Get("page")}
		c, err := cws.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, data) != nil {
				return
			}
		}
	}))
	t.Cleanup(backend.Close)
	startCaddy(t, fmt.Sprintf(`
	handle /ws/* {
		jwt_guard {
			secret HS256 %s
			rule and {
				remove args.query.headers.X-User-Id args.query.params.debug
				force args.query.headers.X-Role args.auth.role
			}
		}
		reverse_proxy %s
	}
`, k.hmac, strings.TrimPrefix(backend.URL, "http://")))

	c := gorillaDial(t, "/ws/x?debug=1&page=2", http.Header{
		"X-User-Id": {"admin"}, "X-Role": {"admin"}, "X-Keep": {"yes"},
	})
	first := authMessage(hs256(t, claims{"sub": "user-1", "role": "viewer", "exp": time.Now().Add(time.Hour).Unix()}))
	if err := c.WriteMessage(gws.TextMessage, first); err != nil {
		t.Fatal(err)
	}
	gorillaEcho(t, c, first)
	want := seen{keep: "yes", page: "2"}
	if s := <-got; s != want {
		t.Errorf("backend's handshake had %+v; want %+v (the rule's headers and parameters stripped, the rest kept)", s, want)
	}
}
