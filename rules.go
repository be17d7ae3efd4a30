package jwtguard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Rule is a Space Cloud security rule (Space Cloud's config.Rule), accepted
// verbatim in Caddy JSON so that rules pasted from a Space Cloud config keep
// their meaning. Its keys are Space Cloud's (camelCase where Space Cloud
// writes them so), not Caddy's snake_case. Only the fields a rule's kind
// uses are read; the others are accepted and ignored, as in Space Cloud.
// F1, F2 and Value take per-request placeholders and URL load-time ones;
// no other field takes placeholders.
//
// The rule is compiled and type-checked when the config loads: an unknown
// rule, type or operator, a missing field, a string literal in a number
// match, an `in` against something that is not a list, or an empty
// `and`/`or` fails `caddy validate` with the path of the rule at fault.
type Rule struct {
	// ID is Space Cloud's rule ID; accepted and ignored.
	ID string `json:"id,omitempty"`

	// Rule is the kind: allow, deny, authenticated, match, and, or,
	// webhook, force, remove or transform. Space Cloud's query, encrypt,
	// decrypt, hash and graphql act on its databases and are refused.
	// Required.
	Rule string `json:"rule"`

	// Eval is a match's operator: == != < <= > >= in notIn (`notin` is
	// accepted too, as Space Cloud's code spells it). Required for a match.
	Eval string `json:"eval,omitempty"`

	// Type is a match's type: string, number, bool or date. Types are
	// strict: a claim "7" is not a number. Required for a match in JSON;
	// the Caddyfile's native form defaults to string.
	Type string `json:"type,omitempty"`

	// F1 is a match's left operand: a variable (args.auth.role,
	// utils.now()), a JSON literal, or a string with Caddy placeholders
	// ({http.request.uri.query.owner}) expanded per request.
	F1 json.RawMessage `json:"f1,omitempty"`

	// F2 is a match's right operand, like F1; for in and notIn a JSON list
	// (whose strings may be variables) or a variable holding an array.
	F2 json.RawMessage `json:"f2,omitempty"`

	// Clauses are the rules an and / or combines, in order. Required: at
	// least one.
	Clauses []*Rule `json:"clauses,omitempty"`

	// DB is Space Cloud's database alias for query rules; refused here.
	DB string `json:"db,omitempty"`

	// Col is Space Cloud's collection for query rules; refused here.
	Col string `json:"col,omitempty"`

	// Find is Space Cloud's query filter for query rules; refused here.
	Find json.RawMessage `json:"find,omitempty"`

	// URL is where a webhook POSTs. http or https; placeholders known at
	// load time ({env.*}) are expanded then. Required for a webhook.
	URL string `json:"url,omitempty"`

	// Fields lists what a remove deletes: args.query.headers.<Name>,
	// args.query.params.<name> or args.params.<path>; a string or a list.
	Fields json.RawMessage `json:"fields,omitempty"`

	// Field is what a force sets: args.query.headers.<Name>,
	// args.query.params.<name> or args.params.<path>. Host, Content-Length,
	// Transfer-Encoding and Connection cannot be set.
	Field string `json:"field,omitempty"`

	// Value is what a force sets Field to: a JSON literal, a variable, or a
	// string with placeholders expanded per request.
	Value json.RawMessage `json:"value,omitempty"`

	// Clause guards a force or remove (when it refuses, the action is
	// skipped and the rule passes) and is what a transform evaluates after
	// storing its result.
	Clause *Rule `json:"clause,omitempty"`

	// Name labels the rule in logs. No placeholders.
	Name string `json:"name,omitempty"`

	// Error, when set, replaces the refusal message of this rule and every
	// rule below it (the outermost one on the refusing path wins). It is
	// sent as the error_description and set as {http.auth.jwt_guard.error}.
	// Default: "access denied by rule". No placeholders.
	Error string `json:"error,omitempty"`

	// Store is where a webhook or transform stores its result for later
	// clauses, as an args.<name> variable. Default: args.result.
	Store string `json:"store,omitempty"`

	// Claims is Space Cloud's template for signing a new token for a
	// webhook; refused: jwt_guard holds no signing key.
	Claims string `json:"claims,omitempty"`

	// Template is the templating engine of RequestTemplate: go (the
	// default, and the only one).
	Template string `json:"template,omitempty"`

	// RequestTemplate is a Go text/template (with Sprig functions and
	// marshalJSON) rendering a webhook's request body or a transform's
	// result, over .args, .auth and .token. Default for a webhook: the args
	// object as JSON; required for a transform.
	RequestTemplate string `json:"requestTemplate,omitempty"`

	// OutputFormat is how RequestTemplate's output is read: json (the
	// default) or string.
	OutputFormat string `json:"outputFormat,omitempty"`

	// GraphQLQuery is Space Cloud's graphql rule query; refused here.
	GraphQLQuery string `json:"graphqlQuery,omitempty"`

	// GraphQLVariables are Space Cloud's graphql rule variables; refused
	// here.
	GraphQLVariables json.RawMessage `json:"graphqlVariables,omitempty"`

	// Timeout bounds a webhook call (not in Space Cloud). Default: 5s. No
	// placeholders.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// ruleEnv is what a rule sees of one request.
type ruleEnv struct {
	r    *http.Request
	repl *caddy.Replacer
	// id is the verified token; nil only under a rule that needs no token.
	id   *identity
	now  func() time.Time
	prog *program

	query        url.Values // parsed on first use
	params       any        // the JSON body, once loaded
	paramsLoaded bool
	paramsOK     bool
	paramsDirty  bool
	stored       map[string]any
	// err is a failure that is not the rule's decision (a body too large).
	err error
}

// ensureParams loads args.params on first use.
func (env *ruleEnv) ensureParams() {
	if env.paramsLoaded {
		return
	}
	env.paramsLoaded = true
	if err := env.loadParams(); err != nil && env.err == nil {
		env.err = err
	}
}

// finish hands an edited JSON body to the next handler.
func (env *ruleEnv) finish() {
	if !env.paramsDirty {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(env.params) != nil {
		return
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	env.r.Body = http.NoBody
	if len(body) > 0 {
		env.r.Body = readCloser{bytes.NewReader(body)}
	}
	env.r.ContentLength = int64(len(body))
	env.r.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// ruleDenied is a refusal of a valid token by the rule.
type ruleDenied struct {
	// message is sent as the error_description and set as the reason
	// placeholder; the rule's `error` replaces the default.
	message string
	// clause names the rule that refused, for the log.
	clause string
	// unavailable marks a refusal because a webhook could not answer
	// (unreachable, timed out, not JSON): 503 rather than 403.
	unavailable bool
}

func (d *ruleDenied) Error() string { return d.message }

const defaultDenyMessage = "access denied by rule"

// withError applies a rule's `error` to a refusal from below it.
func withError(err error, msg string) error {
	d, ok := err.(*ruleDenied)
	if msg == "" || !ok || err == nil {
		return err
	}
	return &ruleDenied{message: msg, clause: d.clause, unavailable: d.unavailable}
}

// evaluator is one compiled rule: nil means pass, *ruleDenied a refusal.
type evaluator interface {
	eval(env *ruleEnv) error
}

// program is a rule compiled at provision time.
type program struct {
	root evaluator
	// needsToken is false only for allow: every other rule wants a valid
	// token before it is even evaluated.
	needsToken bool
	// client makes webhook calls; nil when the rule has none.
	client *http.Client
	// handshakeStrip are the headers and query parameters some force or
	// remove edits: stripped from a first-message websocket's handshake,
	// which goes on before the rule can run.
	handshakeStrip []*target
}

func compileRule(r *Rule) (*program, error) {
	if r == nil {
		r = &Rule{Rule: "authenticated"}
	}
	p := &program{needsToken: r.Rule != "allow"}
	c := &compiler{prog: p}
	ev, err := c.node(r, "rule")
	if err != nil {
		return nil, err
	}
	p.root = ev
	return p, nil
}

type compiler struct {
	prog *program
}

func (c *compiler) node(r *Rule, path string) (evaluator, error) {
	if r == nil {
		return nil, fmt.Errorf("%s: missing (null)", path)
	}
	label := path
	if r.Name != "" {
		label = fmt.Sprintf("%s (%s)", path, r.Name)
	}
	msg := r.Error
	if msg == "" {
		msg = defaultDenyMessage
	}
	deny := &ruleDenied{message: msg, clause: label}
	switch r.Rule {
	case "allow", "authenticated":
		return passRule{}, nil
	case "deny":
		return denyRule{deny}, nil
	case "match":
		deny.clause = fmt.Sprintf("%s: match %s %s %s", label, compactRaw(r.F1), r.Eval, compactRaw(r.F2))
		return compileMatch(r, label, deny)
	case "and", "or":
		if len(r.Clauses) == 0 {
			return nil, fmt.Errorf("%s: %s needs at least one clause (Space Cloud would let an empty %s through)", label, r.Rule, r.Rule)
		}
		clauses := make([]evaluator, len(r.Clauses))
		for i, cl := range r.Clauses {
			ev, err := c.node(cl, fmt.Sprintf("%s.clauses[%d]", path, i))
			if err != nil {
				return nil, err
			}
			clauses[i] = ev
		}
		if r.Rule == "and" {
			return &andRule{clauses: clauses, errMsg: r.Error}, nil
		}
		return &orRule{clauses: clauses, errMsg: r.Error}, nil
	case "webhook":
		return c.webhook(r, path, label, deny)
	case "transform":
		return c.transform(r, path, label)
	case "force", "remove":
		return c.action(r, path, label)
	case "query", "encrypt", "decrypt", "hash":
		return nil, fmt.Errorf("%s: the %s rule acts on Space Cloud's database documents; an HTTP gateway has no documents (use match, webhook, force or remove)", label, r.Rule)
	case "graphql":
		return nil, fmt.Errorf("%s: the graphql rule queries Space Cloud's GraphQL layer, which an HTTP gateway does not have (use webhook)", label)
	case "":
		return nil, fmt.Errorf("%s: missing the rule name (allow, deny, authenticated, match, and, or, webhook, force, remove, transform)", path)
	default:
		return nil, fmt.Errorf("%s: unknown rule %q (want allow, deny, authenticated, match, and, or, webhook, force, remove or transform)", path, r.Rule)
	}
}

// compactRaw renders a raw operand for a log label.
func compactRaw(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "<missing>"
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

// decodeExact decodes configuration JSON keeping numbers exact.
func decodeExact(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

type passRule struct{}

func (passRule) eval(*ruleEnv) error { return nil }

type denyRule struct{ d *ruleDenied }

func (r denyRule) eval(*ruleEnv) error { return r.d }

// andRule stops at the first refusal.
type andRule struct {
	clauses []evaluator
	errMsg  string
}

func (a *andRule) eval(env *ruleEnv) error {
	for _, c := range a.clauses {
		if err := c.eval(env); err != nil {
			return withError(err, a.errMsg)
		}
	}
	return nil
}

// orRule passes at the first passing clause, else reports the last refusal.
type orRule struct {
	clauses []evaluator
	errMsg  string
}

func (o *orRule) eval(env *ruleEnv) error {
	var last error
	for _, c := range o.clauses {
		if last = c.eval(env); last == nil {
			return nil
		}
	}
	return withError(last, o.errMsg)
}
