// Package jwttest mints JSON Web Tokens for the auth policy's tests: valid
// ones signed with HS256 or EdDSA, and the broken kinds a verifier must
// refuse (another algorithm, a payload changed after signing).
package jwttest

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Claims is a token's payload.
type Claims = map[string]any

func b64JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a test's own literal can get here: claims that are not JSON.
		panic("jwttest: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Unsigned returns header.payload for a token with algorithm alg.
func Unsigned(alg string, claims Claims) string {
	return b64JSON(map[string]string{"alg": alg, "typ": "JWT"}) + "." + b64JSON(claims)
}

// WithSignature returns a token with algorithm alg and signature sig, raw
// bytes, whatever they are.
func WithSignature(alg string, claims Claims, sig []byte) string {
	return Unsigned(alg, claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// HS256 returns a token signed with HMAC-SHA256 and secret.
func HS256(secret []byte, claims Claims) string {
	signed := Unsigned("HS256", claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// EdDSA returns a token signed with Ed25519 and priv.
func EdDSA(priv ed25519.PrivateKey, claims Claims) string {
	signed := Unsigned("EdDSA", claims)
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(signed)))
}

// Tamper replaces the payload of tok with claims and keeps its header and
// signature, as an attacker raising their own privileges would.
func Tamper(tok string, claims Claims) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tok
	}
	parts[1] = b64JSON(claims)
	return strings.Join(parts, ".")
}
