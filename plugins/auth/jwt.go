package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Why a JWT was refused. Every one of them is a 401 "invalid credentials"
// except ErrAudience, a 403: the token is genuine but not meant for this
// service.
var (
	ErrMalformed   = errors.New("jwt: malformed")
	ErrAlgorithm   = errors.New("jwt: algorithm not accepted")
	ErrSignature   = errors.New("jwt: bad signature")
	ErrExpired     = errors.New("jwt: expired")
	ErrMissingExp  = errors.New("jwt: no exp claim")
	ErrNotYetValid = errors.New("jwt: not valid yet (nbf)")
	ErrAudience    = errors.New("jwt: audience does not match")
)

// maxTokenLen bounds the work one request can ask for; real tokens are a
// few hundred bytes.
const maxTokenLen = 16 << 10

// b64 decodes the parts of a token. Strict refuses non-zero padding bits,
// so each signature has exactly one encoding: a client cannot make many
// distinct strings out of one token (say, to get a fresh rate-limit bucket
// keyed on the Authorization header for each).
var b64 = base64.RawURLEncoding.Strict()

// minHS256Secret is the shortest HS256 secret accepted: RFC 7518 section
// 3.2 requires a key at least as long as the hash output.
const minHS256Secret = 32

// Verifier checks compact JWS tokens (RFC 7515/7519) signed with HS256 or
// EdDSA (Ed25519, RFC 8037). An algorithm is accepted only if its key is
// configured, so a token can never pick a key meant for another algorithm,
// and "none" is never accepted.
type Verifier struct {
	// HS256Secret, if set, verifies HS256 tokens.
	HS256Secret []byte
	// Ed25519Key, if set, verifies EdDSA tokens.
	Ed25519Key ed25519.PublicKey
	// Audiences, if set, are the accepted values of the aud claim: a token
	// must name at least one of them.
	Audiences []string
	// RequireExp refuses tokens without an exp claim.
	RequireExp bool
	// Leeway is the clock skew allowed when checking exp and nbf.
	Leeway time.Duration
}

// Enabled reports whether any key is configured.
func (v *Verifier) Enabled() bool { return len(v.HS256Secret) > 0 || len(v.Ed25519Key) > 0 }

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

// Verify checks tok's signature, then its exp, nbf and aud claims against
// now, and returns its claims. Numbers in the claims are json.Number. The
// payload is not decoded before the signature has been checked.
func (v *Verifier) Verify(tok string, now time.Time) (map[string]any, error) {
	if len(tok) > maxTokenLen || !LooksLikeJWT(tok) {
		return nil, ErrMalformed
	}
	parts := strings.Split(tok, ".")
	headerJSON, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, ErrMalformed
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, ErrMalformed
	}
	var header struct {
		Alg  string          `json:"alg"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return nil, ErrMalformed
	}
	if header.Crit != nil {
		// Extensions marked critical must be understood (RFC 7515 4.1.11);
		// this verifier understands none.
		return nil, ErrMalformed
	}
	signed := tok[:len(parts[0])+1+len(parts[1])]
	switch {
	case header.Alg == "HS256" && len(v.HS256Secret) > 0:
		mac := hmac.New(sha256.New, v.HS256Secret)
		mac.Write([]byte(signed))
		if !hmac.Equal(mac.Sum(nil), sig) {
			return nil, ErrSignature
		}
	case header.Alg == "EdDSA" && len(v.Ed25519Key) == ed25519.PublicKeySize:
		if !ed25519.Verify(v.Ed25519Key, []byte(signed), sig) {
			return nil, ErrSignature
		}
	default:
		return nil, ErrAlgorithm
	}

	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, ErrMalformed
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.checkTimes(claims, now); err != nil {
		return nil, err
	}
	if err := v.checkAudience(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return nil, ErrMalformed
	}
	return claims, nil
}

func (v *Verifier) checkTimes(claims map[string]any, now time.Time) error {
	t := float64(now.UnixNano()) / 1e9
	leeway := v.Leeway.Seconds()
	exp, hasExp, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return err
	case !hasExp && v.RequireExp:
		return ErrMissingExp
	case hasExp && t >= exp+leeway:
		return ErrExpired
	}
	nbf, hasNbf, err := numericDate(claims, "nbf")
	switch {
	case err != nil:
		return err
	case hasNbf && t+leeway < nbf:
		return ErrNotYetValid
	}
	return nil
}

// numericDate reads a NumericDate claim: seconds since the epoch, maybe
// with a fraction. A claim of another type makes the token malformed.
func numericDate(claims map[string]any, name string) (float64, bool, error) {
	raw, ok := claims[name]
	if !ok {
		return 0, false, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return 0, false, ErrMalformed
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false, ErrMalformed
	}
	return f, true, nil
}

func (v *Verifier) checkAudience(claims map[string]any) error {
	if len(v.Audiences) == 0 {
		return nil
	}
	var auds []string
	switch aud := claims["aud"].(type) {
	case nil:
		return ErrAudience
	case string:
		auds = []string{aud}
	case []any:
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return ErrMalformed
			}
			auds = append(auds, s)
		}
	default:
		return ErrMalformed
	}
	for _, a := range auds {
		for _, want := range v.Audiences {
			if a == want {
				return nil
			}
		}
	}
	return ErrAudience
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
// JSON. It reports false for a null claim and for a string a header cannot
// carry (one with control characters such as CR or LF).
func ClaimHeaderValue(v any) (string, bool) {
	switch c := v.(type) {
	case nil:
		return "", false
	case string:
		if c == "" || strings.IndexFunc(c, isControl) >= 0 {
			return "", false
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
