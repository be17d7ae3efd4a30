package jwtguard

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	gws "github.com/gorilla/websocket"
)

// BenchmarkWebsocketConnect measures one websocket connection through Caddy
// to an echo backend: dial, handshake, one message and its echo, close.
// impl=first-message sends the token in that message; impl=header sends it
// in the Authorization header (judged before the handshake) and the same
// message; impl=none has no jwt_guard. Compare with benchstat -col /impl.
func BenchmarkWebsocketConnect(b *testing.B) {
	backend := newEchoBackend(b)
	k := testKeys(b)
	site := fmt.Sprintf(`%s
%s {
	handle /guarded/* {
		jwt_guard {
			secret HS256 %s
		}
		reverse_proxy %s
	}
	handle /open/* {
		reverse_proxy %[4]s
	}
}
`, globalOptions(), baseURL, k.hmac, strings.TrimPrefix(backend.URL, "http://"))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(site), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		b.Fatal(err)
	}
	token := hs256(b, validClaims())
	msg := authMessage(token)

	for _, bc := range []struct {
		impl, path string
		header     http.Header
	}{
		{"none", "/open/x", nil},
		{"header", "/guarded/x", http.Header{"Authorization": {"Bearer " + token}}},
		{"first-message", "/guarded/x", nil},
	} {
		b.Run("impl="+bc.impl, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, _, err := gws.DefaultDialer.Dial(wsBase+bc.path, bc.header)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.WriteMessage(gws.TextMessage, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.ReadMessage(); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkWebsocketFirstMessage is the work first-message authentication
// adds to a connection besides verifying the token (which a header token
// costs too): reading the frames, unmasking, inflating, finding the token
// in the JSON.
func BenchmarkWebsocketFirstMessage(b *testing.B) {
	msg := authMessage(hs256(b, validClaims()))
	for _, bc := range []struct {
		impl    string
		deflate bool
		stream  []byte
	}{
		{"plain", false, frame(finBit|opText, msg)},
		{"fragmented", false, append(frame(opText, msg[:100]), frame(finBit|opContinuation, msg[100:])...)},
		{"deflate", true, frame(finBit|opText|rsv1Bit, deflateMessage(b, msg))},
	} {
		b.Run("impl="+bc.impl, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := firstMessage{maxMessage: 64 << 10, deflate: bc.deflate, raw: bc.stream}
				got, err := m.parse()
				if err != nil || tokenAt(got, "data.token") == "" {
					b.Fatal("no token", err)
				}
			}
		})
	}
}
