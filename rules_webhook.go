package jwtguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"

	"github.com/caddyserver/caddy/v2"
)

// A webhook POSTs JSON to a URL with the caller's token as Bearer and
// passes on a 2xx answer with a JSON body, which it stores for later
// clauses. Beyond Space Cloud: a timeout, a cap on the answer's size, and
// no redirects (a redirect is a refusal, so a compromised or misconfigured
// hook cannot bounce the caller's token elsewhere).
const (
	defaultWebhookTimeout = 5 * time.Second
	maxWebhookResponse    = 1 << 20
)

func newWebhookClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxResponseHeaderBytes = 64 << 10
	tr.IdleConnTimeout = 30 * time.Second
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type webhookRule struct {
	url     string
	body    *bodyTemplate // nil: the args object
	store   []string
	timeout time.Duration
	client  *http.Client
	label   string
	deny    *ruleDenied
}

func (c *compiler) webhook(r *Rule, path, label string, deny *ruleDenied) (evaluator, error) {
	if r.Claims != "" {
		return nil, fmt.Errorf("%s: claims asks Space Cloud to sign a new token for the webhook; jwt_guard verifies tokens and holds no signing key (the webhook receives the caller's token)", label)
	}
	raw := caddy.NewReplacer().ReplaceKnown(r.URL, "")
	if raw == "" {
		return nil, fmt.Errorf("%s: webhook needs a url", label)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: webhook url %q is not an http or https URL", label, r.URL)
	}
	w := &webhookRule{url: raw, label: label, deny: deny, timeout: time.Duration(r.Timeout)}
	if w.timeout < 0 {
		return nil, fmt.Errorf("%s: timeout must not be negative", label)
	}
	if w.timeout == 0 {
		w.timeout = defaultWebhookTimeout
	}
	if w.body, err = compileBodyTemplate(r, label); err != nil {
		return nil, err
	}
	if w.store, err = compileStore(r.Store); err != nil {
		return nil, fmt.Errorf("%s: store %w", label, err)
	}
	if c.prog.client == nil {
		c.prog.client = newWebhookClient()
	}
	w.client = c.prog.client
	return w, nil
}

func (w *webhookRule) eval(env *ruleEnv) error {
	var body []byte
	if w.body != nil {
		b, err := w.body.render(env)
		if err != nil {
			return &ruleDenied{message: w.deny.message, clause: w.label + ": webhook request template: " + err.Error()}
		}
		body = b
	} else {
		b, err := json.Marshal(env.argsObject())
		if err != nil {
			return &ruleDenied{message: w.deny.message, clause: w.label + ": webhook body: " + err.Error()}
		}
		body = b
	}
	ctx, cancel := context.WithTimeout(env.r.Context(), w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return w.unavailable(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if env.id != nil {
		req.Header.Set("Authorization", "Bearer "+env.id.token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return w.unavailable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The hook decided: a refusal, not an outage.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return &ruleDenied{message: w.deny.message, clause: fmt.Sprintf("%s: webhook answered %d", w.label, resp.StatusCode)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxWebhookResponse+1))
	if err != nil {
		return w.unavailable(err)
	}
	if len(data) > maxWebhookResponse {
		return w.unavailable(fmt.Errorf("answer is larger than %d bytes", maxWebhookResponse))
	}
	result, err := decodeExact(data)
	if err != nil {
		return w.unavailable(errors.New("answer is not JSON"))
	}
	env.store(w.store, result)
	return nil
}

func (w *webhookRule) unavailable(err error) error {
	// The clause is logged; the URL may carry a credential ({env.*}).
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &ruleDenied{message: w.deny.message, clause: w.label + ": webhook unavailable: " + err.Error(), unavailable: true}
}

// bodyTemplate is a compiled requestTemplate.
type bodyTemplate struct {
	t      *template.Template
	format string // json or string
}

func compileBodyTemplate(r *Rule, label string) (*bodyTemplate, error) {
	switch r.Template {
	case "", "go":
	default:
		return nil, fmt.Errorf("%s: template %q: the only templating engine is go", label, r.Template)
	}
	switch r.OutputFormat {
	case "", "json", "string":
	case "yaml":
		return nil, fmt.Errorf("%s: outputFormat yaml is not supported; render JSON (outputFormat json)", label)
	default:
		return nil, fmt.Errorf("%s: unknown outputFormat %q (want json or string)", label, r.OutputFormat)
	}
	if r.RequestTemplate == "" {
		return nil, nil
	}
	funcs := sprig.TxtFuncMap()
	// As in Caddy's templates: a template must not read the environment.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["marshalJSON"] = func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}
	t, err := template.New(label).Funcs(funcs).Parse(r.RequestTemplate)
	if err != nil {
		return nil, fmt.Errorf("%s: requestTemplate: %w", label, err)
	}
	format := r.OutputFormat
	if format == "" {
		format = "json"
	}
	return &bodyTemplate{t: t, format: format}, nil
}

// render executes the template over .args, .auth and .token (as Space
// Cloud's GoTemplate) and returns JSON.
func (b *bodyTemplate) render(env *ruleEnv) ([]byte, error) {
	// A copy: Sprig's set and unset mutate maps, and the claims are shared
	// by every request with the same token.
	args := jsonValue(env.argsObject()).(map[string]any)
	data := map[string]any{"args": args, "auth": args["auth"], "token": args["token"]}
	var out strings.Builder
	if err := b.t.Execute(&out, data); err != nil {
		return nil, err
	}
	if b.format == "string" {
		return json.Marshal(out.String())
	}
	s := strings.TrimSpace(out.String())
	if !json.Valid([]byte(s)) {
		return nil, errors.New("output is not JSON")
	}
	return []byte(s), nil
}

// compileStore checks where a result goes: args.<name>[.<more>], outside
// the request's own variables.
func compileStore(s string) ([]string, error) {
	if s == "" {
		s = "args.result"
	}
	path, ok := strings.CutPrefix(s, "args.")
	if !ok {
		return nil, fmt.Errorf("%q must start with args.", s)
	}
	segs := strings.Split(path, ".")
	for _, p := range segs {
		if p == "" || strings.ContainsAny(p, "[]()") {
			return nil, fmt.Errorf("%q: a store path is plain names separated by dots", s)
		}
	}
	switch segs[0] {
	case "auth", "token", "params", "query":
		return nil, fmt.Errorf("%q would overwrite the request's own args.%s; store under another name, like args.result", s, segs[0])
	}
	return segs, nil
}

func (env *ruleEnv) store(path []string, v any) {
	if env.stored == nil {
		env.stored = make(map[string]any)
	}
	obj := env.stored
	for _, k := range path[:len(path)-1] {
		next, ok := obj[k].(map[string]any)
		if !ok {
			next = make(map[string]any)
			obj[k] = next
		}
		obj = next
	}
	obj[path[len(path)-1]] = v
}

// transformRule renders requestTemplate, stores it, and evaluates clause.
type transformRule struct {
	body   *bodyTemplate
	store  []string
	clause evaluator
	label  string
	deny   *ruleDenied
	errMsg string
}

func (c *compiler) transform(r *Rule, path, label string) (evaluator, error) {
	if r.RequestTemplate == "" {
		return nil, fmt.Errorf("%s: transform needs a requestTemplate", label)
	}
	if r.Clause == nil {
		return nil, fmt.Errorf("%s: transform needs a clause to evaluate", label)
	}
	t := &transformRule{label: label, errMsg: r.Error}
	var err error
	if t.body, err = compileBodyTemplate(r, label); err != nil {
		return nil, err
	}
	if t.store, err = compileStore(r.Store); err != nil {
		return nil, fmt.Errorf("%s: store %w", label, err)
	}
	if t.clause, err = c.node(r.Clause, path+".clause"); err != nil {
		return nil, err
	}
	msg := r.Error
	if msg == "" {
		msg = defaultDenyMessage
	}
	t.deny = &ruleDenied{message: msg, clause: label}
	return t, nil
}

func (t *transformRule) eval(env *ruleEnv) error {
	b, err := t.body.render(env)
	if err != nil {
		return &ruleDenied{message: t.deny.message, clause: t.label + ": requestTemplate: " + err.Error()}
	}
	v, err := decodeExact(b)
	if err != nil {
		return t.deny
	}
	env.store(t.store, v)
	return withError(t.clause.eval(env), t.errMsg)
}
