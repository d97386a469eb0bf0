package main

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
)

// Request is what a rule looks at: the subject of every message, and the
// method and path of an HTTP request (empty for a NATS message).
type Request struct {
	Subject string
	Method  string
	Path    string
}

// Rule is one allow or deny pattern.
type Rule struct {
	// subject is a NATS subject pattern; empty for an HTTP rule.
	subject string
	// method is the HTTP method an HTTP rule requires; empty for any.
	method string
	// pathPattern is a path.Match pattern; with tree set, it also matches
	// everything below the paths it matches (the pattern ended in "/**").
	pathPattern string
	tree        bool
}

// ParseRule parses a pattern. One starting with "/" or with an HTTP method
// and a space ("GET /orders/*") is an HTTP path pattern: path.Match syntax
// per segment, plus a final "/**" for the path and everything below it.
// Anything else is a NATS subject pattern, with the wildcards "*" and ">".
func ParseRule(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	method, p, hasMethod := strings.Cut(s, " ")
	if !hasMethod {
		method, p = "", s
	}
	p = strings.TrimSpace(p)
	if !hasMethod && !strings.HasPrefix(p, "/") {
		if err := abi.ValidSubject(s, true); err != nil {
			return Rule{}, fmt.Errorf("%q: %w", s, err)
		}
		return Rule{subject: s}, nil
	}
	if hasMethod && !isMethod(method) {
		return Rule{}, fmt.Errorf("%q: %q is not an HTTP method such as GET", s, method)
	}
	if !strings.HasPrefix(p, "/") {
		return Rule{}, fmt.Errorf("%q: an HTTP path pattern starts with /", s)
	}
	r := Rule{method: method, pathPattern: p}
	if strings.HasSuffix(p, "/**") {
		r.pathPattern, r.tree = strings.TrimSuffix(p, "/**"), true
	}
	if strings.Contains(r.pathPattern, "**") {
		return Rule{}, fmt.Errorf("%q: ** is allowed only as the last segment", s)
	}
	if _, err := path.Match(r.pathPattern, ""); err != nil {
		return Rule{}, fmt.Errorf("%q: %w", s, err)
	}
	return r, nil
}

func isMethod(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Matches reports whether the rule matches req. An HTTP rule never matches
// a NATS message; a subject rule matches the subject of any message.
func (r Rule) Matches(req Request) bool {
	if r.subject != "" {
		return abi.SubjectMatches(r.subject, req.Subject)
	}
	if req.Method == "" || (r.method != "" && r.method != req.Method) {
		return false
	}
	p := cleanPath(req.Path)
	if r.matchPath(p) {
		return true
	}
	if !r.tree {
		return false
	}
	// Try every ancestor of p: "/a/b/c" is below "/a/b" and "/a".
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' && r.matchPath(p[:i]) {
			return true
		}
	}
	return r.pathPattern == "" // "/**": every path
}

func (r Rule) matchPath(p string) bool {
	ok, _ := path.Match(r.pathPattern, p) // the pattern was checked by ParseRule
	return ok
}

// cleanPath resolves "." and ".." and repeated slashes, so that
// "/orders/../admin" is matched as the "/admin" it names.
func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

// ACL is a set of allow and deny rules.
type ACL struct {
	Allow, Deny []Rule
}

// ParseACL parses the comma-separated allow and deny lists.
func ParseACL(allow, deny []string) (ACL, error) {
	var a ACL
	for _, list := range []struct {
		name  string
		items []string
		dst   *[]Rule
	}{{"allow", allow, &a.Allow}, {"deny", deny, &a.Deny}} {
		for _, item := range list.items {
			r, err := ParseRule(item)
			if err != nil {
				return ACL{}, fmt.Errorf("%s: %w", list.name, err)
			}
			*list.dst = append(*list.dst, r)
		}
	}
	if len(a.Allow) == 0 && len(a.Deny) == 0 {
		return ACL{}, errors.New("no rules: set allow, deny or both")
	}
	return a, nil
}

// Allows decides on req: a deny rule that matches refuses it; otherwise,
// when there are allow rules, one of them must match.
func (a ACL) Allows(req Request) bool {
	for _, r := range a.Deny {
		if r.Matches(req) {
			return false
		}
	}
	if len(a.Allow) == 0 {
		return true
	}
	for _, r := range a.Allow {
		if r.Matches(req) {
			return true
		}
	}
	return false
}
