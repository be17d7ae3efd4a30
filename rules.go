package jwtguard

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// Rule is a Space Cloud security rule (Space Cloud's config.Rule), accepted
// verbatim in Caddy JSON so that rules pasted from a Space Cloud config keep
// their meaning.
type Rule struct {
	// Rule names the rule: allow, deny or authenticated.
	Rule string `json:"rule"`

	// Error, when set, replaces the refusal message of this rule and every
	// rule below it.
	Error string `json:"error,omitempty"`

	// Name labels the rule in logs.
	Name string `json:"name,omitempty"`
}

// ruleEnv is what a rule sees of one request.
type ruleEnv struct {
	r    *http.Request
	repl *caddy.Replacer
	// id is the verified token; nil only under a rule that needs no token.
	id *identity
}

// ruleDenied is a refusal of a valid token by the rule.
type ruleDenied struct {
	// message is sent as the error_description and set as the reason
	// placeholder; the rule's `error` replaces the default.
	message string
	// clause names the rule that refused, for the log.
	clause string
}

func (d *ruleDenied) Error() string { return d.message }

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
}

func compileRule(r *Rule) (*program, error) {
	if r == nil {
		r = &Rule{Rule: "authenticated"}
	}
	ev, err := compileNode(r, "rule")
	if err != nil {
		return nil, err
	}
	return &program{root: ev, needsToken: r.Rule != "allow"}, nil
}

func compileNode(r *Rule, path string) (evaluator, error) {
	label := path
	if r.Name != "" {
		label = fmt.Sprintf("%s (%s)", path, r.Name)
	}
	switch r.Rule {
	case "allow", "authenticated":
		return passRule{}, nil
	case "deny":
		msg := r.Error
		if msg == "" {
			msg = "access denied by rule"
		}
		return denyRule{&ruleDenied{message: msg, clause: label}}, nil
	case "":
		return nil, fmt.Errorf("%s: missing the rule name (allow, deny, authenticated, ...)", path)
	default:
		return nil, fmt.Errorf("%s: unknown rule %q", path, r.Rule)
	}
}

type passRule struct{}

func (passRule) eval(*ruleEnv) error { return nil }

type denyRule struct{ d *ruleDenied }

func (r denyRule) eval(*ruleEnv) error { return r.d }
