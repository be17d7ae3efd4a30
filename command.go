package jwtguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// demoSecret is the secret Caddyfile.example falls back to when JWT_SECRET
// is unset. It is public: it only serves the demo on localhost.
const demoSecret = "jwt-guard-demo-secret-not-for-production"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "jwt-guard-token",
		Usage: "[--secret <secret>] [--alg HS256|HS384|HS512] [--sub <subject>] [--ttl <duration>] [--claim <name>=<value>]...",
		Short: "Signs a test token with an HMAC secret (for development)",
		Long: `
Signs a JWT with a shared HMAC secret and writes it to stdout, so you can try
a jwt_guard config without an identity provider. jwt_guard itself never
issues tokens; in production they come from your identity provider.

--secret  the HMAC secret; default: $JWT_SECRET, else the demo secret of
          Caddyfile.example
--alg     HS256 (default), HS384 or HS512
--sub     the subject claim (default: demo-user)
--ttl     lifetime; sets iat and exp (default: 1h; 0 for no exp)
--claim   name=value, repeatable; a value that parses as JSON (numbers,
          true/false, ["a","b"], {"plan":"pro"}) is used as JSON, otherwise
          as a string
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("secret", "", "HMAC secret (default $JWT_SECRET, else the demo secret)")
			cmd.Flags().String("alg", "HS256", "HS256, HS384 or HS512")
			cmd.Flags().String("sub", "demo-user", "subject claim")
			cmd.Flags().Duration("ttl", time.Hour, "lifetime (0: no exp)")
			cmd.Flags().StringArray("claim", nil, "name=value claim, repeatable")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdToken)
		},
	})
}

func cmdToken(fl caddycmd.Flags) (int, error) {
	secret := fl.String("secret")
	if secret == "" {
		secret = os.Getenv("JWT_SECRET")
	}
	if secret == "" {
		secret = demoSecret
	}
	alg := fl.String("alg")
	info, ok := algorithms[alg]
	if !ok || info.family != familyHMAC {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--alg %q: want HS256, HS384 or HS512", alg)
	}
	c := jwt.MapClaims{"sub": fl.String("sub")}
	if ttl := fl.Duration("ttl"); ttl > 0 {
		now := time.Now()
		c["iat"], c["exp"] = now.Unix(), now.Add(ttl).Unix()
	}
	claims, err := fl.GetStringArray("claim")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	for _, kv := range claims {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("--claim %q: want name=value", kv)
		}
		c[name] = claimValue(value)
	}
	token, err := jwt.NewWithClaims(info.method, c).SignedString([]byte(secret))
	if err != nil {
		return caddy.ExitCodeFailedStartup, errors.New("signing the token failed")
	}
	fmt.Println(token)
	return caddy.ExitCodeSuccess, nil
}

// claimValue reads a command-line claim value as JSON when it is JSON.
func claimValue(s string) any {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) == nil && !dec.More() {
		return v
	}
	return s
}
