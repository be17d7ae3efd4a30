package jwtguard

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// FuzzWebsocketFirstMessage feeds arbitrary client bytes, as they follow a
// websocket handshake, to the first-message reader, with and without
// permessage-deflate and with any max_message:
//
//   - directly to the frame reader, in chunks and whole: the outcome is the
//     same either way, a message of at most max_message bytes (also once
//     inflated) or a close with 1002 or 1009 (or the client's own close),
//     and the bytes kept for forwarding are the bytes given; inflate on the
//     raw bytes never yields more than the limit;
//   - through a session on a real (Unix socket) connection, with the token
//     of a real HS256 handler and a rule: either the next handler reads
//     every byte the client sent, unaltered, and the client gets nothing,
//     or the next handler reads nothing and the client gets exactly one
//     close frame with a documented code (1002 1009 4401 4403 4408), or
//     none when the client itself closed or left.
//
// A valid token cannot come from a fuzzer, so wherever the stream holds
// fuzzWSMarker("allow") or fuzzWSMarker("deny") (as plain text: a zero
// masking key, an uncompressed deflate block) it is replaced by a token,
// of the same length, that the rule allows or refuses.
func FuzzWebsocketFirstMessage(f *testing.F) {
	h := fuzzWSHandler(f)
	// A Unix socket: a real connection with half-close, and none of the
	// TIME_WAIT ports that a loopback TCP connection per input leaves.
	ln, err := net.Listen("unix", filepath.Join(f.TempDir(), "ws.sock"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	f.Add(frame(finBit|opText, []byte(`{"data":{"token":"x"}}`)), false, uint16(0), uint8(0), false)
	f.Fuzz(func(t *testing.T, stream []byte, deflate bool, maxMessage uint16, chunk uint8, hold bool) {
		limit := int(maxMessage)
		if limit == 0 {
			limit = defaultWSMaxMessage
		}
		stream = h.withTokens(stream)

		// The frame reader alone.
		whole := &firstMessage{maxMessage: limit, deflate: deflate, raw: stream}
		msg, perr := whole.parse()
		fuzzWSCheckParse(t, whole, stream, msg, perr, limit)
		parts := &firstMessage{maxMessage: limit, deflate: deflate}
		pmsg, pperr := feed(parts, stream, int(chunk)+1)
		if !bytes.Equal(pmsg, msg) || (pmsg == nil) != (msg == nil) || fuzzWSCloseCode(pperr) != fuzzWSCloseCode(perr) {
			t.Fatalf("in chunks of %d: %q, %v; whole: %q, %v", int(chunk)+1, pmsg, pperr, msg, perr)
		}
		if out, err := inflate(stream, limit); len(out) > limit || (err != nil && fuzzWSCloseCode(err) != closeProtocolError && fuzzWSCloseCode(err) != closeMessageTooBig) {
			t.Fatalf("inflate gave %d bytes (limit %d), %v", len(out), limit, err)
		}

		// A session, as the next handler sees it after the handshake.
		forwarded, sent, cerr := h.session(t, ln, stream, deflate, limit, hold)
		if cerr == nil {
			if !bytes.Equal(forwarded, stream) || len(sent) > 0 {
				t.Fatalf("accepted: forwarded %q of %q, client got %q", forwarded, stream, sent)
			}
			if msg == nil || perr != nil {
				t.Fatalf("session accepted what the frame reader refused: %v", perr)
			}
			return
		}
		if len(forwarded) > 0 {
			t.Fatalf("refused with %v, yet %q was forwarded", cerr, forwarded)
		}
		switch cerr.code {
		case 0:
			if len(sent) > 0 {
				t.Fatalf("client left (%s), yet got %q", cerr.reason, sent)
			}
			return
		case closeProtocolError, closeMessageTooBig, closeUnauthorized, closeForbidden, closeTimeout:
		default:
			t.Fatalf("closed with undocumented code %d: %s", cerr.code, cerr.reason)
		}
		if want := closeFrame(cerr.code, cerr.reason); !bytes.Equal(sent, want) {
			t.Fatalf("closed with %v: client got %q, want %q", cerr, sent, want)
		}
		if cerr.code == closeProtocolError && fuzzWSCloseCode(perr) != closeProtocolError {
			t.Fatalf("session saw a protocol error (%s) the frame reader did not: %v", cerr.reason, perr)
		}
	})
}

func fuzzWSCloseCode(err error) int {
	var ce *closeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return -1
}

// fuzzWSCheckParse: one outcome of the frame reader, and the raw bytes kept
// as they came.
func fuzzWSCheckParse(t *testing.T, m *firstMessage, stream, msg []byte, err error, limit int) {
	t.Helper()
	if !bytes.Equal(m.raw, stream) || m.off > len(m.raw) {
		t.Fatalf("raw bytes changed or overrun (off %d of %d)", m.off, len(m.raw))
	}
	switch {
	case err != nil && msg != nil:
		t.Fatalf("both a message and %v", err)
	case msg != nil && len(msg) > limit:
		t.Fatalf("message of %d bytes over the limit %d", len(msg), limit)
	case err != nil:
		switch c := fuzzWSCloseCode(err); c {
		case 0, closeProtocolError, closeMessageTooBig:
		default:
			t.Fatalf("frame reader error %v (code %d)", err, c)
		}
	}
}

// fuzzWSTarget is a provisioned handler whose tokens stand in for the
// markers.
type fuzzWSTarget struct {
	h      *Handler
	tokens map[string]string // marker -> token
}

// fuzzWSClaims sign to tokens of one length: the rule allows the first
// and refuses the second.
var fuzzWSClaims = map[string]claims{
	"allow": {"sub": "fuzz", "role": "admin"},
	"deny":  {"sub": "fuzz", "role": "guest"},
}

// fuzzWSMarker is what the allowed or refused token replaces in a seed; it
// is as long as the token (HS256 over fuzzWSClaims).
func fuzzWSMarker(kind string) string {
	const tokenLen = 120
	m := "fuzz-" + kind + "-token"
	return m + strings.Repeat("~", tokenLen-len(m))
}

func fuzzWSHandler(t testing.TB) *fuzzWSTarget {
	h := hmacHandler(t)
	h.Rule = mustRule(t, match("string", `"args.auth.role"`, "==", `"admin"`))
	h = provisioned(t, h, time.Now())
	h.logger = zap.NewNop() // a refusal per input would flood the output
	target := &fuzzWSTarget{h: h, tokens: map[string]string{}}
	for kind, c := range fuzzWSClaims {
		tok, marker := hs256(t, c), fuzzWSMarker(kind)
		if len(tok) != len(marker) {
			t.Fatalf("a %s token has %d bytes, its marker %d", kind, len(tok), len(marker))
		}
		target.tokens[marker] = tok
	}
	return target
}

func (f *fuzzWSTarget) withTokens(stream []byte) []byte {
	for marker, tok := range f.tokens {
		if bytes.Contains(stream, []byte(marker)) {
			stream = bytes.ReplaceAll(stream, []byte(marker), []byte(tok))
		}
	}
	return stream
}

// session runs one client connection: the client sends stream (then
// half-closes, unless hold: then it waits for the verdict) and reads what
// it is sent; the next handler reads until EOF. It returns what the next
// handler read, what the client got, and the refusal (nil if accepted).
func (f *fuzzWSTarget) session(t *testing.T, ln net.Listener, stream []byte, deflate bool, limit int, hold bool) (forwarded, sent []byte, refusal *closeError) {
	t.Helper()
	h := *f.h // this input's settings; the handler itself is shared
	h.ws.maxMessage = limit
	h.ws.timeout = time.Second
	if hold {
		h.ws.timeout = 2 * time.Millisecond // a client that sends no more
	}
	client, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	_ = client.SetDeadline(deadline)
	defer client.Close()

	verdict := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the client's sending half
		defer wg.Done()
		_, _ = client.Write(stream)
		if hold {
			<-verdict
		}
		_ = client.(*net.UnixConn).CloseWrite()
	}()
	go func() { // the client's receiving half
		defer wg.Done()
		sent, _ = io.ReadAll(client)
		if hold {
			_ = client.(*net.UnixConn).CloseWrite() // answers the close
		}
	}()

	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	s := h.newSession(r, caddyhttp.NewTestReplacer(r), server)
	s.fm.deflate = deflate
	conn := &wsConn{Conn: server, s: s}
	buf := make([]byte, 4096)
	first := true
	for {
		n, err := conn.Read(buf)
		forwarded = append(forwarded, buf[:n]...)
		if first {
			first = false
			if hold && err == nil {
				close(verdict)
			}
		}
		if err != nil {
			if !errors.As(err, &refusal) && !errors.Is(err, io.EOF) {
				t.Fatalf("next handler read: %v", err)
			}
			break
		}
	}
	if hold && refusal != nil {
		close(verdict)
	}
	_ = conn.Close()
	wg.Wait()
	if time.Now().After(deadline) {
		t.Fatal("session hung")
	}
	return forwarded, sent, refusal
}
