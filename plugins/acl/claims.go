package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Bounds on require_claims.
const (
	// MaxClaimRules bounds the rules of require_claims.
	MaxClaimRules = 32
	// MaxClaimPathLen bounds one claim path, in bytes.
	MaxClaimPathLen = 256
	// MaxClaimPathDepth bounds the members a path walks below its claim:
	// realm_access.roles walks one; providers nest two or three deep.
	MaxClaimPathDepth = 8
)

// ClaimRule requires a verified claim, or a member nested in one, to hold
// one of Values. The claim is an X-Claim-<name> header, which only a
// policy such as auth can set (the host removes any a client sends).
type ClaimRule struct {
	// Name is the rule's path as written, for logs ("realm_access.roles").
	Name string
	// Claim is the claim the path starts at: the X-Claim-<Claim> header.
	Claim string
	// Members are the object members the path walks below the claim, in
	// order: ["roles"] for realm_access.roles.
	Members []string
	Values  []string
}

// ParseClaimRules reads require_claims: comma-separated "path=value"
// items, each value possibly "a|b" for either. Every item must hold; two
// items on one path both must. See ParseClaimPath for the path syntax.
func ParseClaimRules(items []string) ([]ClaimRule, error) {
	if len(items) > MaxClaimRules {
		return nil, fmt.Errorf("%d claim rules, at most %d (MaxClaimRules)", len(items), MaxClaimRules)
	}
	var rules []ClaimRule
	for _, item := range items {
		path, values, ok := strings.Cut(item, "=")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			return nil, fmt.Errorf("%.80q: want claim=value, such as scope=orders.read", item)
		}
		claim, members, err := ParseClaimPath(path)
		if err != nil {
			return nil, fmt.Errorf("%.80q: %w", item, err)
		}
		r := ClaimRule{Name: path, Claim: claim, Members: members}
		for _, v := range strings.Split(values, "|") {
			if v = strings.TrimSpace(v); v == "" {
				return nil, fmt.Errorf("%.80q: an empty value", item)
			}
			r.Values = append(r.Values, v)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// ParseClaimPath splits a claim path into the claim it starts at and the
// members it walks below it:
//
//	path   = claim { "." member | "[" key "]" }
//	claim  = a claim the auth policy passes on (the X-Claim-<claim> header):
//	         header-name characters but "." "[" and "]"
//	member = 1 or more characters but "." "[" "]" and white space
//	key    = 1 or more characters but "]": a member whose name holds dots
//
// So realm_access.roles is the roles member of the realm_access claim (as
// Keycloak writes it), resource_access.orders-api.roles the roles of
// client orders-api, and resource_access[orders.example.com].roles the
// roles of a client whose id has dots. A path is at most MaxClaimPathLen
// bytes and walks at most MaxClaimPathDepth members.
func ParseClaimPath(path string) (claim string, members []string, err error) {
	if len(path) > MaxClaimPathLen {
		return "", nil, fmt.Errorf("a claim path of %d bytes, at most %d (MaxClaimPathLen)", len(path), MaxClaimPathLen)
	}
	end := strings.IndexAny(path, ".[")
	if end < 0 {
		end = len(path)
	}
	claim, rest := path[:end], path[end:]
	if !policyconf.ValidHeaderName(claim) || strings.ContainsAny(claim, "[]") {
		return "", nil, fmt.Errorf("%.80q does not start with a claim name", path)
	}
	for rest != "" {
		var m string
		switch rest[0] {
		case '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			m, rest = rest[:end], rest[end:]
			if m == "" || strings.ContainsAny(m, "] \t") {
				return "", nil, fmt.Errorf("%.80q: an empty or malformed member after '.' (write a member with dots or spaces as [key])", path)
			}
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return "", nil, fmt.Errorf("%.80q: '[' without ']'", path)
			}
			m, rest = rest[1:end], rest[end+1:]
			if m == "" {
				return "", nil, fmt.Errorf("%.80q: an empty [key]", path)
			}
		default:
			return "", nil, fmt.Errorf("%.80q: want '.' or '[' after ']'", path)
		}
		members = append(members, m)
		if len(members) > MaxClaimPathDepth {
			return "", nil, fmt.Errorf("%.80q walks more than %d members (MaxClaimPathDepth)", path, MaxClaimPathDepth)
		}
	}
	return claim, members, nil
}

// Holds reports whether the claim headers in h satisfy the rule. The
// value at the rule's path holds a value when it is that string, a
// space-separated list with that item (an OAuth scope), or an array with
// that string among its elements (roles, groups). A number, a boolean, an
// object or null holds nothing (a claim without members, which the auth
// policy writes as text, matches by that text), and neither does a path
// that leads nowhere: a member missing, or a step into something that is
// not an object.
func (r ClaimRule) Holds(h trellis.Header) bool {
	v, ok := policyconf.HeaderValue(h, abi.HeaderClaimPrefix+r.Claim)
	if !ok {
		return false
	}
	v = strings.TrimSpace(v)
	var items []string
	switch {
	case len(r.Members) == 0 && !strings.HasPrefix(v, "[") && !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, "{"):
		// A string, number or boolean as the auth policy writes them.
		items = strings.Fields(v)
	default:
		val, ok := decodeClaim(v)
		if !ok {
			return false
		}
		for _, m := range r.Members {
			obj, isObject := val.(map[string]any)
			if !isObject {
				return false
			}
			if val, ok = obj[m]; !ok {
				return false
			}
		}
		items = stringItems(val)
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

// decodeClaim decodes a claim header that holds JSON: an array, an object
// or a quoted string (what the auth policy writes for a string that would
// otherwise look like one of the others). The header is at most
// abi.MaxHeaderValueLen bytes; encoding/json refuses nesting past 10,000
// levels, and a value is walked only as deep as a path goes.
func decodeClaim(v string) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	var val any
	if dec.Decode(&val) != nil || dec.More() {
		return nil, false
	}
	if _, err := dec.Token(); err == nil {
		return nil, false // something after the value
	}
	return val, true
}

// stringItems is what a value at a path offers to match: a string's
// space-separated items, an array's string elements; nothing else.
func stringItems(val any) []string {
	switch c := val.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		var items []string
		for _, e := range c {
			if s, ok := e.(string); ok {
				items = append(items, s)
			}
		}
		return items
	}
	return nil
}
