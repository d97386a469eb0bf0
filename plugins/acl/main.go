// Command acl is the Trellis access-control policy: allow and deny rules
// over NATS subjects and HTTP methods and paths, and rules on who sent a
// message: verified claims (scopes, roles, groups) and an authenticated
// principal, as a policy before it (auth) passed them on. A deny rule wins
// over an allow rule; once any allow rule is set, whatever none allows is
// denied. See README.md for its config.
package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	"github.com/trellis-mesh/trellis/plugins/internal/refusal"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// settings is the plugin's parsed config.
type settings struct {
	acl              ACL
	hasACL           bool
	claims           []ClaimRule
	requirePrincipal bool
	requireCert      bool
}

var cfg *settings

func init() {
	trellis.OnInit(func() error {
		s, err := parseSettings(trellis.Config)
		if err != nil {
			return fmt.Errorf("acl: %w", err)
		}
		cfg = s
		return nil
	})
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision {
		if why := cfg.refuses(Request{Subject: r.Subject, Method: r.Method, Path: r.Path}, r.Header); why != "" {
			refusal.Log("acl", why, time.Now())
			return trellis.Reject(403, "forbidden")
		}
		return trellis.Continue
	})
}

func main() {}

func parseSettings(get policyconf.Getter) (*settings, error) {
	s := &settings{}
	allow, deny := policyconf.List(get.Or("allow", "")), policyconf.List(get.Or("deny", ""))
	if len(allow)+len(deny) > 0 {
		a, err := ParseACL(allow, deny)
		if err != nil {
			return nil, err
		}
		s.acl, s.hasACL = a, true
	}
	claims, err := ParseClaimRules(policyconf.List(get.Or("require_claims", "")))
	if err != nil {
		return nil, fmt.Errorf("require_claims: %w", err)
	}
	s.claims = claims
	if s.requirePrincipal, err = strconv.ParseBool(get.Or("require_principal", "false")); err != nil {
		return nil, errors.New("require_principal: want true or false")
	}
	if s.requireCert, err = strconv.ParseBool(get.Or("require_client_cert", "false")); err != nil {
		return nil, errors.New("require_client_cert: want true or false")
	}
	if !s.hasACL && len(s.claims) == 0 && !s.requirePrincipal && !s.requireCert {
		return nil, errors.New("no rules: set allow, deny, require_claims, require_principal or require_client_cert")
	}
	return s, nil
}

// refuses returns why req with headers h is refused ("path", "principal",
// "client_cert", "claim:<name>"), or "" when it may go on.
func (s *settings) refuses(req Request, h trellis.Header) string {
	if s.hasACL && !s.acl.Allows(req) {
		return "path"
	}
	if s.requirePrincipal {
		if p, ok := policyconf.HeaderValue(h, abi.HeaderPrincipal); !ok || p == "" {
			return "principal"
		}
	}
	if s.requireCert {
		// The ingress sets this claim only for a certificate it verified.
		if v, ok := policyconf.HeaderValue(h, abi.HeaderClaimPrefix+abi.ClaimTLSSubject); !ok || v == "" {
			return "client_cert"
		}
	}
	for _, r := range s.claims {
		if !r.Holds(h) {
			return "claim:" + r.Name
		}
	}
	return ""
}
