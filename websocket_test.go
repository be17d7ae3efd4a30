package jwtguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// feed gives m the bytes one chunk at a time, as a TCP stream may deliver
// them, and returns the message or error once parse decides.
func feed(m *firstMessage, stream []byte, chunk int) ([]byte, error) {
	for len(stream) > 0 {
		k := min(chunk, len(stream))
		m.raw = append(m.raw, stream[:k]...)
		stream = stream[k:]
		msg, err := m.parse()
		if msg != nil || err != nil {
			return msg, err
		}
	}
	return nil, nil
}

func TestFirstMessageReader(t *testing.T) {
	long := bytes.Repeat([]byte("L"), 300)    // 16-bit length
	huge := bytes.Repeat([]byte("H"), 70_000) // 64-bit length
	nonMinimal16 := []byte{finBit | opText, maskBit | 126, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'}
	nonMinimal64 := append([]byte{finBit | opText, maskBit | 127}, binary.BigEndian.AppendUint64(nil, 5)...)
	nonMinimal64 = append(nonMinimal64, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o')
	tests := []struct {
		name    string
		stream  [][]byte
		deflate bool
		max     int
		want    []byte
		code    int // expected close code; -1 for none
	}{
		{"one frame", [][]byte{frame(finBit|opText, []byte("hello"))}, false, 64, []byte("hello"), -1},
		{"binary frame", [][]byte{frame(finBit|opBinary, []byte{0, 1, 2})}, false, 64, []byte{0, 1, 2}, -1},
		{"16-bit length", [][]byte{frame(finBit|opText, long)}, false, 1 << 20, long, -1},
		{"64-bit length", [][]byte{frame(finBit|opText, huge)}, false, 1 << 20, huge, -1},
		{"fragments", [][]byte{frame(opText, []byte("he")), frame(opContinuation, []byte("ll")), frame(finBit|opContinuation, []byte("o"))}, false, 64, []byte("hello"), -1},
		{"pings and pongs before and between", [][]byte{frame(finBit|opPing, nil), frame(finBit|opPong, []byte("x")), frame(opText, []byte("he")), frame(finBit|opPing, []byte("p")), frame(finBit|opContinuation, []byte("llo"))}, false, 64, []byte("hello"), -1},
		{"empty message", [][]byte{frame(finBit|opText, nil)}, false, 64, []byte{}, -1},
		{"compressed", [][]byte{frame(finBit|opText|rsv1Bit, deflateMessage(t, []byte("hello hello hello")))}, true, 64, []byte("hello hello hello"), -1},
		{"compressed in fragments", func() [][]byte {
			d := deflateMessage(t, []byte("fragmented and compressed"))
			return [][]byte{frame(opText|rsv1Bit, d[:3]), frame(finBit|opContinuation, d[3:])}
		}(), true, 64, []byte("fragmented and compressed"), -1},
		{"exactly the limit", [][]byte{frame(finBit|opText, bytes.Repeat([]byte("x"), 64))}, false, 64, bytes.Repeat([]byte("x"), 64), -1},

		{"one byte over the limit", [][]byte{frame(finBit|opText, bytes.Repeat([]byte("x"), 65))}, false, 64, nil, 1009},
		{"fragments over the limit", [][]byte{frame(opText, bytes.Repeat([]byte("x"), 40)), frame(finBit|opContinuation, bytes.Repeat([]byte("x"), 40))}, false, 64, nil, 1009},
		{"inflates over the limit", [][]byte{frame(finBit|opText|rsv1Bit, deflateMessage(t, bytes.Repeat([]byte("x"), 65)))}, true, 64, nil, 1009},
		{"unmasked", [][]byte{{finBit | opText, 1, 'x'}}, false, 64, nil, 1002},
		{"RSV1 without deflate", [][]byte{frame(finBit|opText|rsv1Bit, []byte("x"))}, false, 64, nil, 1002},
		{"RSV1 on a continuation", [][]byte{frame(opText|rsv1Bit, []byte("x")), frame(finBit|opContinuation|rsv1Bit, []byte("x"))}, true, 64, nil, 1002},
		{"RSV1 on a ping", [][]byte{frame(finBit|opPing|rsv1Bit, nil)}, true, 64, nil, 1002},
		{"RSV3", [][]byte{frame(finBit|opText|rsv3Bit, []byte("x"))}, false, 64, nil, 1002},
		{"opcode 0xB", [][]byte{frame(finBit|0xb, nil)}, false, 64, nil, 1002},
		{"continuation without a message", [][]byte{frame(finBit|opContinuation, []byte("x"))}, false, 64, nil, 1002},
		{"new message inside a message", [][]byte{frame(opText, []byte("x")), frame(finBit|opText, []byte("y"))}, false, 64, nil, 1002},
		{"long ping", [][]byte{frame(finBit|opPing, bytes.Repeat([]byte("p"), 126))}, false, 1 << 20, nil, 1002},
		{"fragmented ping", [][]byte{frame(opPing, nil)}, false, 64, nil, 1002},
		{"non-minimal 16-bit length", [][]byte{nonMinimal16}, false, 64, nil, 1002},
		{"non-minimal 64-bit length", [][]byte{nonMinimal64}, false, 64, nil, 1002},
		{"corrupt deflate data", [][]byte{frame(finBit|opText|rsv1Bit, []byte{0xff, 0xff, 0xff})}, true, 64, nil, 1002},
		{"close before the message", [][]byte{frame(finBit|opClose, []byte{0x03, 0xe8})}, false, 64, nil, 0},
	}
	for _, tc := range tests {
		stream := bytes.Join(tc.stream, nil)
		for _, chunk := range []int{1, 7, len(stream)} {
			m := &firstMessage{maxMessage: tc.max, deflate: tc.deflate}
			msg, err := feed(m, stream, chunk)
			if tc.code >= 0 {
				var ce *closeError
				if !errors.As(err, &ce) || ce.code != tc.code {
					t.Errorf("%s (chunks of %d): got %q, %v; want close %d", tc.name, chunk, msg, err, tc.code)
				}
				continue
			}
			if err != nil || !bytes.Equal(msg, tc.want) || msg == nil {
				t.Errorf("%s (chunks of %d): got %.40q, %v; want %.40q", tc.name, chunk, msg, err, tc.want)
			}
			if !bytes.Equal(m.raw, stream) {
				t.Errorf("%s: raw bytes were changed", tc.name)
			}
		}
	}
}

// TestFirstMessageReaderRefusesBeforeBuffering: an announced length over the
// limit is refused from the header alone, before the payload arrives.
func TestFirstMessageReaderRefusesBeforeBuffering(t *testing.T) {
	hdr := append([]byte{finBit | opText, maskBit | 127}, binary.BigEndian.AppendUint64(nil, 1<<40)...)
	m := &firstMessage{maxMessage: 1 << 16, raw: hdr}
	if _, err := m.parse(); !errors.Is(err, errTooBig) {
		t.Fatalf("got %v, want 1009 from the header alone", err)
	}
}

func TestFrameTrackerFindsBoundaries(t *testing.T) {
	frames := [][]byte{
		{finBit | opText, 3, 'a', 'b', 'c'},
		append([]byte{finBit | opBinary, 126, 0x01, 0x2c}, bytes.Repeat([]byte("x"), 300)...),
		append(append([]byte{finBit | opBinary, 127}, binary.BigEndian.AppendUint64(nil, 70_000)...), bytes.Repeat([]byte("y"), 70_000)...),
		{finBit | opPing, 0},
		frame(finBit|opText, []byte("masked")),
	}
	var stream []byte
	var ends []int
	for _, f := range frames {
		stream = append(stream, f...)
		ends = append(ends, len(stream))
	}
	for _, chunk := range []int{1, 3, 1000, len(stream)} {
		var tr frameTracker
		var got []int
		for off := 0; off < len(stream); {
			k := min(chunk, len(stream)-off)
			// Feed byte by byte around boundaries to see each one.
			for _, b := range stream[off : off+k] {
				tr.feed([]byte{b})
				off++
				if tr.atBoundary() {
					got = append(got, off)
				}
			}
		}
		if len(got) != len(ends) {
			t.Fatalf("chunk %d: boundaries at %v, want %v", chunk, got, ends)
		}
		for i := range ends {
			if got[i] != ends[i] {
				t.Fatalf("chunk %d: boundaries at %v, want %v", chunk, got, ends)
			}
		}
	}
	// In bulk: only the end matters.
	var tr frameTracker
	tr.feed(stream[:ends[1]+5])
	if tr.atBoundary() {
		t.Error("inside the third frame reported as a boundary")
	}
	tr.feed(stream[ends[1]+5:])
	if !tr.atBoundary() {
		t.Error("end of stream not reported as a boundary")
	}
	// A close frame's payload that looks like a close header is not one.
	if tr.sawClose {
		t.Error("close seen in a stream without one")
	}
	tr.feed(frame(finBit|opBinary, []byte{finBit | opClose, 0}))
	if tr.sawClose {
		t.Error("close seen inside a payload")
	}
	tr.feed(frame(finBit|opClose, []byte{0x03, 0xe8}))
	if !tr.sawClose {
		t.Error("close frame not seen")
	}
}

func TestCloseFrame(t *testing.T) {
	f := closeFrame(4401, "token expired")
	if !bytes.Equal(f, append([]byte{finBit | opClose, 15, 0x11, 0x31}, "token expired"...)) {
		t.Errorf("closeFrame = %x", f)
	}
	long := closeFrame(4403, strings.Repeat("é", 100)) // 200 bytes of UTF-8
	if len(long) > 2+maxControlPayload || !utf8.Valid(long[4:]) {
		t.Errorf("long reason: %d bytes, valid UTF-8 %v", len(long), utf8.Valid(long[4:]))
	}
}

func TestDeflateNegotiated(t *testing.T) {
	tests := []struct {
		header http.Header
		want   bool
	}{
		{http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate; client_max_window_bits=10"}}, true}, //nolint:canonicalheader
		{http.Header{"Sec-Websocket-Extensions": {"x-foo, PerMessage-Deflate"}}, true},
		{http.Header{"Sec-Websocket-Extensions": {"x-permessage-deflate"}}, false},
		{http.Header{}, false},
	}
	for _, tc := range tests {
		if got := deflateNegotiated(tc.header); got != tc.want {
			t.Errorf("deflateNegotiated(%v) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestWebsocketSettings(t *testing.T) {
	off := false
	s, err := (*WebsocketConfig)(nil).settings()
	if err != nil || s.tokenPath != "data.token" || s.timeout != defaultWSTimeout || s.maxMessage != 64<<10 || !s.closeOnExpiry {
		t.Errorf("defaults = %+v, %v", s, err)
	}
	s, err = (&WebsocketConfig{TokenPath: "payload.authToken", Timeout: caddyDuration("3s"), MaxMessage: 100, CloseOnExpiry: &off}).settings()
	if err != nil || s.tokenPath != "payload.authToken" || s.timeout.String() != "3s" || s.maxMessage != 100 || s.closeOnExpiry {
		t.Errorf("settings = %+v, %v", s, err)
	}
	for _, bad := range []WebsocketConfig{{TokenPath: "data..token"}, {TokenPath: ".token"}, {Timeout: -1}, {MaxMessage: -1}, {MaxMessage: 32 << 20}} {
		if _, err := bad.settings(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestWebsocketCaddyfileErrors(t *testing.T) {
	k := testKeys(t)
	tests := []struct{ name, block, want string }{
		{"unknown option", "websocket {\n  token x\n }", "unrecognized websocket option 'token', at Caddyfile:5"},
		{"bad timeout", "websocket {\n  timeout soon\n }", `timeout "soon" is not a duration`},
		{"zero timeout", "websocket {\n  timeout 0s\n }", "websocket timeout must be more than 0, at Caddyfile:5"},
		{"bad size", "websocket {\n  max_message huge\n }", `max_message "huge": want a size from 1 byte to 16MiB, like 64KiB, at Caddyfile:5`},
		{"bad switch", "websocket {\n  close_on_expiry maybe\n }", `close_on_expiry "maybe": want on or off, at Caddyfile:5`},
		{"empty path segment", "websocket {\n  token_path data..token\n }", `token_path "data..token" has an empty segment, at Caddyfile:5`},
		{"argument", "websocket on", "wrong argument count"},
		{"twice", "websocket\n websocket", "websocket already specified"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := adaptError(t, "jwt_guard {\n secret HS256 "+k.hmac+"\n "+tc.block+"\n}")
			if !strings.Contains(got, tc.want) {
				t.Errorf("error = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

// TestOnlyCompleteHandshakesSkipTheToken: a request that only adds
// Upgrade headers is not a websocket handshake, so it gets the usual 401
// instead of reaching the next handler tokenless.
func TestOnlyCompleteHandshakesSkipTheToken(t *testing.T) {
	full := func() http.Header {
		return http.Header{
			"Connection":            {"keep-alive, Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		}
	}
	cases := []struct {
		name   string
		method string
		proto  int
		edit   func(http.Header)
		want   bool
	}{
		{"complete HTTP/1.1 handshake", http.MethodGet, 1, func(http.Header) {}, true},
		{"no version", http.MethodGet, 1, func(h http.Header) { h.Del("Sec-Websocket-Version") }, false},
		{"version 8", http.MethodGet, 1, func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, false},
		{"no key", http.MethodGet, 1, func(h http.Header) { h.Del("Sec-Websocket-Key") }, false},
		{"key not base64", http.MethodGet, 1, func(h http.Header) { h.Set("Sec-Websocket-Key", "not a nonce!") }, false},
		{"key of 15 bytes", http.MethodGet, 1, func(h http.Header) { h.Set("Sec-Websocket-Key", "AAAAAAAAAAAAAAAAAAAA") }, false},
		{"two keys", http.MethodGet, 1, func(h http.Header) { h.Add("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, false},
		{"no Connection upgrade", http.MethodGet, 1, func(h http.Header) { h.Set("Connection", "keep-alive") }, false},
		{"POST", http.MethodPost, 1, func(http.Header) {}, false},
		{"HTTP/2 extended CONNECT", http.MethodConnect, 2, func(h http.Header) { h.Set(":protocol", "websocket") }, true},
		{"HTTP/2 CONNECT without version", http.MethodConnect, 2, func(h http.Header) {
			h.Set(":protocol", "websocket")
			h.Del("Sec-Websocket-Version")
		}, false},
		{"HTTP/2 plain CONNECT", http.MethodConnect, 2, func(http.Header) {}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Method: tc.method, ProtoMajor: tc.proto, Header: full()}
			tc.edit(r.Header)
			if got := isWebsocket(r); got != tc.want {
				t.Errorf("isWebsocket = %v, want %v", got, tc.want)
			}
		})
	}
}
