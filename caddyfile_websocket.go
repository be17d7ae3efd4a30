package jwtguard

import (
	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// parseWebsocket reads the `websocket` block:
//
//	websocket {
//	    token_path <dot path>
//	    timeout <duration>
//	    max_message <size>
//	    close_on_expiry [on|off]
//	}
func parseWebsocket(d *caddyfile.Dispenser) (*WebsocketConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	ws := new(WebsocketConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "token_path":
			if !d.AllArgs(&ws.TokenPath) {
				return nil, d.ArgErr()
			}
			if _, err := (&WebsocketConfig{TokenPath: ws.TokenPath}).settings(); err != nil {
				return nil, d.Errf("%v", err)
			}
		case "timeout":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			if dur == 0 {
				return nil, d.Err("websocket timeout must be more than 0")
			}
			ws.Timeout = dur
		case "max_message":
			var arg string
			if !d.AllArgs(&arg) {
				return nil, d.ArgErr()
			}
			size, err := humanize.ParseBytes(arg)
			if err != nil || size == 0 || size > maxWSMaxMessage {
				return nil, d.Errf("max_message %q: want a size from 1 byte to 16MiB, like 64KiB", arg)
			}
			ws.MaxMessage = int(size)
		case "close_on_expiry":
			on := true
			if d.NextArg() {
				switch d.Val() {
				case "on", "true":
				case "off", "false":
					on = false
				default:
					return nil, d.Errf("close_on_expiry %q: want on or off", d.Val())
				}
				if d.NextArg() {
					return nil, d.ArgErr()
				}
			}
			ws.CloseOnExpiry = &on
		default:
			return nil, d.Errf("unrecognized websocket option '%s'", d.Val())
		}
	}
	return ws, nil
}
