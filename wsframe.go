package jwtguard

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// WebSocket framing (RFC 6455 §5.2) and permessage-deflate (RFC 7692), as
// much as jwt_guard needs to read a client's first message and to find frame
// boundaries in what the backend sends.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa

	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	maskBit = 0x80

	maxControlPayload = 125
)

// Close codes sent to a client that is refused (keep these values: clients
// act on them; 4401/4403 follow graphql-ws).
const (
	closeNormal        = 1000
	closeProtocolError = 1002
	closeMessageTooBig = 1009
	closeInternalError = 1011
	closeTryAgainLater = 1013
	closeUnauthorized  = 4401
	closeForbidden     = 4403
	closeTimeout       = 4408
)

// closeError is why a websocket is being closed: the close code and a short
// reason that is safe to send (never any part of the token). A zero code
// means the client left: nothing is sent.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string {
	if e.code == 0 {
		return e.reason
	}
	return "websocket closed with " + strconv.Itoa(e.code) + ": " + e.reason
}

func protocolError(reason string) *closeError {
	return &closeError{closeProtocolError, reason}
}

var errTooBig = &closeError{closeMessageTooBig, "first message is too large"}

// firstMessage reads frames from the bytes a client sent, up to and
// including its first complete data message. raw keeps every byte exactly as
// received, for forwarding; the message itself is unmasked into payload.
type firstMessage struct {
	maxMessage int
	// deflate is set when permessage-deflate was negotiated: only then may
	// RSV1 mark a compressed message.
	deflate bool

	raw []byte
	off int // parse position in raw

	payload    []byte
	inMessage  bool
	compressed bool
}

// parse consumes the complete frames in raw. It returns the first data
// message's payload (inflated) once it is complete, nil with a nil error
// when it needs more bytes, or a *closeError on a protocol violation, a
// message over the limit, or a close frame.
func (m *firstMessage) parse() ([]byte, error) {
	for {
		b := m.raw[m.off:]
		if len(b) < 2 {
			return nil, nil
		}
		b0, b1 := b[0], b[1]
		op, fin, rsv1 := b0&0x0f, b0&finBit != 0, b0&rsv1Bit != 0
		if b0&(rsv2Bit|rsv3Bit) != 0 {
			return nil, protocolError("reserved bits set")
		}
		// RFC 6455 §5.1: a server must close on an unmasked client frame.
		if b1&maskBit == 0 {
			return nil, protocolError("client frame is not masked")
		}
		hdr, n := 2, uint64(b1&0x7f)
		switch n {
		case 126:
			if len(b) < 4 {
				return nil, nil
			}
			hdr, n = 4, uint64(binary.BigEndian.Uint16(b[2:]))
			if n < 126 {
				return nil, protocolError("frame length is not minimally encoded")
			}
		case 127:
			if len(b) < 10 {
				return nil, nil
			}
			hdr, n = 10, binary.BigEndian.Uint64(b[2:])
			if n>>63 != 0 || n <= 0xffff {
				return nil, protocolError("frame length is not minimally encoded")
			}
		}
		hdr += 4 // masking key

		control := op >= opClose
		switch {
		case op == opText || op == opBinary:
			if m.inMessage {
				return nil, protocolError("new message before the previous one ended")
			}
			if rsv1 && !m.deflate {
				return nil, protocolError("compressed frame without permessage-deflate")
			}
		case op == opContinuation:
			if !m.inMessage {
				return nil, protocolError("continuation frame outside a message")
			}
			if rsv1 {
				return nil, protocolError("RSV1 set on a continuation frame")
			}
		case op == opClose || op == opPing || op == opPong:
			if !fin || n > maxControlPayload || rsv1 {
				return nil, protocolError("invalid control frame")
			}
		default:
			return nil, protocolError("unknown opcode " + strconv.Itoa(int(op)))
		}
		// Check the limit on the announced length, before buffering it.
		if !control && uint64(len(m.payload))+n > uint64(m.maxMessage) {
			return nil, errTooBig
		}
		if uint64(len(b)) < uint64(hdr)+n {
			return nil, nil
		}
		key := b[hdr-4 : hdr]
		data := b[hdr : hdr+int(n)]
		m.off += hdr + int(n)

		if control {
			if op == opClose {
				return nil, &closeError{0, "client closed before its first message"}
			}
			continue // ping and pong pass on to the backend with the rest
		}
		if op != opContinuation {
			m.inMessage, m.compressed = true, rsv1
		}
		start := len(m.payload)
		m.payload = append(m.payload, data...)
		maskBytes(key, m.payload[start:])
		if !fin {
			continue
		}
		if !m.compressed {
			if m.payload == nil {
				return []byte{}, nil // an empty message is still a message
			}
			return m.payload, nil
		}
		return inflate(m.payload, m.maxMessage)
	}
}

func maskBytes(key []byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// inflaters keeps flate readers (a 32 KiB window each) for reuse.
var inflaters sync.Pool

// deflateTail ends a permessage-deflate message (RFC 7692 §7.2.2).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflate decompresses one permessage-deflate message, refusing to produce
// more than limit bytes (a small compressed message can inflate a lot).
// The decoder keeps a 32 KiB window, the largest permessage-deflate allows,
// so it decodes a message sent with any negotiated client_max_window_bits;
// the first message has no earlier context to take over.
func inflate(p []byte, limit int) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))
	zr, _ := inflaters.Get().(io.ReadCloser)
	if zr == nil {
		zr = flate.NewReader(src)
	} else {
		_ = zr.(flate.Resetter).Reset(src, nil)
	}
	defer inflaters.Put(zr)
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if len(out) > limit {
		return nil, errTooBig
	}
	// The message ends on a sync flush, not a final block, so running out
	// of input there is the normal end.
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, protocolError("invalid compressed data")
	}
	return out, nil
}

// deflateNegotiated reports whether the handshake response accepted
// permessage-deflate. The header is looked up in any case: reverse_proxy
// writes it with RFC 6455's casing, not Go's canonical one.
func deflateNegotiated(h http.Header) bool {
	var extensions []string
	for k, v := range h {
		if strings.EqualFold(k, "Sec-WebSocket-Extensions") {
			extensions = append(extensions, v...)
		}
	}
	for _, line := range extensions {
		for ext := range strings.SplitSeq(line, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
				return true
			}
		}
	}
	return false
}

// closeFrame is an unmasked (server) close frame.
func closeFrame(code int, reason string) []byte {
	// The payload of a control frame is at most 125 bytes: 2 for the code.
	for len(reason) > maxControlPayload-2 {
		_, size := utf8.DecodeLastRuneInString(reason)
		reason = reason[:len(reason)-size]
	}
	f := make([]byte, 4, 4+len(reason))
	f[0] = finBit | opClose
	f[1] = byte(2 + len(reason))
	binary.BigEndian.PutUint16(f[2:], uint16(code))
	return append(f, reason...)
}

// frameTracker follows frame boundaries in a stream of frames (what the
// backend sends), so a close frame can be put between two frames and never
// inside one. It reads headers only; payload bytes are skipped in bulk.
type frameTracker struct {
	hdr       [14]byte
	hn        int // header bytes collected
	need      int // header length, once the first two bytes are known
	remaining uint64
	// sawClose is set once a close frame's header has gone by.
	sawClose bool
}

func (t *frameTracker) feed(p []byte) {
	for len(p) > 0 {
		if t.remaining > 0 {
			k := uint64(len(p))
			if k > t.remaining {
				k = t.remaining
			}
			t.remaining -= k
			p = p[k:]
			continue
		}
		t.hdr[t.hn] = p[0]
		t.hn++
		p = p[1:]
		if t.hn == 2 {
			t.need = 2
			switch t.hdr[1] & 0x7f {
			case 126:
				t.need += 2
			case 127:
				t.need += 8
			}
			if t.hdr[1]&maskBit != 0 {
				t.need += 4
			}
		}
		if t.hn >= 2 && t.hn == t.need {
			switch n := t.hdr[1] & 0x7f; n {
			case 126:
				t.remaining = uint64(binary.BigEndian.Uint16(t.hdr[2:]))
			case 127:
				t.remaining = binary.BigEndian.Uint64(t.hdr[2:])
			default:
				t.remaining = uint64(n)
			}
			t.hn, t.need = 0, 0
			if t.hdr[0]&0x0f == opClose {
				t.sawClose = true
			}
		}
	}
}

// atBoundary reports whether the stream so far ends between two frames.
func (t *frameTracker) atBoundary() bool { return t.hn == 0 && t.remaining == 0 }
