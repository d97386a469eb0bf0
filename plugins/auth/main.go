// Command auth is the Trellis authentication policy: it lets a message go
// on only if it carries an accepted static token (API key or opaque bearer
// token) or a valid JWT (HS256 or EdDSA), and passes on who was
// authenticated as the Trellis-Principal header and verified JWT claims as
// X-Claim-<name> headers. See README.md for its config.
package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// settings is the plugin's parsed config.
type settings struct {
	header   string
	tokens   TokenSet
	verifier Verifier
	claims   []string
}

var cfg *settings

func init() {
	trellis.OnInit(func() error {
		s, err := parseSettings(trellis.Config)
		if err != nil {
			return fmt.Errorf("auth: %w", err)
		}
		cfg = s
		return nil
	})
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision { return cfg.policy(r, time.Now()) })
}

func main() {}

// parseSettings reads the config through get (trellis.Config in the plugin).
// Errors never quote a token or a secret.
func parseSettings(get policyconf.Getter) (*settings, error) {
	s := &settings{header: get.Or("header", "Authorization")}
	if !policyconf.ValidHeaderName(s.header) {
		return nil, fmt.Errorf("header %q is not a header name", s.header)
	}
	tokens, err := ParseTokens(policyconf.List(get.Or("tokens", "")))
	if err != nil {
		return nil, err
	}
	s.tokens = tokens
	if secret, ok := get("jwt_hs256_secret"); ok && secret != "" {
		if len(secret) < minHS256Secret {
			return nil, fmt.Errorf("jwt_hs256_secret is %d bytes; HS256 needs at least %d", len(secret), minHS256Secret)
		}
		s.verifier.HS256Secret = []byte(secret)
	}
	if key, ok := get("jwt_ed25519_public_key"); ok && key != "" {
		pub, err := ParseEd25519Key(key)
		if err != nil {
			return nil, fmt.Errorf("jwt_ed25519_public_key: %w", err)
		}
		s.verifier.Ed25519Key = pub
	}
	if s.tokens.Len() == 0 && !s.verifier.Enabled() {
		return nil, errors.New("nothing to accept: set tokens, jwt_hs256_secret or jwt_ed25519_public_key")
	}
	s.verifier.Audiences = policyconf.List(get.Or("jwt_audience", ""))
	requireExp, err := strconv.ParseBool(get.Or("jwt_require_exp", "false"))
	if err != nil {
		return nil, fmt.Errorf("jwt_require_exp %q: want true or false", get.Or("jwt_require_exp", ""))
	}
	s.verifier.RequireExp = requireExp
	leeway, err := time.ParseDuration(get.Or("jwt_leeway", "0s"))
	if err != nil || leeway < 0 {
		return nil, fmt.Errorf("jwt_leeway %q: want a duration such as \"30s\"", get.Or("jwt_leeway", ""))
	}
	s.verifier.Leeway = leeway
	s.claims = policyconf.List(get.Or("claims", "sub"))
	for _, c := range s.claims {
		if !policyconf.ValidHeaderName(c) {
			return nil, fmt.Errorf("claims: %q cannot be part of a header name", c)
		}
	}
	return s, nil
}

// verdict is the outcome of authenticating one message.
type verdict struct {
	// status is 0 to let the message go on, else 401 or 403.
	status int
	// reason is the text of a rejection; it never holds the credential.
	reason string
	// challenge is the WWW-Authenticate value of a rejection, if any.
	challenge string
	// claims are the verified claims of a JWT; nil for a static token.
	claims map[string]any
	// principal names who was authenticated (abi.HeaderPrincipal); empty
	// for a JWT without a usable sub.
	principal string
}

// authenticate decides on a message's headers at time now.
func (s *settings) authenticate(h trellis.Header, now time.Time) verdict {
	bearer := strings.EqualFold(s.header, "Authorization")
	challenge := func(v string) string {
		if bearer {
			return v
		}
		return ""
	}
	tok, present := Credential(h, s.header)
	if !present {
		return verdict{status: 401, reason: "missing credentials", challenge: challenge("Bearer")}
	}
	invalid := verdict{status: 401, reason: "invalid credentials", challenge: challenge(`Bearer error="invalid_token"`)}
	if tok == "" {
		return invalid
	}
	if id, ok := s.tokens.Match(tok); ok {
		return verdict{principal: TokenPrincipal(id)}
	}
	if !s.verifier.Enabled() || !LooksLikeJWT(tok) {
		return invalid
	}
	claims, err := s.verifier.Verify(tok, now)
	switch {
	case errors.Is(err, ErrAudience):
		return verdict{status: 403, reason: "forbidden"}
	case err != nil:
		return invalid
	}
	principal, _ := JWTPrincipal(claims)
	return verdict{claims: claims, principal: principal}
}

func (s *settings) policy(r *trellis.Inbound, now time.Time) trellis.Decision {
	// Identity headers are only ever the ones this policy sets: drop
	// whatever the client sent, whether or not it gets in.
	for _, name := range IdentityHeaders(r.Header) {
		if err := r.SetHeader(name, ""); err != nil {
			trellis.Logf(trellis.LevelError, "auth: removing header %s: %v", name, err)
			return trellis.Reject(500, "auth failed")
		}
	}
	v := s.authenticate(r.Header, now)
	if v.status != 0 {
		if v.challenge != "" {
			if err := trellis.ResponseHeader("WWW-Authenticate", v.challenge); err != nil {
				trellis.Logf(trellis.LevelWarn, "auth: response header: %v", err)
			}
		}
		return trellis.Reject(v.status, v.reason)
	}
	if v.principal != "" {
		// Fail closed: a rate limit keyed on the principal must not fall
		// back to a coarser key for an authenticated client.
		if err := r.SetHeader(abi.HeaderPrincipal, v.principal); err != nil {
			trellis.Logf(trellis.LevelError, "auth: principal not passed on: %v", err)
			return trellis.Reject(500, "auth failed")
		}
	}
	for _, name := range s.claims {
		value, ok := ClaimHeaderValue(v.claims[name])
		if !ok {
			continue
		}
		if err := r.SetHeader(policyconf.ClaimHeaderPrefix+name, value); err != nil {
			// Say which claim, never its value.
			trellis.Logf(trellis.LevelWarn, "auth: claim %s not passed on: %v", name, err)
		}
	}
	return trellis.Continue
}
