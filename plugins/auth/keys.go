package main

import (
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// MaxIssuers bounds jwt_issuers: each costs a key set in the config.
const MaxIssuers = 16

// Config keys of an issuer named N in jwt_issuers. The host writes
// jwksKey (and, with OIDC discovery, issuerKey) when the policy's block
// has a jwks "N" block; an operator may write them by hand instead.
func jwksKey(name string) string       { return "jwks." + name }
func issuerKey(name string) string     { return "jwks." + name + ".issuer" }
func algorithmsKey(name string) string { return "jwks." + name + ".algorithms" }
func audienceKey(name string) string   { return "jwks." + name + ".audience" }

// readKeys fills s.verifier.Issuers: the config's own keys
// (jwt_hs256_secret, jwt_ed25519_public_key) as one issuer that takes any
// iss no other claims, then each issuer of jwt_issuers with its key set.
func (s *settings) readKeys(get policyconf.Getter) error {
	own := Issuer{Name: "config"}
	if secret, ok := get("jwt_hs256_secret"); ok && secret != "" {
		if len(secret) < minHS256Secret {
			return fmt.Errorf("jwt_hs256_secret is %d bytes; HS256 needs at least %d", len(secret), minHS256Secret)
		}
		own.Algorithms = append(own.Algorithms, "HS256")
		own.Keys = append(own.Keys, Key{Alg: "HS256", Public: []byte(secret)})
	}
	if key, ok := get("jwt_ed25519_public_key"); ok && key != "" {
		pub, err := ParseEd25519Key(key)
		if err != nil {
			return fmt.Errorf("jwt_ed25519_public_key: %w", err)
		}
		own.Algorithms = append(own.Algorithms, "EdDSA")
		own.Keys = append(own.Keys, Key{Alg: "EdDSA", Public: pub})
	}
	if len(own.Keys) > 0 {
		s.verifier.Issuers = append(s.verifier.Issuers, own)
	}
	names := policyconf.List(get.Or("jwt_issuers", ""))
	if len(names) > MaxIssuers {
		return fmt.Errorf("jwt_issuers: %d issuers, at most %d (MaxIssuers)", len(names), MaxIssuers)
	}
	seen := map[string]string{}
	for _, name := range names {
		is, err := readIssuer(get, name)
		if err != nil {
			return fmt.Errorf("jwt_issuers: %q: %w", name, err)
		}
		if prev, dup := seen[is.Issuer]; dup {
			return fmt.Errorf("jwt_issuers: %q and %q have the same issuer %q", prev, name, is.Issuer)
		}
		seen[is.Issuer] = name
		s.verifier.Issuers = append(s.verifier.Issuers, is)
	}
	return nil
}

// readIssuer reads the issuer called name. Its key set may be empty (the
// host could not fetch one yet): its tokens are then refused as
// unknown_key until a set arrives.
func readIssuer(get policyconf.Getter, name string) (Issuer, error) {
	if !ValidTokenName(name) {
		return Issuer{}, fmt.Errorf("not a name (1 to %d letters, digits, '.', '_', '-', '@' or '+')", maxTokenName)
	}
	is := Issuer{Name: name}
	iss, ok := get(issuerKey(name))
	if !ok || strings.TrimSpace(iss) == "" {
		return Issuer{}, fmt.Errorf("%s is not set: the iss its tokens carry", issuerKey(name))
	}
	is.Issuer = strings.TrimSpace(iss)
	for _, alg := range policyconf.List(get.Or(algorithmsKey(name), "")) {
		switch {
		case alg == "HS256":
			return Issuer{}, fmt.Errorf("%s: HS256 takes a shared secret, never a key from a key set; use jwt_hs256_secret", algorithmsKey(name))
		case !knownAlgorithm(alg):
			return Issuer{}, fmt.Errorf("%s: %q is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA", algorithmsKey(name), alg)
		}
		is.Algorithms = append(is.Algorithms, alg)
	}
	if len(is.Algorithms) == 0 {
		return Issuer{}, fmt.Errorf("%s is not set: the algorithms its tokens are signed with, such as RS256", algorithmsKey(name))
	}
	set, ok := get(jwksKey(name))
	if !ok {
		return Issuer{}, fmt.Errorf("%s is not set: a JWKS, which the host fills in from a jwks block", jwksKey(name))
	}
	keys, skipped, err := ParseJWKS([]byte(set))
	if err != nil {
		return Issuer{}, fmt.Errorf("%s: %w", jwksKey(name), err)
	}
	is.Keys = keys
	if aud, ok := get(audienceKey(name)); ok {
		is.Audiences = policyconf.List(aud)
	}
	usable := 0
	for _, k := range keys {
		for _, alg := range is.Algorithms {
			if (k.Alg == "" || k.Alg == alg) && keyFits(k.Public, alg) {
				usable++
				break
			}
		}
	}
	level := trellis.LevelInfo
	if usable == 0 {
		level = trellis.LevelWarn
	}
	logf(level, "auth: issuer %s: %d keys usable with %s, %d others, %d skipped", name, usable, strings.Join(is.Algorithms, ","), len(keys)-usable, skipped)
	return is, nil
}

// logf logs through the host in the plugin and nowhere in a native test.
var logf = func(level abi.Level, format string, args ...any) {}
