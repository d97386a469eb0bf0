package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// TokenSet holds accepted static tokens (API keys, opaque bearer tokens) as
// SHA-256 digests, so that checking one compares fixed-size values and
// takes the same time whatever the token and whichever entry it matches.
type TokenSet struct {
	digests [][sha256.Size]byte
}

// NewTokenSet returns a set of tokens.
func NewTokenSet(tokens []string) TokenSet {
	s := TokenSet{}
	for _, t := range tokens {
		s.digests = append(s.digests, sha256.Sum256([]byte(t)))
	}
	return s
}

// Len is the number of tokens in the set.
func (s TokenSet) Len() int { return len(s.digests) }

// Contains reports whether tok is in the set. It compares tok against every
// entry without stopping early, in constant time per entry.
func (s TokenSet) Contains(tok string) bool {
	d := sha256.Sum256([]byte(tok))
	found := 0
	for i := range s.digests {
		found |= subtle.ConstantTimeCompare(d[:], s.digests[i][:])
	}
	return found == 1
}

// Credential finds the credential of a message in header name. With
// "Authorization" the value must be "Bearer <token>" (scheme in any case);
// any other header carries the raw key. present is false when the header is
// absent or empty; a present header that holds no bearer token gives an
// empty token.
func Credential(h trellis.Header, name string) (token string, present bool) {
	v, ok := policyconf.HeaderValue(h, name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return "", false
	}
	if !strings.EqualFold(name, "Authorization") {
		return v, true
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(rest), true
}

// ClaimHeaders returns the names of the headers in h that look like claim
// headers in any case ("X-Claim-sub", "x-claim-role"): a client must not be
// able to send its own.
func ClaimHeaders(h trellis.Header) []string {
	var names []string
	for name := range h {
		if len(name) >= len(policyconf.ClaimHeaderPrefix) &&
			strings.EqualFold(name[:len(policyconf.ClaimHeaderPrefix)], policyconf.ClaimHeaderPrefix) {
			names = append(names, name)
		}
	}
	return names
}
