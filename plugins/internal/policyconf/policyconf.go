// Package policyconf reads the config values the built-in policy plugins
// share: comma-separated lists, "name=value" pairs, and the key selector
// ("header:<Name>", "claim:<name>", "remote_addr", "subject") that names the
// part of a message a rate limit or a sticky split is keyed on.
//
// It is pure Go over the SDK's types, so it builds and tests natively; the
// plugins call it from their OnInit (to refuse a bad config at load time)
// and from their policy.
package policyconf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Getter reads one config value and reports whether it is set: the SDK's
// trellis.Config in a plugin, a Map's Get in a test.
type Getter func(key string) (string, bool)

// Or returns the value of key, or def when it is not set.
func (g Getter) Or(key, def string) string {
	if v, ok := g(key); ok {
		return v
	}
	return def
}

// Map is a config held in a map, for tests.
type Map map[string]string

// Get is a Getter over m.
func (m Map) Get(key string) (string, bool) {
	v, ok := m[key]
	return v, ok
}

// List splits a comma-separated config value into its trimmed, non-empty
// items: " a, b,,c " is [a b c]. An empty value is an empty list.
func List(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Pair is one "name=value" item of a Pairs list.
type Pair struct {
	Name, Value string
}

// Pairs parses a comma-separated list of "name=value" items, such as
// "eu=orders.eu,us=orders.us". Names and values are trimmed; an item with no
// "=", an empty name or an empty value is an error, and so is a name given
// twice.
func Pairs(s string) ([]Pair, error) {
	var out []Pair
	seen := map[string]bool{}
	for _, item := range List(s) {
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok:
			return nil, fmt.Errorf("%q is not name=value", item)
		case name == "":
			return nil, fmt.Errorf("%q has an empty name", item)
		case value == "":
			return nil, fmt.Errorf("%q has an empty value", item)
		case seen[name]:
			return nil, fmt.Errorf("%q is given twice", name)
		}
		seen[name] = true
		out = append(out, Pair{Name: name, Value: value})
	}
	return out, nil
}

// HeaderValue returns the first value of header name: an exact match first,
// then a case-insensitive one, as the host's header function does (NATS
// header names are case-sensitive, but clients do not agree on a case).
func HeaderValue(h trellis.Header, name string) (string, bool) {
	if vs := h[name]; len(vs) > 0 {
		return vs[0], true
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0], true
		}
	}
	return "", false
}

// ClaimHeaderPrefix starts the name of each header that carries a verified
// claim ("X-Claim-sub"); the auth policy sets them, and a "claim:" key reads
// them.
const ClaimHeaderPrefix = abi.HeaderClaimPrefix

// ValidHeaderName reports whether s may be a header name: non-empty, and
// only the token characters of RFC 9110 (no spaces, colons or controls).
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// KeyKind says where a Key takes its value from.
type KeyKind int

// The kinds of Key.
const (
	// KeyHeader is the value of a header ("header:X-API-Key").
	KeyHeader KeyKind = iota + 1
	// KeyClaim is a claim the auth policy verified, read from its
	// X-Claim-<name> header ("claim:sub").
	KeyClaim
	// KeyRemoteAddr is the host part of an HTTP request's client address.
	KeyRemoteAddr
	// KeySubject is the message's subject.
	KeySubject
)

// Key selects the part of a message that a policy groups messages by: the
// bucket of a rate limit, the target of a sticky split.
type Key struct {
	Kind KeyKind
	// Header is the header the value is read from, for KeyHeader and KeyClaim.
	Header string
	spec   string
}

// ErrBadKey is the error of ParseKey for a selector it does not know.
var ErrBadKey = errors.New(`a key is "header:<Name>", "claim:<name>", "remote_addr" or "subject"`)

// ParseKey parses a key selector: "header:<Name>", "claim:<name>",
// "remote_addr" or "subject".
func ParseKey(spec string) (Key, error) {
	spec = strings.TrimSpace(spec)
	kind, name, hasName := strings.Cut(spec, ":")
	switch {
	case !hasName && kind == "remote_addr":
		return Key{Kind: KeyRemoteAddr, spec: spec}, nil
	case !hasName && kind == "subject":
		return Key{Kind: KeySubject, spec: spec}, nil
	case hasName && kind == "header" && ValidHeaderName(name):
		return Key{Kind: KeyHeader, Header: name, spec: spec}, nil
	case hasName && kind == "claim" && ValidHeaderName(name):
		return Key{Kind: KeyClaim, Header: ClaimHeaderPrefix + name, spec: spec}, nil
	}
	return Key{}, fmt.Errorf("%q: %w", spec, ErrBadKey)
}

// String returns the selector as it was written in the config.
func (k Key) String() string { return k.spec }

// Value returns the key's value for r, and false when r does not have one:
// no such header or claim, an empty one, or no client address (a NATS
// message has none). A subject is always there.
func (k Key) Value(r *trellis.Inbound) (string, bool) {
	var v string
	switch k.Kind {
	case KeyHeader, KeyClaim:
		v, _ = HeaderValue(r.Header, k.Header)
	case KeyRemoteAddr:
		v = RemoteHost(r.RemoteAddr)
	case KeySubject:
		v = r.Subject
	}
	return v, v != ""
}

// RemoteHost returns the host part of a "host:port" client address (the
// address itself when it has no port), so that every connection of one
// client shares a key: "10.0.0.7:51234" is "10.0.0.7", "[::1]:8080" is
// "::1". (Written out rather than net.SplitHostPort, which would link the
// net package into every plugin.)
func RemoteHost(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if end := strings.IndexByte(addr, ']'); end > 0 {
			return addr[1:end]
		}
		return addr
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && strings.IndexByte(addr[:i], ':') < 0 {
		return addr[:i] // one colon: host:port; more is a bare IPv6 address
	}
	return addr
}
