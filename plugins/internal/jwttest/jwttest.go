// Package jwttest mints JSON Web Tokens and key sets for the auth policy's
// tests: valid ones signed with any algorithm the policy takes (HS256 and
// EdDSA by hand, the rest through github.com/golang-jwt/jwt/v5), the JWKS
// an identity provider publishes, and the broken kinds a verifier must
// refuse (another algorithm, a payload changed after signing).
package jwttest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"github.com/golang-jwt/jwt/v5"
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

// Sign returns a token signed by the jwt library with method and key (an
// *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey or []byte), with
// kid in its header when it is not empty: the tokens a real identity
// provider issues.
func Sign(method jwt.SigningMethod, key any, kid string, claims Claims) string {
	t := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		// Only a test's own mistake can get here: a key of the wrong type.
		panic("jwttest: " + err.Error())
	}
	return s
}

// WithHeader returns a token with header and claims, signed over their
// encoding with HMAC-SHA256 and secret: for headers Sign would not write
// (crit, a kid of the wrong type).
func WithHeader(header map[string]any, secret []byte, claims Claims) string {
	signed := b64JSON(header) + "." + b64JSON(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// JWK is one public key of a JSON Web Key Set (RFC 7517), as an identity
// provider publishes it.
type JWK = map[string]any

// PublicJWK returns the JWK of pub (an *rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey) with kid and, when alg is not empty, alg.
func PublicJWK(pub any, kid, alg string) JWK {
	b64 := base64.RawURLEncoding.EncodeToString
	k := JWK{"kid": kid, "use": "sig"}
	if alg != "" {
		k["alg"] = alg
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k["kty"], k["n"], k["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		raw, err := p.Bytes() // 0x04 || X || Y
		if err != nil {
			panic("jwttest: " + err.Error())
		}
		k["kty"], k["crv"], k["x"], k["y"] = "EC", p.Curve.Params().Name, b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		k["kty"], k["crv"], k["x"] = "OKP", "Ed25519", b64(p)
	default:
		panic(fmt.Sprintf("jwttest: no JWK for %T", pub))
	}
	return k
}

// JWKS returns the JSON of a key set holding keys.
func JWKS(keys ...JWK) string {
	if keys == nil {
		keys = []JWK{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic("jwttest: " + err.Error())
	}
	return string(b)
}
