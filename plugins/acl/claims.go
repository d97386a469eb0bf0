package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// MaxClaimRules bounds require_claims.
const MaxClaimRules = 32

// ClaimRule requires a verified claim (an X-Claim-<Name> header, which
// only a policy such as auth can set: the host removes any a client sends)
// to hold one of Values.
type ClaimRule struct {
	Name   string
	Values []string
}

// ParseClaimRules reads require_claims: comma-separated "name=value"
// items, each value possibly "a|b" for either. Every item must hold; two
// items on one claim both must.
func ParseClaimRules(items []string) ([]ClaimRule, error) {
	if len(items) > MaxClaimRules {
		return nil, fmt.Errorf("%d claim rules, at most %d (MaxClaimRules)", len(items), MaxClaimRules)
	}
	var rules []ClaimRule
	for _, item := range items {
		name, values, ok := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if !ok || !policyconf.ValidHeaderName(name) {
			return nil, fmt.Errorf("%q: want claim=value, such as scope=orders.read", item)
		}
		r := ClaimRule{Name: name}
		for _, v := range strings.Split(values, "|") {
			if v = strings.TrimSpace(v); v == "" {
				return nil, fmt.Errorf("%q: an empty value", item)
			}
			r.Values = append(r.Values, v)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Holds reports whether the claim headers in h satisfy the rule. A claim
// holds a value when it is that string, when it is a JSON array with that
// string among its elements (roles, groups), or when it is a
// space-separated list with that item (an OAuth scope).
func (r ClaimRule) Holds(h trellis.Header) bool {
	v, ok := policyconf.HeaderValue(h, abi.HeaderClaimPrefix+r.Name)
	if !ok {
		return false
	}
	var items []string
	if strings.HasPrefix(v, "[") {
		var arr []any
		if json.Unmarshal([]byte(v), &arr) != nil {
			return false
		}
		for _, e := range arr {
			if s, ok := e.(string); ok {
				items = append(items, s)
			}
		}
	} else {
		items = strings.Fields(v)
	}
	for _, have := range items {
		for _, want := range r.Values {
			if have == want {
				return true
			}
		}
	}
	return false
}
