// Command caddy is Caddy with the standard modules and jwt_guard, for the
// demo and local development: go run ./cmd/caddy run --config Caddyfile.example
// Production builds use xcaddy: xcaddy build --with github.com/jwt-guard/caddy-jwt-guard
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/jwt-guard/caddy-jwt-guard"
)

func main() {
	caddycmd.Main()
}
