package jwtguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// Remote key sources: a JWKS URL, or an OpenID Connect issuer whose
// discovery document names one. Keys are fetched in the background, never
// on the request path except for the rate-limited unknown-kid refetch.

// Defaults and bounds for remote key sources.
const (
	defaultRefreshInterval    = 10 * time.Minute
	defaultMinRefetchInterval = 30 * time.Second
	defaultFetchTimeout       = 5 * time.Second
	defaultMaxResponseSize    = 1 << 20
	// maxMaxResponseSize bounds max_response_size: a key set is kilobytes.
	maxMaxResponseSize = 64 << 20
	// minRefreshInterval is the smallest refresh_interval accepted.
	minRefreshInterval = time.Second
	// minMaxAge is the shortest Cache-Control max-age honoured, so a
	// server sending max-age=0 does not turn us into a polling loop.
	minMaxAge = time.Minute
	// retryBase and retryMax bound the backoff after a failed fetch.
	retryBase    = time.Second
	retryMax     = 5 * time.Minute
	maxRedirects = 3
)

// remotePool shares a remote source between configs: a reload that keeps
// the same secret keeps its keys (no refetch, and no gap if the provider
// is down at that moment), and the refresher stops when the last config
// using it is cleaned up.
var remotePool = caddy.NewUsagePool()

// remoteConfig is everything that defines a remote source; configs with
// equal remoteConfigs share one source.
type remoteConfig struct {
	kind       string // algJWKS or algOIDC
	url        string // the JWKS URL, or the issuer for OIDC
	tmpl       keyTemplate
	refresh    time.Duration
	minRefetch time.Duration
	timeout    time.Duration
	maxSize    int64
	allowHTTP  bool
}

func (c remoteConfig) poolKey() string { return fmt.Sprintf("%#v", c) }

// remoteKeys is a cached, self-refreshing JWKS. It implements keySource
// and refetcher.
type remoteKeys struct {
	cfg    remoteConfig
	client *http.Client
	now    func() time.Time
	logger atomic.Pointer[zap.Logger]
	set    atomic.Pointer[jwkSet]

	mu       sync.Mutex
	inflight *fetchCall
	// lastKIDFetch is when an unknown kid last caused a fetch.
	lastKIDFetch time.Time
	// jwksURI is the JWKS URL: cfg.url, or what discovery found.
	jwksURI  string
	reported map[jwkProblem]bool

	ctx    context.Context
	cancel context.CancelFunc
	// ready is closed after the first fetch attempt, done when the
	// refresher has returned.
	ready chan struct{}
	done  chan struct{}
}

// fetchCall is one fetch that concurrent callers share.
type fetchCall struct {
	done chan struct{}
	err  error
	// next is when to refresh after a success (from Cache-Control).
	next time.Duration
}

func newRemoteKeys(cfg remoteConfig, logger *zap.Logger) *remoteKeys {
	r := &remoteKeys{
		cfg: cfg, now: time.Now, reported: map[jwkProblem]bool{},
		ready: make(chan struct{}), done: make(chan struct{}),
	}
	if cfg.kind == algJWKS {
		r.jwksURI = cfg.url
	}
	r.logger.Store(logger)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = cfg.timeout
	r.client = &http.Client{
		Transport: tr,
		Timeout:   cfg.timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			// A redirect must not downgrade to plain HTTP.
			return checkRemoteURL(req.URL, cfg.allowHTTP)
		},
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// start launches the refresher.
func (r *remoteKeys) start() { go r.refresher() }

// Destruct stops the refresher; remotePool calls it when the last config
// using this source is cleaned up.
func (r *remoteKeys) Destruct() error {
	r.cancel()
	<-r.done
	r.client.CloseIdleConnections()
	return nil
}

// waitReady waits for the first fetch attempt, which is bounded by the
// fetch timeout, or for ctx to end.
func (r *remoteKeys) waitReady(ctx context.Context) {
	select {
	case <-r.ready:
	case <-ctx.Done():
	}
}

func (r *remoteKeys) lookup(alg, kid string, dst []*verifyKey) []*verifyKey {
	return r.set.Load().lookup(alg, kid, dst)
}

// refetch is called when no key matched a token. An unknown kid (or any
// token while we have no keys yet) may mean the provider rotated: fetch
// once, shared by all concurrent callers and at most once per
// min_refetch_interval, so a flood of random kids costs the provider at
// most one request per interval. It reports whether a new lookup may
// find a key.
func (r *remoteKeys) refetch(alg, kid string) bool {
	if info, ok := algorithms[alg]; !ok || info.family == familyHMAC {
		return false
	}
	set := r.set.Load()
	if set != nil && (kid == "" || len(set.byKID[kid]) > 0) {
		return false
	}
	c := r.fetch(true)
	if c == nil {
		return false
	}
	<-c.done
	return c.err == nil
}

// fetch runs a fetch, or joins the one in flight. With kidTriggered it
// returns nil instead when the unknown-kid rate limit forbids a fetch.
func (r *remoteKeys) fetch(kidTriggered bool) *fetchCall {
	r.mu.Lock()
	if c := r.inflight; c != nil {
		r.mu.Unlock()
		return c
	}
	if kidTriggered {
		now := r.now()
		if !r.lastKIDFetch.IsZero() && now.Sub(r.lastKIDFetch) < r.cfg.minRefetch {
			r.mu.Unlock()
			return nil
		}
		r.lastKIDFetch = now
	}
	c := &fetchCall{done: make(chan struct{})}
	r.inflight = c
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.timeout)
	c.next, c.err = r.refreshKeys(ctx, !kidTriggered)
	cancel()

	r.mu.Lock()
	r.inflight = nil
	r.mu.Unlock()
	close(c.done)
	return c
}

// refresher keeps the keys fresh until the source is destroyed: after a
// success it waits for the server's max-age (within bounds) or
// refresh_interval; after a failure it keeps the last good keys and
// retries with exponential backoff.
func (r *remoteKeys) refresher() {
	defer close(r.done)
	failures := 0
	for first := true; ; first = false {
		c := r.fetch(false)
		<-c.done
		var wait time.Duration
		switch {
		case r.ctx.Err() != nil:
			return
		case c.err != nil:
			failures++
			wait = backoff(failures, r.cfg.refresh)
			msg := "refreshing remote keys failed; keeping the last good keys"
			if r.set.Load() == nil {
				msg = "remote keys are not available yet; tokens for this secret are refused until they arrive"
			}
			r.logger.Load().Warn(msg, zap.String("source", r.cfg.tmpl.label), zap.Error(c.err),
				zap.Int("failures", failures), zap.Duration("retry_in", wait))
		default:
			if failures > 0 {
				r.logger.Load().Info("remote keys fetched again", zap.String("source", r.cfg.tmpl.label),
					zap.Int("failed_attempts", failures))
			}
			failures = 0
			wait = c.next
		}
		if first {
			close(r.ready)
		}
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff is 1s, 2s, 4s, ... up to the smaller of 5m and the refresh
// interval, with ±20% jitter so that many servers do not retry in step.
func backoff(failures int, refresh time.Duration) time.Duration {
	limit := min(retryMax, refresh)
	d := limit
	if failures < 20 {
		d = min(retryBase<<(failures-1), limit)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// refreshKeys fetches the JWKS (after discovery for OIDC) and installs
// it. It returns when to refresh next.
func (r *remoteKeys) refreshKeys(ctx context.Context, rediscover bool) (time.Duration, error) {
	r.mu.Lock()
	jwksURI := r.jwksURI
	r.mu.Unlock()
	if r.cfg.kind == algOIDC && (jwksURI == "" || rediscover) {
		uri, err := r.discover(ctx)
		if err != nil {
			return 0, err
		}
		jwksURI = uri
		r.mu.Lock()
		r.jwksURI = uri
		r.mu.Unlock()
	}
	body, header, err := r.get(ctx, jwksURI)
	if err != nil {
		return 0, err
	}
	set, problems, err := parseJWKS(body, r.cfg.tmpl)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", redactURL(jwksURI), err)
	}
	r.report(problems)
	if len(set.keys) == 0 {
		// Most likely a broken deploy at the provider; an empty set would
		// refuse every token, so keep what we have.
		return 0, fmt.Errorf("%s: JWKS has no usable signing keys", redactURL(jwksURI))
	}
	r.install(set)
	return nextRefresh(header, r.cfg.refresh, r.cfg.minRefetch), nil
}

// install swaps in a new set. Keys that are unchanged keep their
// *verifyKey, so cached verdicts for them stay; keys that are gone are
// marked removed, which the verifier's token cache checks, so a key the
// provider withdrew stops verifying at once, cached tokens included.
func (r *remoteKeys) install(set *jwkSet) {
	old := r.set.Load()
	if old != nil {
		for i, k := range set.keys {
			for _, o := range old.keys {
				if sameKey(k, o) {
					set.keys[i] = o
					break
				}
			}
		}
		set.reindex()
		for _, o := range old.keys {
			if !containsKey(set.keys, o) {
				o.removed.Store(true)
			}
		}
	}
	r.set.Store(set)
}

func containsKey(keys []*verifyKey, k *verifyKey) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func (s *jwkSet) reindex() {
	s.byKID = map[string][]*verifyKey{}
	s.byAlg = map[string][]*verifyKey{}
	for _, k := range s.keys {
		if k.kid != "" {
			s.byKID[k.kid] = append(s.byKID[k.kid], k)
		}
		s.byAlg[k.alg] = append(s.byAlg[k.alg], k)
	}
}

// report logs each problem with a key once per source, not on every
// refresh.
func (r *remoteKeys) report(problems []jwkProblem) {
	for _, p := range problems {
		r.mu.Lock()
		seen := r.reported[p]
		if len(r.reported) >= 1024 {
			// A set whose kids change on every fetch must not grow this forever.
			clear(r.reported)
		}
		r.reported[p] = true
		r.mu.Unlock()
		if seen {
			continue
		}
		log := r.logger.Load()
		fields := []zap.Field{zap.String("source", r.cfg.tmpl.label), zap.String("kid", p.kid), zap.String("problem", p.msg)}
		switch p.level {
		case "error":
			log.Error("JWKS key skipped", fields...)
		case "warn":
			log.Warn("JWKS key skipped", fields...)
		default:
			log.Debug("JWKS key skipped", fields...)
		}
	}
}

// nextRefresh honours Cache-Control max-age, bounded below by the larger
// of 1m and min_refetch_interval and above by refresh_interval; without
// a usable max-age it is refresh_interval.
func nextRefresh(h http.Header, refresh, minRefetch time.Duration) time.Duration {
	maxAge, ok := cacheMaxAge(h.Values("Cache-Control"))
	if !ok {
		return refresh
	}
	lower := min(max(minMaxAge, minRefetch), refresh)
	return min(max(maxAge, lower), refresh)
}

// cacheMaxAge reads max-age; no-store and no-cache make it unusable.
func cacheMaxAge(values []string) (time.Duration, bool) {
	var (
		age   time.Duration
		found bool
	)
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0, false
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0, false
				}
				age, found = time.Duration(min(n, 1<<30))*time.Second, true
			}
		}
	}
	return age, found
}

// get fetches a URL with the size cap; the caller's ctx carries the
// timeout.
func (r *remoteKeys) get(ctx context.Context, rawURL string) ([]byte, http.Header, error) {
	shown := redactURL(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: invalid request", shown)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	req.Header.Set("User-Agent", "caddy-jwt-guard")
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL (a redirect's too); keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("GET %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, nil, fmt.Errorf("GET %s: HTTP status %d", shown, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.maxSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading response: %w", shown, err)
	}
	if int64(len(body)) > r.cfg.maxSize {
		return nil, nil, fmt.Errorf("GET %s: response is larger than max_response_size (%d bytes)", shown, r.cfg.maxSize)
	}
	return body, resp.Header, nil
}

// redactURL is a URL as logs may show it: without user info, query or
// fragment, where providers' URLs sometimes carry an API key.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	hidden := u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != ""
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if hidden {
		return u.String() + "?(redacted)"
	}
	return u.String()
}

// parseRemoteURL checks a JWKS or issuer URL from the configuration.
func parseRemoteURL(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s is not an absolute http(s) URL", redactURL(raw))
	}
	return u, checkRemoteURL(u, allowHTTP)
}

// checkRemoteURL allows https, and plain http only to a loopback host or
// with allow_http: keys fetched in clear text can be replaced by anyone on
// the path, who could then mint tokens.
func checkRemoteURL(u *url.URL, allowHTTP bool) error {
	if u.User != nil {
		return errors.New("the URL must not carry credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowHTTP || isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s uses plain http; use https, or set allow_http if the network path is trusted", redactURL(u.String()))
	default:
		return fmt.Errorf("%s: scheme %q is not http(s)", redactURL(u.String()), u.Scheme)
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Interface guards
var (
	_ keySource        = (*remoteKeys)(nil)
	_ refetcher        = (*remoteKeys)(nil)
	_ caddy.Destructor = (*remoteKeys)(nil)
)

// maxFetchTimeout bounds timeout: Caddy waits this long at startup.
const maxFetchTimeout = time.Minute

// remoteConfigFor validates a jwks or oidc secret whose value (the URL)
// has been expanded, and fills in the defaults.
func remoteConfigFor(s *Secret, kind, value string) (remoteConfig, error) {
	cfg := remoteConfig{
		kind: kind, url: value,
		refresh:    time.Duration(s.RefreshInterval),
		minRefetch: time.Duration(s.MinRefetchInterval),
		timeout:    time.Duration(s.Timeout),
		maxSize:    s.MaxResponseSize,
		allowHTTP:  s.AllowHTTP,
		tmpl:       keyTemplate{kid: s.KID, issuer: s.Issuer, audience: s.Audience, label: kind + " " + value},
	}
	if value == "" {
		return cfg, fmt.Errorf("the %s URL is empty", kind)
	}
	if _, err := parseRemoteURL(value, s.AllowHTTP); err != nil {
		return cfg, err
	}
	if s.AllowShortSecret {
		return cfg, errors.New("allow_short_secret applies to HMAC secrets only")
	}
	if len(s.KID) > maxKIDLength {
		return cfg, fmt.Errorf("kid is longer than %d bytes", maxKIDLength)
	}
	if kind == algOIDC {
		if s.Issuer != "" && s.Issuer != value {
			return cfg, fmt.Errorf("issuer %q differs from the oidc issuer URL %q; leave it out", s.Issuer, value)
		}
		cfg.tmpl.issuer = value
	}
	switch {
	case cfg.refresh == 0:
		cfg.refresh = defaultRefreshInterval
	case cfg.refresh < minRefreshInterval:
		return cfg, fmt.Errorf("refresh_interval %s is too short: at least %s", cfg.refresh, minRefreshInterval)
	}
	switch {
	case cfg.minRefetch == 0:
		cfg.minRefetch = defaultMinRefetchInterval
	case cfg.minRefetch < 0:
		return cfg, errors.New("min_refetch_interval must not be negative")
	}
	switch {
	case cfg.timeout == 0:
		cfg.timeout = defaultFetchTimeout
	case cfg.timeout < 0 || cfg.timeout > maxFetchTimeout:
		return cfg, fmt.Errorf("timeout %s is out of range: use up to %s", cfg.timeout, maxFetchTimeout)
	}
	switch {
	case cfg.maxSize == 0:
		cfg.maxSize = defaultMaxResponseSize
	case cfg.maxSize < 0 || cfg.maxSize > maxMaxResponseSize:
		return cfg, fmt.Errorf("max_response_size %d is out of range: use 1 to %d bytes", cfg.maxSize, maxMaxResponseSize)
	}
	return cfg, nil
}

// acquireRemote returns the shared source for cfg, starting it if it is
// new, and waits (at most the fetch timeout) for its first fetch. The
// caller must remotePool.Delete(cfg.poolKey()) when done with it, even
// after an error.
func acquireRemote(ctx caddy.Context, cfg remoteConfig, logger *zap.Logger) (*remoteKeys, error) {
	val, _, err := remotePool.LoadOrNew(cfg.poolKey(), func() (caddy.Destructor, error) {
		r := newRemoteKeys(cfg, logger)
		r.start()
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	r := val.(*remoteKeys)
	// The newest config's logger, so logs follow a logging reload.
	r.logger.Store(logger)
	r.waitReady(ctx)
	if r.set.Load() == nil {
		logger.Warn("no keys from remote source at startup; tokens for this secret are refused until a fetch succeeds",
			zap.String("source", cfg.tmpl.label))
	}
	return r, nil
}
