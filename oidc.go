package jwtguard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// discoveryPath is where an OpenID Provider publishes its metadata
// (OpenID Connect Discovery 1.0, section 4).
const discoveryPath = "/.well-known/openid-configuration"

// discover reads the issuer's discovery document and returns its jwks_uri.
func (r *remoteKeys) discover(ctx context.Context) (string, error) {
	docURL := strings.TrimSuffix(r.cfg.url, "/") + discoveryPath
	body, _, err := r.get(ctx, docURL)
	docURL = redactURL(docURL)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if !isJSONObject(body) || json.Unmarshal(body, &doc) != nil {
		return "", fmt.Errorf("%s: discovery document is not a JSON object", docURL)
	}
	// Discovery section 4.3: the issuer must be exactly the one we asked
	// for, or a compromised or misconfigured host could vouch for keys of
	// another issuer.
	if doc.Issuer != r.cfg.url {
		return "", fmt.Errorf("%s: discovery document names issuer %q, want %q", docURL, doc.Issuer, r.cfg.url)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("%s: discovery document has no jwks_uri", docURL)
	}
	if _, err := parseRemoteURL(doc.JWKSURI, r.cfg.allowHTTP); err != nil {
		return "", fmt.Errorf("%s: jwks_uri: %w", docURL, err)
	}
	return doc.JWKSURI, nil
}
