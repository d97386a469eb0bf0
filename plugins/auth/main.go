// Command auth is the Trellis authentication policy: it lets a message go
// on only if it carries an accepted static token (API key or opaque bearer
// token) or a valid JWT (HS256, RS256/384/512, PS256/384/512, ES256/384,
// EdDSA; verified with github.com/golang-jwt/jwt/v5 against keys from the
// config, or from a JWKS the host fetches for it), and passes on who was
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
	"github.com/trellis-mesh/trellis/plugins/internal/refusal"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// settings is the plugin's parsed config (see README.md, and keys.go for
// the issuers).
type settings struct {
	header   string
	tokens   TokenSet
	verifier Verifier
	claims   []string
}

var cfg *settings

func init() {
	trellis.OnInit(func() error {
		logf = trellis.Logf
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
	if err := s.readKeys(get); err != nil {
		return nil, err
	}
	if s.tokens.Len() == 0 && !s.verifier.Enabled() {
		return nil, errors.New("nothing to accept: set tokens, jwt_hs256_secret, jwt_ed25519_public_key or jwt_issuers")
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
	// why names the cause of a rejection for the log and the refusal
	// counter (see Reason); the caller never sees it.
	why string
}

// authenticate decides on a message's headers at time now.
func (s *settings) authenticate(h trellis.Header, now time.Time) verdict {
	v := s.decide(h, now)
	if v.status == 0 {
		v.why = ""
	}
	return v
}

func (s *settings) decide(h trellis.Header, now time.Time) verdict {
	bearer := strings.EqualFold(s.header, "Authorization")
	challenge := func(v string) string {
		if bearer {
			return v
		}
		return ""
	}
	tok, present := Credential(h, s.header)
	if !present {
		return verdict{status: 401, reason: "missing credentials", challenge: challenge("Bearer"), why: "missing"}
	}
	invalid := func(why string) verdict {
		return verdict{status: 401, reason: "invalid credentials", challenge: challenge(`Bearer error="invalid_token"`), why: why}
	}
	if tok == "" {
		return invalid("scheme")
	}
	if id, ok := s.tokens.Match(tok); ok {
		return verdict{principal: TokenPrincipal(id)}
	}
	if !s.verifier.Enabled() || !LooksLikeJWT(tok) {
		return invalid("unknown_token")
	}
	claims, err := s.verifier.Verify(tok, now)
	switch {
	case errors.Is(err, ErrAudience):
		return verdict{status: 403, reason: "forbidden", why: Reason(err)}
	case err != nil:
		return invalid(Reason(err))
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
		refusal.Log("auth", v.why, now)
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
