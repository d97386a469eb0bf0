package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// TokenSet holds accepted static tokens (API keys, opaque bearer tokens) as
// SHA-256 digests, so that checking one compares fixed-size values and
// takes the same time whatever the token and whichever entry it matches;
// beside each, the id that names its holder in the principal header.
type TokenSet struct {
	digests [][sha256.Size]byte
	ids     []string
}

// maxTokenName bounds the length of a token's name.
const maxTokenName = 64

// ParseTokens reads the tokens config: comma-separated items, each either
// "name:token" or a bare token. A bare token's id is derived from a hash of
// it (TokenID). The token of a named item may itself hold colons: the item
// is cut at its first one. Errors never quote a token; they name the item
// by its position.
func ParseTokens(items []string) (TokenSet, error) {
	s := TokenSet{}
	names := map[string]bool{}
	seen := map[[sha256.Size]byte]bool{}
	for i, item := range items {
		id, tok := "", item
		if name, rest, named := strings.Cut(item, ":"); named {
			name, tok = strings.TrimSpace(name), strings.TrimSpace(rest)
			if !ValidTokenName(name) {
				return TokenSet{}, fmt.Errorf("tokens item %d: the part before ':' is not a name (1 to %d letters, digits, '.', '_', '-', '@' or '+')", i+1, maxTokenName)
			}
			if names[name] {
				return TokenSet{}, fmt.Errorf("tokens item %d: the name %q is given twice", i+1, name)
			}
			names[name] = true
			id = name
		}
		if tok == "" {
			return TokenSet{}, fmt.Errorf("tokens item %d: empty token", i+1)
		}
		d := sha256.Sum256([]byte(tok))
		if seen[d] {
			return TokenSet{}, fmt.Errorf("tokens item %d: the same token is listed twice", i+1)
		}
		seen[d] = true
		if id == "" {
			id = TokenID(tok)
		}
		s.digests = append(s.digests, d)
		s.ids = append(s.ids, id)
	}
	return s, nil
}

// ValidTokenName reports whether s may name a token: 1 to maxTokenName
// letters, digits, '.', '_', '-', '@' or '+'. A name never starts with '#',
// which marks the id of an unnamed token.
func ValidTokenName(s string) bool {
	if s == "" || len(s) > maxTokenName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-@+", c) >= 0) {
			return false
		}
	}
	return true
}

// TokenID is the id of an unnamed token: "#" and 24 hex digits of the
// SHA-256 of the token, under a label of its own so the digest matches no
// other use of the token's hash. It is stable across hosts and restarts and
// does not give the token away; but a guessable token is as guessable from
// its id as from anywhere, so name tokens to avoid even that.
func TokenID(tok string) string {
	sum := sha256.Sum256([]byte("trellis auth token id\x00" + tok))
	return "#" + hex.EncodeToString(sum[:12])
}

// Len is the number of tokens in the set.
func (s TokenSet) Len() int { return len(s.digests) }

// Match reports whether tok is in the set, and the id of its entry. It
// compares tok against every entry without stopping early, in constant
// time per entry, and picks the id without branching on which matched.
func (s TokenSet) Match(tok string) (id string, ok bool) {
	d := sha256.Sum256([]byte(tok))
	found, at := 0, 0
	for i := range s.digests {
		eq := subtle.ConstantTimeCompare(d[:], s.digests[i][:])
		at = subtle.ConstantTimeSelect(eq, i, at)
		found |= eq
	}
	if found != 1 {
		return "", false
	}
	return s.ids[at], true
}

// Principal values, as set in abi.HeaderPrincipal.
const (
	tokenPrincipalPrefix = "token:"
	jwtPrincipalPrefix   = "jwt:"
)

// TokenPrincipal is the principal of a static token with id.
func TokenPrincipal(id string) string { return tokenPrincipalPrefix + id }

// JWTPrincipal is the principal of a verified JWT: "jwt:<iss>#<sub>", or
// "jwt:#<sub>" when it has no iss. The first '#' ends the issuer: one in
// the issuer itself (an OpenID issuer never has one) is written %23, and a
// '%' is written %25. It reports false when sub is not a non-empty string
// a header can carry, or iss is present but not one: such a token is
// accepted, without a principal.
func JWTPrincipal(claims map[string]any) (string, bool) {
	sub, ok := claims["sub"].(string)
	if !ok || sub == "" || strings.IndexFunc(sub, isControl) >= 0 {
		return "", false
	}
	iss := ""
	if raw, has := claims["iss"]; has {
		s, ok := raw.(string)
		if !ok || strings.IndexFunc(s, isControl) >= 0 {
			return "", false
		}
		iss = strings.NewReplacer("%", "%25", "#", "%23").Replace(s)
	}
	return jwtPrincipalPrefix + iss + "#" + sub, true
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

// IdentityHeaders returns the names of the headers in h that say who sent
// the message, in any case: claim headers ("X-Claim-sub", "x-claim-role")
// and the principal header. Only this policy may set them; the host removes
// a client's before any policy runs, and this policy removes them again so
// that it keeps its word on a host that would not.
func IdentityHeaders(h trellis.Header) []string {
	var names []string
	for name := range h {
		if strings.EqualFold(name, abi.HeaderPrincipal) ||
			len(name) >= len(abi.HeaderClaimPrefix) && strings.EqualFold(name[:len(abi.HeaderClaimPrefix)], abi.HeaderClaimPrefix) {
			names = append(names, name)
		}
	}
	return names
}
