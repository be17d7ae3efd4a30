package jwtguard

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http/httpguts"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// WebsocketConfig sets how a websocket that carries no token in its
// handshake is authenticated by its first message.
//
// Browsers cannot set headers on a websocket, so such clients send the
// token in their first message instead. jwt_guard lets the handshake reach
// the next handler (usually reverse_proxy), reads the client's first data
// message when the connection is taken over, verifies the token found at
// token_path and evaluates the rule. On success every byte the client sent
// is passed on unchanged; on failure the client gets a close frame (4401
// invalid or expired token, 4403 denied by the rule, 1013 the rule's webhook
// could not answer, 4408 no message in time, 1009 too large, 1002 protocol
// violation, 1011 internal error) and the backend connection is closed.
// Until then, nothing the backend sends reaches the client.
type WebsocketConfig struct {
	// TokenPath is the dot path of the token in the first message's JSON:
	// data.token for Space Cloud, payload.authToken for
	// subscriptions-transport-ws, payload.token for graphql-ws
	// connection_init. No placeholders. Default: data.token.
	TokenPath string `json:"token_path,omitempty"`

	// Timeout is how long to wait for the first message after the
	// handshake; then the connection is closed with 4408. No
	// placeholders. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// MaxMessage is the largest first message accepted, in bytes, both as
	// sent and once inflated; larger ones are closed with 1009.
	// No placeholders. Default: 65536 (64 KiB); at most 16 MiB.
	MaxMessage int `json:"max_message,omitempty"`

	// CloseOnExpiry closes the session with 4401 "token expired" when the
	// token's exp (plus leeway) passes; off, a session outlives its token.
	// The Caddyfile writes on or off. Default: true. No placeholders.
	CloseOnExpiry *bool `json:"close_on_expiry,omitempty"`
}

const (
	defaultWSTimeout    = 10 * time.Second
	defaultWSMaxMessage = 64 << 10
	maxWSMaxMessage     = 16 << 20
	// wsFrameSlack is what may be buffered before the first message
	// besides its payload: frame headers and control frames.
	wsFrameSlack = 16 << 10
	// wsHoldLimit is how much the backend may send before the verdict; it
	// is held, then sent on success or dropped.
	wsHoldLimit = 64 << 10
	// wsLinger bounds how long a refused or expired client is given to
	// read its close frame before the connection is closed.
	wsLinger = 2 * time.Second
)

// wsSettings is the provisioned WebsocketConfig.
type wsSettings struct {
	tokenPath     string
	timeout       time.Duration
	maxMessage    int
	closeOnExpiry bool
}

func (c *WebsocketConfig) settings() (wsSettings, error) {
	s := wsSettings{tokenPath: "data.token", timeout: defaultWSTimeout, maxMessage: defaultWSMaxMessage, closeOnExpiry: true}
	if c == nil {
		return s, nil
	}
	if c.TokenPath != "" {
		if slices.Contains(strings.Split(c.TokenPath, "."), "") {
			return s, fmt.Errorf("websocket token_path %q has an empty segment", c.TokenPath)
		}
		s.tokenPath = c.TokenPath
	}
	switch {
	case c.Timeout < 0:
		return s, errors.New("websocket timeout must not be negative")
	case c.Timeout > 0:
		s.timeout = time.Duration(c.Timeout)
	}
	switch {
	case c.MaxMessage < 0 || c.MaxMessage > maxWSMaxMessage:
		return s, fmt.Errorf("websocket max_message %d is out of range: use 1 to %d bytes", c.MaxMessage, maxWSMaxMessage)
	case c.MaxMessage > 0:
		s.maxMessage = c.MaxMessage
	}
	if c.CloseOnExpiry != nil {
		s.closeOnExpiry = *c.CloseOnExpiry
	}
	return s, nil
}

// isWebsocket reports whether r is a complete websocket opening handshake:
// an HTTP/1.1 upgrade (RFC 6455 §4.2.1: GET, Connection: Upgrade, Upgrade:
// websocket, version 13 and a 16-byte key), or an HTTP/2 extended CONNECT
// (RFC 8441 §5), which Go's HTTP/2 server accepts only when
// GODEBUG=http2xconnect=1. Only such a handshake goes on without a token: a
// request that merely carries Upgrade headers gets the usual 401 and never
// reaches the next handler.
func isWebsocket(r *http.Request) bool {
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return false
	}
	switch r.ProtoMajor {
	case 1:
		return r.Method == http.MethodGet &&
			httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") &&
			httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket") &&
			validWebsocketKey(r.Header.Values("Sec-WebSocket-Key"))
	case 2:
		return r.Method == http.MethodConnect && r.Header.Get(":protocol") == "websocket"
	}
	return false
}

// validWebsocketKey: exactly one Sec-WebSocket-Key, the base64 of 16 bytes.
func validWebsocketKey(keys []string) bool {
	if len(keys) != 1 {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(keys[0])
	return err == nil && len(nonce) == 16
}

// serveWebsocket passes a websocket handshake that carries no token on to
// next, which will take over the connection; the first message is
// authenticated there.
func (h *Handler) serveWebsocket(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, next caddyhttp.Handler) error {
	// The rule's force and remove come too late for the handshake: strip
	// what they edit, or a client could hand the backend its own
	// X-User-Id and authenticate as someone else in its first message.
	strip := ruleEnv{r: r}
	for _, t := range h.program.handshakeStrip {
		strip.remove(t)
	}
	ww := &wsResponseWriter{ResponseWriter: w, h: h, r: r, repl: repl}
	if r.ProtoMajor == 2 {
		// Over HTTP/2 the stream is the request body and the response:
		// reverse_proxy reads the one and writes the other, no hijack.
		ww.h2 = h.newSession(r, repl, &h2Stream{body: r.Body, w: w, rc: http.NewResponseController(w), r: r})
		r.Body = &wsBody{ww.h2}
	}
	err := next.ServeHTTP(ww, r)
	switch {
	case ww.h2 != nil && ww.h2.neverSwitched():
		// A backend's own 200 to the extended CONNECT, never read as a
		// websocket: what it answered stays behind the guard.
		clear(w.Header())
		return h.refuse(w, repl, errTokenMissing)
	case ww.refused:
		return nil // answered with the 401 already
	case err != nil && !ww.wroteHeader:
		// An error instead of a switch (a file_server's 404, a proxy's
		// 502) would tell a client without a token what is behind us.
		return h.refuse(w, repl, errTokenMissing)
	}
	return err
}

func (h *Handler) newSession(r *http.Request, repl *caddy.Replacer, conn net.Conn) *wsSession {
	return &wsSession{
		h: h, r: r, repl: repl, conn: conn,
		start:   time.Now(),
		decided: make(chan struct{}),
		fm:      firstMessage{maxMessage: h.ws.maxMessage},
	}
}

// wsResponseWriter stands between the next handler and the client while a
// websocket handshake without a token goes through. It lets only the switch
// to the websocket protocol out, and hands the handler a connection that
// authenticates the first message.
type wsResponseWriter struct {
	http.ResponseWriter
	h    *Handler
	r    *http.Request
	repl *caddy.Replacer
	// h2 is the session of an HTTP/2 websocket, set from the start.
	h2 *wsSession

	wroteHeader, refused bool
}

func (w *wsResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader passes 101 Switching Protocols (200 over HTTP/2); any other
// response would be the next handler answering a request nobody
// authenticated (a client adding Upgrade headers to an ordinary request to
// skip the token), so it becomes the 401 the request would have had.
func (w *wsResponseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code == http.StatusSwitchingProtocols && w.h2 == nil {
		w.wroteHeader = true
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if code == http.StatusOK && w.h2 != nil && caddyhttp.GetVar(w.r.Context(), h2WebsocketVar) != nil {
		// reverse_proxy is switching this stream to the websocket protocol.
		// Everything written from now on is held until the first message
		// is accepted. The 200 itself waits for the first read of the
		// stream: reverse_proxy answers an ordinary 200 from the backend
		// the same way, but never reads the stream then, and that answer
		// (its status and headers) must become the 401 (serveWebsocket).
		w.wroteHeader = true
		w.h2.fm.deflate = deflateNegotiated(w.ResponseWriter.Header())
		w.h2.mu.Lock()
		w.h2.switchPending = true
		w.h2.mu.Unlock()
		return
	}
	if code < 200 {
		return // other informational responses (103 Early Hints) are dropped
	}
	w.wroteHeader, w.refused = true, true
	hdr := w.ResponseWriter.Header()
	clear(hdr)
	hdr.Set("WWW-Authenticate", `Bearer realm="`+w.h.Realm+`"`)
	hdr.Set("Content-Length", "0")
	w.repl.Set(phError, errTokenMissing.description)
	if c := w.h.logger.Check(zapcore.DebugLevel, "websocket handshake not switched; refused for want of a token"); c != nil {
		c.Write(zap.Int("next_status", code))
	}
	w.ResponseWriter.WriteHeader(http.StatusUnauthorized)
}

func (w *wsResponseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.refused {
		return len(p), nil // the body of a refused response is dropped
	}
	if w.h2 != nil {
		return w.h2.write(p)
	}
	return w.ResponseWriter.Write(p)
}

// FlushError keeps flushes in order with the session's own writes (the
// close frames), which come from another goroutine.
func (w *wsResponseWriter) FlushError() error {
	s := w.h2
	if s != nil && !s.passthrough.Load() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.switchPending {
			return nil // nothing is sent before the 200
		}
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes over the client connection for the next handler (Caddy's
// reverse_proxy reaches it through http.ResponseController) and returns a
// connection whose reads authenticate the first message.
func (w *wsResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.refused || w.h2 != nil {
		return nil, nil, http.ErrNotSupported
	}
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	s := w.h.newSession(w.r, w.repl, conn)
	s.fm.deflate = deflateNegotiated(w.ResponseWriter.Header())
	// Bytes the server read ahead are the start of the client's stream.
	if n := brw.Reader.Buffered(); n > 0 {
		pre, _ := brw.Reader.Peek(n)
		s.fm.raw = append(make([]byte, 0, n+4096), pre...)
	}
	c := &wsConn{Conn: conn, s: s}
	// A fresh reader: nothing buffered that could bypass c, whose reads
	// authenticate; writes go through c too, so they are held until then.
	return c, bufio.NewReadWriter(bufio.NewReaderSize(c, 16), bufio.NewWriterSize(c, 16)), nil
}

// wsSession is one websocket being authenticated by its first message.
type wsSession struct {
	h    *Handler
	r    *http.Request
	repl *caddy.Replacer
	conn net.Conn
	// start is when the connection was taken over; the timeout runs from it.
	start time.Time

	// Read side: only the next handler's reading goroutine touches these.
	fm      firstMessage
	authed  bool
	failure error  // why authentication failed; reads keep returning it
	pending []byte // bytes read while authenticating, still to hand over
	// ending is set once the session is closed by expiry: reads then drain
	// the client's last bytes instead of passing them on.
	ending atomic.Bool

	// passthrough is set when writes need no more care: authenticated, and
	// no expiry to watch.
	passthrough atomic.Bool

	mu      sync.Mutex
	decided chan struct{} // closed on the verdict
	ok      bool          // the verdict
	failing bool          // refused; the client is reading its close frame
	held    []byte        // what the backend sent before the verdict
	tracker frameTracker  // backend frame boundaries, while expiry is watched
	expired bool          // exp has passed; close at the next frame boundary
	closed  bool
	timers  []*time.Timer

	// switchPending is set over HTTP/2 between reverse_proxy's 200 and the
	// first read of the stream, when the 200 is actually sent; overflow
	// when the backend wrote more than wsHoldLimit meanwhile (dropped: a
	// backend that switched has not had the time to).
	switchPending, overflow bool
}

// wsConn is the client connection as the next handler sees it.
type wsConn struct {
	net.Conn
	s *wsSession
}

func (c *wsConn) Read(p []byte) (int, error)  { return c.s.read(p) }
func (c *wsConn) Write(p []byte) (int, error) { return c.s.write(p) }
func (c *wsConn) Close() error                { return c.s.close() }

// CloseWrite keeps the half-close that reverse_proxy uses on a plain TCP
// connection (when the backend is done sending). It waits for the verdict,
// so that what the backend sent before it is delivered first.
func (c *wsConn) CloseWrite() error {
	<-c.s.decided
	if !c.s.ok {
		return nil // the refusal closes the connection itself
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// wsBody is the request body of an HTTP/2 websocket as the next handler
// sees it.
type wsBody struct{ s *wsSession }

func (b *wsBody) Read(p []byte) (int, error) { return b.s.read(p) }
func (b *wsBody) Close() error               { return b.s.close() }

func (s *wsSession) read(p []byte) (int, error) {
	if s.failure != nil {
		return 0, s.failure
	}
	if !s.authed {
		if err := s.authenticate(); err != nil {
			s.failure = err
			return 0, err
		}
	}
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	if s.ending.Load() {
		return 0, s.drain()
	}
	n, err := s.conn.Read(p)
	if s.ending.Load() {
		return 0, s.drain() // the session expired while this read waited
	}
	return n, err
}

func (s *wsSession) close() error {
	s.mu.Lock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	s.mu.Unlock()
	return s.conn.Close()
}

// sendSwitch sends the 200 of an HTTP/2 websocket held by WriteHeader, now
// that reverse_proxy reads the stream. It reports false when backend bytes
// were dropped meanwhile.
func (s *wsSession) sendSwitch() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.switchPending {
		return true
	}
	s.switchPending = false
	st := s.conn.(*h2Stream)
	st.w.WriteHeader(http.StatusOK)
	_ = st.rc.Flush()
	return !s.overflow
}

// neverSwitched reports (once the next handler is done) whether a 200 was
// held and the stream never read, and keeps it from being sent.
func (s *wsSession) neverSwitched() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := s.switchPending
	s.switchPending = false
	return pending
}

// authenticate reads the first message, verifies its token and evaluates
// the rule. On failure it has closed the websocket and returns why.
func (s *wsSession) authenticate() error {
	if !s.sendSwitch() {
		cerr := &closeError{closeInternalError, "backend sent too much before the first message"}
		s.fail(cerr)
		return cerr
	}
	_ = s.conn.SetReadDeadline(s.start.Add(s.h.ws.timeout))
	msg, cerr := s.readFirstMessage()
	var id *identity
	if cerr == nil {
		id, cerr = s.check(msg)
	}
	if cerr != nil {
		s.fail(cerr)
		return cerr
	}
	_ = s.conn.SetReadDeadline(time.Time{})
	s.authed = true
	s.pending = s.fm.raw
	s.succeed(id)
	return nil
}

func (s *wsSession) readFirstMessage() ([]byte, *closeError) {
	limit := s.h.ws.maxMessage + wsFrameSlack
	for {
		msg, err := s.fm.parse()
		if err != nil {
			var ce *closeError
			errors.As(err, &ce)
			return nil, ce
		}
		if msg != nil {
			return msg, nil
		}
		if len(s.fm.raw) >= limit {
			return nil, errTooBig
		}
		s.fm.raw = slices.Grow(s.fm.raw, min(4096, limit-len(s.fm.raw)))
		n, err := s.conn.Read(s.fm.raw[len(s.fm.raw):min(cap(s.fm.raw), limit)])
		s.fm.raw = s.fm.raw[:len(s.fm.raw)+n]
		if err != nil {
			if n > 0 {
				continue // parse what came with the error first
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, &closeError{closeTimeout, "no first message within " + s.h.ws.timeout.String()}
			}
			return nil, &closeError{0, "client left before its first message"}
		}
	}
}

// check finds, verifies and authorizes the token in the first message.
func (s *wsSession) check(msg []byte) (*identity, *closeError) {
	token := tokenAt(msg, s.h.ws.tokenPath)
	if token == "" {
		return nil, &closeError{closeUnauthorized, "no token at " + s.h.ws.tokenPath + " in the first message"}
	}
	id, err := s.h.verifier.verify(token)
	if err != nil {
		return nil, s.refusal(err)
	}
	claimsFor(s.r, s.repl).publish(s.repl, id, s.h.UserIDClaim)
	// args.params stays unset: over HTTP/2 the request body is the
	// websocket stream itself (reading it here would read the stream while
	// judging its first message), and over HTTP/1.1 the request may not be
	// read after the hijack.
	env := &ruleEnv{r: s.r, repl: s.repl, id: id, now: s.h.now, prog: s.h.program, paramsLoaded: true}
	if err := s.h.evaluate(env); err != nil {
		return nil, s.refusal(err)
	}
	return id, nil
}

// tokenAt returns the string at path in a JSON message, or "".
func tokenAt(msg []byte, path string) string {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	if dec.Decode(&doc) != nil || dec.More() {
		return ""
	}
	v, _ := lookupPath(doc, path)
	token, _ := v.(string)
	return token
}

// refusal maps a verification or rule error to its close code.
func (s *wsSession) refusal(err error) *closeError {
	var te *tokenError
	var rd *ruleDenied
	switch {
	case errors.As(err, &te):
		return &closeError{closeUnauthorized, te.Error()}
	case errors.As(err, &rd) && rd.unavailable:
		// The rule's webhook could not answer: like the 503 on HTTP, a
		// code that tells the client to retry.
		s.h.logger.Warn("rule webhook unavailable; websocket refused", zap.String("clause", rd.clause))
		return &closeError{closeTryAgainLater, rd.Error()}
	case errors.As(err, &rd):
		return &closeError{closeForbidden, rd.Error()}
	default:
		// An unexpected failure, not the client's fault (a webhook that
		// cannot answer is the 1013 above).
		s.h.logger.Error("authorizing websocket", zap.Error(err))
		return &closeError{closeInternalError, "internal error"}
	}
}

// fail closes a websocket that did not authenticate: the close frame, then
// a lingering close so that the client can read it (closing a socket with
// unread input resets it, and the client could lose the frame).
func (s *wsSession) fail(e *closeError) {
	s.repl.Set(phError, e.reason)
	if e.code == 0 {
		if c := s.h.logger.Check(zapcore.DebugLevel, "websocket ended"); c != nil {
			c.Write(zap.String("reason", e.reason), zap.String("remote_addr", s.r.RemoteAddr))
		}
	} else if c := s.h.logger.Check(zapcore.InfoLevel, "websocket refused"); c != nil {
		c.Write(zap.Int("close_code", e.code), zap.String("reason", e.reason), zap.String("remote_addr", s.r.RemoteAddr))
	}
	s.mu.Lock()
	s.held, s.failing = nil, true
	if e.code != 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(wsLinger))
		_, _ = s.conn.Write(closeFrame(e.code, e.reason))
	}
	s.mu.Unlock()
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	s.lingerUntilClose()
	// Only now may a backend write fail and make the next handler close the
	// connection: the client has had its chance to read the close frame.
	s.mu.Lock()
	close(s.decided)
	s.mu.Unlock()
}

// lingerUntilClose reads and drops what the client still sends until its
// close frame (the end of the closing handshake), its EOF, 1 MiB, or
// wsLinger. The parse stopped at a frame boundary, so the frames that follow
// can be followed.
func (s *wsSession) lingerUntilClose() {
	_ = s.conn.SetReadDeadline(time.Now().Add(wsLinger))
	var tr frameTracker
	tr.feed(s.fm.raw[s.fm.off:])
	buf := make([]byte, 4096)
	for total := 0; !tr.sawClose && total < 1<<20; {
		n, err := s.conn.Read(buf)
		tr.feed(buf[:n])
		total += n
		if err != nil {
			return
		}
	}
}

// succeed sends what the backend sent meanwhile and opens the way.
func (s *wsSession) succeed(id *identity) {
	watch := s.h.ws.closeOnExpiry && !id.expires.IsZero()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok = true
	if len(s.held) > 0 {
		n, _ := s.conn.Write(s.held)
		s.tracker.feed(s.held[:n])
		s.held = nil
	}
	close(s.decided)
	if !watch {
		s.passthrough.Store(true)
		return
	}
	at := id.expires.Add(s.h.verifier.leeway)
	s.timers = append(s.timers, time.AfterFunc(at.Sub(s.h.now()), s.expire))
}

func (s *wsSession) write(p []byte) (int, error) {
	if s.passthrough.Load() {
		return s.conn.Write(p)
	}
	s.mu.Lock()
	for {
		select {
		case <-s.decided:
		default:
			if s.failing {
				s.mu.Unlock()
				return len(p), nil // dropped: the client is being closed
			}
			if len(s.held)+len(p) <= wsHoldLimit {
				s.held = append(s.held, p...)
				s.mu.Unlock()
				return len(p), nil
			}
			if s.switchPending {
				// Most likely a backend's own answer that nobody will
				// read as a websocket: drop it rather than wait.
				s.overflow = true
				s.mu.Unlock()
				return len(p), nil
			}
			s.mu.Unlock()
			if !s.awaitVerdict() {
				return 0, os.ErrDeadlineExceeded
			}
			s.mu.Lock()
			continue
		}
		break
	}
	defer s.mu.Unlock()
	if !s.ok || s.ending.Load() {
		return 0, net.ErrClosed
	}
	n, err := s.conn.Write(p)
	s.tracker.feed(p[:n])
	if s.expired && s.tracker.atBoundary() {
		s.closeExpired()
	}
	return n, err
}

// awaitVerdict waits for the verdict, but not past when it is overdue: if
// nobody reads the first message (over HTTP/2, a backend that answered
// 200 instead of switching protocols), none would ever come, and a
// backend writing more than wsHoldLimit would pin its goroutine and
// connection for good.
func (s *wsSession) awaitVerdict() bool {
	t := time.NewTimer(time.Until(s.start.Add(s.h.ws.timeout + 2*wsLinger)))
	defer t.Stop()
	select {
	case <-s.decided:
		return true
	case <-t.C:
		return false
	}
}

// expire runs when the token's exp (plus leeway) passes.
func (s *wsSession) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ending.Load() {
		return
	}
	s.expired = true
	if s.tracker.atBoundary() {
		s.closeExpired()
		return
	}
	// The backend stopped inside a frame: do not wait for it forever.
	s.timers = append(s.timers, time.AfterFunc(wsLinger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.ending.Load() && !s.closed {
			s.ending.Store(true)
			_ = s.conn.Close()
		}
	}))
}

// closeExpired sends 4401 "token expired" between two backend frames. From
// then on nothing more passes either way; the client has wsLinger to answer
// the close. Called with s.mu held.
func (s *wsSession) closeExpired() {
	s.ending.Store(true)
	if c := s.h.logger.Check(zapcore.InfoLevel, "websocket closed: token expired"); c != nil {
		c.Write(zap.Int("close_code", closeUnauthorized), zap.String("remote_addr", s.r.RemoteAddr))
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(wsLinger))
	_, _ = s.conn.Write(closeFrame(closeUnauthorized, "token expired"))
	_ = s.conn.SetReadDeadline(time.Now().Add(wsLinger))
}

// drain reads and drops what the client still sends after an expiry close,
// until it closes or wsLinger passes, then ends the session.
func (s *wsSession) drain() error {
	_, _ = io.CopyN(io.Discard, s.conn, 1<<20)
	return errWSExpired
}

var errWSExpired = errors.New("websocket closed: token expired")

// h2WebsocketVar is the request variable in which Caddy's reverse_proxy
// keeps the stream of an HTTP/2 websocket it is switching protocols for
// (reverseproxy.go). A 200 to an extended CONNECT from any other handler is
// refused like a non-101 answer to an HTTP/1.1 upgrade.
const h2WebsocketVar = "extended_connect_websocket_body"

// h2Stream is an HTTP/2 websocket stream (RFC 8441) as a net.Conn: the
// request body carries what the client sends, the response what it gets.
type h2Stream struct {
	body io.ReadCloser
	w    http.ResponseWriter
	rc   *http.ResponseController
	r    *http.Request
}

func (c *h2Stream) Read(p []byte) (int, error) { return c.body.Read(p) }

func (c *h2Stream) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

func (c *h2Stream) Close() error                       { return c.body.Close() }
func (c *h2Stream) LocalAddr() net.Addr                { return streamAddr("local") }
func (c *h2Stream) RemoteAddr() net.Addr               { return streamAddr(c.r.RemoteAddr) }
func (c *h2Stream) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *h2Stream) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }
func (c *h2Stream) SetDeadline(t time.Time) error {
	return errors.Join(c.rc.SetReadDeadline(t), c.rc.SetWriteDeadline(t))
}

type streamAddr string

func (a streamAddr) Network() string { return "h2" }
func (a streamAddr) String() string  { return string(a) }
