package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/trellis-mesh/trellis/abi"
)

// Why a JWT was refused. Every one of them is a 401 "invalid credentials"
// except ErrAudience, a 403: the token is genuine but not meant for this
// service. Reason names each for logs and counters.
var (
	ErrMalformed   = errors.New("jwt: malformed")
	ErrAlgorithm   = errors.New("jwt: algorithm not accepted")
	ErrIssuer      = errors.New("jwt: issuer not accepted")
	ErrUnknownKey  = errors.New("jwt: no key of the issuer fits the token (kid, algorithm)")
	ErrSignature   = errors.New("jwt: bad signature")
	ErrExpired     = errors.New("jwt: expired")
	ErrMissingExp  = errors.New("jwt: no exp claim")
	ErrNotYetValid = errors.New("jwt: not valid yet (nbf)")
	ErrAudience    = errors.New("jwt: audience does not match")
)

// Reason is the short name of why err refused a token, as logs and the
// refusal counters say it: "malformed", "algorithm", "issuer",
// "unknown_key", "signature", "expired", "missing_exp", "not_yet_valid",
// "audience"; "invalid" for anything else.
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrMalformed, "malformed"}, {ErrAlgorithm, "algorithm"}, {ErrIssuer, "issuer"},
		{ErrUnknownKey, abi.RefusalUnknownKey}, {ErrSignature, "signature"}, {ErrExpired, "expired"},
		{ErrMissingExp, "missing_exp"}, {ErrNotYetValid, "not_yet_valid"}, {ErrAudience, "audience"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "invalid"
}

// maxTokenLen bounds the work one request can ask for; real tokens are a
// few hundred bytes, rarely over 4 KiB even with many groups.
const maxTokenLen = 16 << 10

// b64 decodes the parts of a token and the members of a JWK. Strict
// refuses non-zero padding bits, so each signature has exactly one
// encoding: a client cannot make many distinct strings out of one token
// (say, to get a fresh rate-limit bucket keyed on the Authorization header
// for each).
var b64 = base64.RawURLEncoding.Strict()

// minHS256Secret is the shortest HS256 secret accepted: RFC 7518 section
// 3.2 requires a key at least as long as the hash output.
const minHS256Secret = 32

// Issuer is one source of tokens: the iss it writes, the algorithms it
// signs with and the keys to check them. Its algorithms are pinned: a
// token may name only one of them, and each is checked only with a key
// made for it, so a token can never choose its own algorithm or key.
type Issuer struct {
	// Name is the issuer's name in the config, for logs.
	Name string
	// Issuer is the iss claim of its tokens. Empty only for the issuer of
	// the keys written in the config (jwt_hs256_secret,
	// jwt_ed25519_public_key), which takes tokens whose iss, if any, no
	// other issuer claims.
	Issuer string
	// Algorithms are the JWS algorithms accepted from it.
	Algorithms []string
	// Keys verify its tokens. A token with a kid is checked only against
	// the keys with that kid (and those without one); one without a kid,
	// against every key that fits its algorithm.
	Keys []Key
	// Audiences, if set, replace Verifier.Audiences for this issuer.
	Audiences []string
}

// Verifier checks compact JWS tokens (RFC 7515/7519) with
// github.com/golang-jwt/jwt/v5: HS256, RS256/384/512, PS256/384/512,
// ES256/384 and EdDSA, each only for an issuer that pins it, with a key
// made for it. "none" is never accepted.
type Verifier struct {
	// Issuers are the accepted issuers, with their keys.
	Issuers []Issuer
	// Audiences, if set, are the accepted values of the aud claim: a token
	// must name at least one of them.
	Audiences []string
	// RequireExp refuses tokens without an exp claim.
	RequireExp bool
	// Leeway is the clock skew allowed when checking exp and nbf.
	Leeway time.Duration
}

// Enabled reports whether any issuer is configured.
func (v *Verifier) Enabled() bool { return len(v.Issuers) > 0 }

// LooksLikeJWT reports whether tok has the shape of a compact JWS: three
// non-empty base64url parts separated by dots.
func LooksLikeJWT(tok string) bool {
	if strings.Count(tok, ".") != 2 {
		return false
	}
	for _, part := range strings.Split(tok, ".") {
		if part == "" || strings.IndexFunc(part, notBase64URL) >= 0 {
			return false
		}
	}
	return true
}

func notBase64URL(c rune) bool {
	return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_')
}

func init() {
	// NumericDates keep their fraction (RFC 7519 section 2 allows one): the
	// library's default rounds exp down to the second.
	jwt.TimePrecision = time.Microsecond
}

// parser verifies signatures only: the claims are checked afterwards,
// per issuer, by checkClaims.
var parser = jwt.NewParser(jwt.WithJSONNumber(), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())

// Verify checks tok's signature with the key of its issuer, then its exp,
// nbf and aud claims against now, and returns its claims. Numbers in the
// claims are json.Number. The payload is decoded before the signature is
// checked, to find the issuer (iss) whose keys and algorithms apply, but
// nothing in it is trusted until the signature has been verified.
func (v *Verifier) Verify(tok string, now time.Time) (map[string]any, error) {
	if len(tok) > maxTokenLen || !LooksLikeJWT(tok) {
		return nil, ErrMalformed
	}
	var issuer *Issuer
	t, err := parser.ParseWithClaims(tok, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		is, keys, err := v.keysFor(t)
		issuer = is
		return keys, err
	})
	if err != nil {
		return nil, mapError(err)
	}
	if !t.Valid || issuer == nil {
		return nil, ErrSignature
	}
	// Decode the verified payload again, strictly: one JSON object and
	// nothing after it, which the library does not insist on.
	claims, err := decodeClaims(tok[strings.IndexByte(tok, '.')+1 : strings.LastIndexByte(tok, '.')])
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(issuer, claims, now); err != nil {
		return nil, err
	}
	return claims, nil
}

// keysFor picks the issuer of t by its iss claim and returns the keys of
// that issuer that may verify t: refusing here, before any signature is
// checked, an algorithm the issuer does not pin, a critical extension and
// a kid no key has.
func (v *Verifier) keysFor(t *jwt.Token) (*Issuer, any, error) {
	if _, crit := t.Header["crit"]; crit {
		// Extensions marked critical must be understood (RFC 7515 4.1.11);
		// this verifier understands none.
		return nil, nil, ErrMalformed
	}
	claims, _ := t.Claims.(jwt.MapClaims)
	is, err := v.issuerFor(claims["iss"])
	if err != nil {
		return nil, nil, err
	}
	alg := t.Method.Alg()
	if !slices.Contains(is.Algorithms, alg) {
		return nil, nil, ErrAlgorithm
	}
	kid, hasKid := "", false
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, nil, ErrMalformed
		}
		kid, hasKid = s, true
	}
	var keys []jwt.VerificationKey
	for _, k := range is.Keys {
		if hasKid && k.ID != "" && k.ID != kid || k.Alg != "" && k.Alg != alg || !keyFits(k.Public, alg) {
			continue
		}
		keys = append(keys, k.Public)
	}
	if len(keys) == 0 {
		return nil, nil, ErrUnknownKey
	}
	return is, jwt.VerificationKeySet{Keys: keys}, nil
}

// issuerFor finds the issuer whose iss is iss; a token without a string
// iss, or of an issuer nobody named, goes to the issuer of the config's
// own keys, if there is one.
func (v *Verifier) issuerFor(iss any) (*Issuer, error) {
	s, isString := iss.(string)
	var keyOnly *Issuer
	for i := range v.Issuers {
		is := &v.Issuers[i]
		if is.Issuer == "" {
			keyOnly = is
		} else if isString && is.Issuer == s {
			return is, nil
		}
	}
	if keyOnly == nil {
		return nil, ErrIssuer
	}
	return keyOnly, nil
}

// mapError turns the library's errors into ours.
func mapError(err error) error {
	for _, ours := range []error{ErrMalformed, ErrAlgorithm, ErrIssuer, ErrUnknownKey} {
		if errors.Is(err, ours) {
			return ours
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	default:
		// An algorithm the library does not know, or no alg at all.
		return ErrAlgorithm
	}
}

func decodeClaims(payloadB64 string) (map[string]any, error) {
	payload, err := b64.DecodeString(payloadB64)
	if err != nil {
		return nil, ErrMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return nil, ErrMalformed
	}
	return claims, nil
}

// checkClaims checks a verified token's times, issuer and audience with
// the library's validator.
func (v *Verifier) checkClaims(is *Issuer, claims map[string]any, now time.Time) error {
	timeOpts := []jwt.ParserOption{jwt.WithLeeway(v.Leeway), jwt.WithTimeFunc(func() time.Time { return now })}
	if v.RequireExp {
		timeOpts = append(timeOpts, jwt.WithExpirationRequired())
	}
	mc := jwt.MapClaims(claims)
	if err := jwt.NewValidator(timeOpts...).Validate(mc); err != nil {
		switch {
		case errors.Is(err, jwt.ErrInvalidType):
			return ErrMalformed
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return ErrMissingExp
		case errors.Is(err, jwt.ErrTokenExpired):
			return ErrExpired
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return ErrNotYetValid
		}
		return ErrMalformed
	}
	if is.Issuer != "" {
		if err := jwt.NewValidator(append(timeOpts, jwt.WithIssuer(is.Issuer))...).Validate(mc); err != nil {
			return ErrIssuer
		}
	}
	auds := v.Audiences
	if is.Audiences != nil {
		auds = is.Audiences
	}
	if len(auds) > 0 {
		if !audienceShape(claims["aud"]) {
			return ErrMalformed
		}
		if err := jwt.NewValidator(append(timeOpts, jwt.WithAudience(auds...))...).Validate(mc); err != nil {
			return ErrAudience
		}
	}
	return nil
}

// audienceShape reports whether aud is absent, a string or an array of
// strings: the library takes any other type for no audience at all, which
// would make a token with "aud": 7 forbidden rather than malformed.
func audienceShape(aud any) bool {
	switch a := aud.(type) {
	case nil, string:
		return true
	case []any:
		for _, e := range a {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// ParseEd25519Key decodes an Ed25519 public key given as base64 (standard
// or URL alphabet, padded or not) of its 32 bytes.
func ParseEd25519Key(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("an Ed25519 public key is %d bytes, this one is %d", ed25519.PublicKeySize, len(b))
			}
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("not base64")
}

// ClaimHeaderValue renders a claim as a header value: a string as it is,
// a number or a boolean as JSON writes it, an array or an object as compact
// JSON. A string that would read as JSON (its first non-blank character is
// '[', '{' or '"') is written as a JSON string, quoted, so that a string
// claim never passes for an array or an object: a user's display name
// `["admin"]` must not read as a list of roles. It reports false for a
// null claim and for a string a header cannot carry (one with control
// characters such as CR or LF).
func ClaimHeaderValue(v any) (string, bool) {
	switch c := v.(type) {
	case nil:
		return "", false
	case string:
		if c == "" || strings.IndexFunc(c, isControl) >= 0 {
			return "", false
		}
		if t := strings.TrimLeft(c, " \t"); t != "" && strings.IndexByte(`[{"`, t[0]) >= 0 {
			b, err := json.Marshal(c)
			if err != nil {
				return "", false
			}
			return string(b), true
		}
		return c, true
	case json.Number:
		return c.String(), true
	case bool:
		return strconv.FormatBool(c), true
	default:
		b, err := json.Marshal(c)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
