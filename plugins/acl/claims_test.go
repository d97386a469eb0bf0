package main

import (
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func TestClaimRules(t *testing.T) {
	s, err := parseSettings(policyconf.Map{"require_claims": "scope=orders.read, roles=admin|ops", "require_principal": "true"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	who := func(kv ...string) trellis.Header {
		h := trellis.Header{"Trellis-Principal": {"jwt:https://idp#ada"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = []string{kv[i+1]}
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    trellis.Header
		why  string
	}{
		{"scope list and role array", who("X-Claim-scope", "openid orders.read", "X-Claim-roles", `["viewer","ops"]`), ""},
		{"header names in any case", who("x-claim-scope", "orders.read", "X-CLAIM-ROLES", "admin"), ""},
		{"scope missing", who("X-Claim-scope", "orders.write", "X-Claim-roles", "admin"), "claim:scope"},
		{"scope prefix is not the scope", who("X-Claim-scope", "orders.readonly", "X-Claim-roles", "admin"), "claim:scope"},
		{"role missing", who("X-Claim-scope", "orders.read", "X-Claim-roles", `["viewer"]`), "claim:roles"},
		{"role in a string with brackets", who("X-Claim-scope", "orders.read", "X-Claim-roles", `["admin"`), "claim:roles"},
		{"no claims", who(), "claim:scope"},
		{"no principal", trellis.Header{"X-Claim-scope": {"orders.read"}, "X-Claim-roles": {"admin"}}, "principal"},
	} {
		if why := s.refuses(Request{Subject: "x"}, tc.h); why != tc.why {
			t.Errorf("%s: refused %q, want %q", tc.name, why, tc.why)
		}
	}
}

func TestClaimRulesWithPaths(t *testing.T) {
	s, err := parseSettings(policyconf.Map{"allow": "/orders/**", "require_claims": "groups=staff"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	staff := trellis.Header{"X-Claim-groups": {`["staff"]`}}
	if why := s.refuses(Request{Subject: "x", Method: "GET", Path: "/admin"}, staff); why != "path" {
		t.Errorf("path: %q", why)
	}
	if why := s.refuses(Request{Subject: "x", Method: "GET", Path: "/orders/1"}, staff); why != "" {
		t.Errorf("allowed: %q", why)
	}
}

func TestParseClaimRulesRefusesBadRules(t *testing.T) {
	many := strings.Repeat("a=b,", MaxClaimRules+1)
	for _, bad := range []string{"scope", "=x", "scope=", "scope=a||b", "sc ope=a", many} {
		if _, err := parseSettings(policyconf.Map{"require_claims": bad}.Get); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parseSettings(policyconf.Map{}.Get); err == nil {
		t.Error("no rules accepted")
	}
	if _, err := parseSettings(policyconf.Map{"require_principal": "maybe"}.Get); err == nil {
		t.Error("require_principal maybe accepted")
	}
}

func TestRequireClientCert(t *testing.T) {
	s, err := parseSettings(policyconf.Map{"require_client_cert": "true"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	if why := s.refuses(Request{Path: "/x"}, trellis.Header{}); why != "client_cert" {
		t.Fatalf("no certificate: %q", why)
	}
	h := trellis.Header{}
	h.Set("X-Claim-Tls-Subject", "CN=billing")
	if why := s.refuses(Request{Path: "/x"}, h); why != "" {
		t.Fatalf("with a certificate: %q", why)
	}
	if _, err := parseSettings(policyconf.Map{"require_client_cert": "yes please"}.Get); err == nil {
		t.Fatal("a bad require_client_cert was accepted")
	}
}
