package main

import (
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/abi"
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

// TestNestedClaimRules: paths into a claim's members, as Keycloak nests
// roles (realm_access.roles, resource_access.<client>.roles), with
// arrays of strings and space-separated strings at the end of the path.
func TestNestedClaimRules(t *testing.T) {
	const realm = `{"roles":["offline_access","clerk"],"scope":"orders:read orders:write"}`
	const clients = `{"orders-api":{"roles":["admin"]},"orders.example.com":{"roles":["auditor"]},"orders":{"example":{"com":{"roles":["impostor"]}}}}`
	claims := trellis.Header{"X-Claim-realm_access": {realm}, "X-Claim-resource_access": {clients}}
	for _, tc := range []struct {
		rule string
		want bool
	}{
		{"realm_access.roles=clerk", true},
		{"realm_access.roles=admin", false},
		{"realm_access.roles=admin|clerk", true},
		{"realm_access.scope=orders:write", true},         // a space-separated string
		{"realm_access.scope=orders", false},              // an item, never a prefix
		{"resource_access.orders-api.roles=admin", true},  // Keycloak's client roles
		{"resource_access[orders-api].roles=admin", true}, // the same, bracketed
		{"resource_access[orders.example.com].roles=auditor", true},
		{"resource_access.orders.example.com.roles=auditor", false}, // dots walk members: no such path
		{"resource_access.orders.example.com.roles=impostor", true}, // ...which this one is
		{"resource_access[orders.example.com].roles=impostor", false},
		{"realm_access=clerk", false},             // an object holds nothing
		{"realm_access.roles.clerk=clerk", false}, // a step into an array
		{"realm_access.missing=clerk", false},
		{"nothere.roles=clerk", false},
	} {
		s, err := parseSettings(policyconf.Map{"require_claims": tc.rule}.Get)
		if err != nil {
			t.Errorf("%s: %v", tc.rule, err)
			continue
		}
		if got := s.refuses(Request{Subject: "x"}, claims) == ""; got != tc.want {
			t.Errorf("%s: holds %v, want %v", tc.rule, got, tc.want)
		}
	}
}

// TestClaimPathsRefuseWhatIsNotAStringValue: values at a path that are
// not strings or arrays of strings, claims that are strings dressed as
// JSON, malformed and deeply nested JSON: none holds, none panics.
func TestClaimPathsRefuseWhatIsNotAStringValue(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 5000) + `"admin"` + strings.Repeat("}", 5000)
	deepArr := strings.Repeat("[", 12000) + strings.Repeat("]", 12000)
	for _, tc := range []struct {
		name, rule, header, value string
	}{
		{"a number", "org.level=1", "X-Claim-org", `{"level":1}`},
		{"a boolean", "org.admin=true", "X-Claim-org", `{"admin":true}`},
		{"null", "org.roles=null", "X-Claim-org", `{"roles":null}`},
		{"an object", "org.roles=admin", "X-Claim-org", `{"roles":{"admin":true}}`},
		{"numbers in an array", "org.roles=1", "X-Claim-org", `{"roles":[1,2]}`},
		{"an array of arrays", "org.roles=admin", "X-Claim-org", `{"roles":[["admin"]]}`},
		{"a string dressed as an array", "roles=admin", "X-Claim-roles", `"[\"admin\"]"`},
		{"a string dressed as an object", "org.roles=admin", "X-Claim-org", `"{\"roles\":\"admin\"}"`},
		{"malformed JSON", "org.roles=admin", "X-Claim-org", `{"roles":["admin"]`},
		{"JSON and more", "org.roles=admin", "X-Claim-org", `{"roles":["x"]} {"roles":["admin"]}`},
		{"not JSON at all", "org.roles=admin", "X-Claim-org", `roles=admin`},
		{"5000 levels deep", "org.a.a=admin", "X-Claim-org", deep},
		{"12000 levels of arrays", "org.a=admin", "X-Claim-org", deepArr},
	} {
		s, err := parseSettings(policyconf.Map{"require_claims": tc.rule}.Get)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		h := trellis.Header{tc.header: {tc.value}}
		if why := s.refuses(Request{Subject: "x"}, h); why == "" {
			t.Errorf("%s: %s held on %.60s", tc.name, tc.rule, tc.value)
		}
	}
	// The deep value does hold at its own depth, within the path bound.
	shallow := strings.Repeat(`{"a":`, MaxClaimPathDepth) + `"admin"` + strings.Repeat("}", MaxClaimPathDepth)
	s, err := parseSettings(policyconf.Map{"require_claims": "org" + strings.Repeat(".a", MaxClaimPathDepth) + "=admin"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	if why := s.refuses(Request{Subject: "x"}, trellis.Header{"X-Claim-org": {shallow}}); why != "" {
		t.Errorf("a path %d deep: refused %q", MaxClaimPathDepth, why)
	}
}

func TestParseClaimPathRefusesBadPaths(t *testing.T) {
	for _, bad := range []string{
		"", ".roles", "realm_access.", "realm_access..roles", "realm_access[", "realm_access[]",
		"realm_access[a]roles", "realm access.roles", "[a].roles", "a.b c", "a.]b", "a[b]]",
		"org" + strings.Repeat(".a", MaxClaimPathDepth+1),
		"org.[" + strings.Repeat("k", MaxClaimPathLen) + "]",
		"X-Claim-\r\n.a",
	} {
		if claim, members, err := ParseClaimPath(bad); err == nil {
			t.Errorf("ParseClaimPath(%.40q) = %q %q, want an error", bad, claim, members)
		}
	}
	claim, members, err := ParseClaimPath("resource_access[orders.example.com].roles")
	if err != nil || claim != "resource_access" || strings.Join(members, "|") != "orders.example.com|roles" {
		t.Fatalf("got %q %q %v", claim, members, err)
	}
}

// FuzzClaimRule parses arbitrary rules and checks them against arbitrary
// claim headers: neither may panic, and a rule that parses keeps its path.
func FuzzClaimRule(f *testing.F) {
	f.Add("realm_access.roles=admin", `{"roles":["admin"]}`)
	f.Add("a[b.c].d=x|y", `{"b.c":{"d":"x y"}}`)
	f.Add("a=b", `"[\"b\"]"`)
	f.Fuzz(func(t *testing.T, rule, value string) {
		rules, err := ParseClaimRules([]string{rule})
		if err != nil {
			return
		}
		if len(rules[0].Members) > MaxClaimPathDepth {
			t.Fatalf("%q walks %d members", rule, len(rules[0].Members))
		}
		rules[0].Holds(trellis.Header{abi.HeaderClaimPrefix + rules[0].Claim: {value}})
	})
}
