package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/trellis-mesh/trellis/abi"
)

// Bounds on a key set. A JWKS reaches the policy as one config value, so
// it is at most abi.MaxConfigValueLen bytes; real providers publish two to
// five keys, a few hundred bytes each.
const (
	// MaxJWKSLen is the largest key set accepted, in bytes.
	MaxJWKSLen = abi.MaxConfigValueLen
	// MaxKeys is the most keys one set may hold, usable or not.
	MaxKeys = 64
	// minRSABits and maxRSABits bound an RSA modulus: below 2048 bits is
	// breakable (RFC 7518 section 3.3 requires 2048), above 8192 a token
	// costs too much to check.
	minRSABits = 2048
	maxRSABits = 8192
)

// Key is one verification key of an issuer.
type Key struct {
	// ID is the key's kid; empty when the set gave none.
	ID string
	// Alg is the one algorithm the key may verify, when its JWK names one.
	Alg string
	// Public is an *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or,
	// for HS256 only, the []byte secret from the config.
	Public any
}

// ErrJWKS is wrapped by every error of ParseJWKS.
var ErrJWKS = errors.New("jwks")

// jwk holds the members of a JSON Web Key (RFC 7517, 7518 section 6, RFC
// 8037) that a public signature key uses. Private members (d, p, q, k...)
// are never read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS reads a JSON Web Key Set, {"keys":[...]}, into the keys it can
// verify signatures with. A key for another use ("use":"enc"), of a type
// or curve this policy does not verify with, or that does not decode is
// skipped, and counted in skipped, so that a provider publishing a new key
// type breaks nothing; a symmetric ("oct") key is always skipped: secrets
// do not come from a key set. The set itself must be JSON of at most
// MaxJWKSLen bytes holding at most MaxKeys keys.
func ParseJWKS(data []byte) (keys []Key, skipped int, err error) {
	if len(data) > MaxJWKSLen {
		return nil, 0, fmt.Errorf("%w: %d bytes, at most %d (MaxJWKSLen)", ErrJWKS, len(data), MaxJWKSLen)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&set); err != nil || dec.More() {
		return nil, 0, fmt.Errorf("%w: not a JSON object with a keys array", ErrJWKS)
	}
	if set.Keys == nil {
		return nil, 0, fmt.Errorf("%w: no keys member", ErrJWKS)
	}
	if len(set.Keys) > MaxKeys {
		return nil, 0, fmt.Errorf("%w: %d keys, at most %d (MaxKeys)", ErrJWKS, len(set.Keys), MaxKeys)
	}
	for _, raw := range set.Keys {
		var k jwk
		if json.Unmarshal(raw, &k) != nil {
			skipped++
			continue
		}
		key, ok := k.public()
		if !ok {
			skipped++
			continue
		}
		keys = append(keys, key)
	}
	return keys, skipped, nil
}

// public converts a signature key; it reports false for any other.
func (k jwk) public() (Key, bool) {
	if k.Use != "" && k.Use != "sig" {
		return Key{}, false
	}
	key := Key{ID: k.Kid, Alg: k.Alg}
	if k.Alg != "" && !knownAlgorithm(k.Alg) {
		return Key{}, false
	}
	switch k.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 || len(n) == 0 || n[0] == 0 {
			return Key{}, false
		}
		mod := new(big.Int).SetBytes(n)
		exp := new(big.Int).SetBytes(e)
		if bits := mod.BitLen(); bits < minRSABits || bits > maxRSABits || exp.Int64() < 3 || exp.Bit(0) == 0 {
			return Key{}, false
		}
		key.Public = &rsa.PublicKey{N: mod, E: int(exp.Int64())}
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return Key{}, false
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return Key{}, false
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return Key{}, false
		}
		key.Public = pub
	case "OKP":
		x, err := b64.DecodeString(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, false
		}
		key.Public = ed25519.PublicKey(x)
	default:
		return Key{}, false
	}
	if key.Alg != "" && !keyFits(key.Public, key.Alg) {
		return Key{}, false
	}
	return key, true
}

// Algorithms this policy verifies, by the family of key each needs.
var algorithms = map[string]string{
	"HS256": "hmac",
	"RS256": "rsa", "RS384": "rsa", "RS512": "rsa", "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
	"ES256": "P-256", "ES384": "P-384",
	"EdDSA": "ed25519",
}

func knownAlgorithm(alg string) bool { _, ok := algorithms[alg]; return ok }

// keyFits reports whether key is of the kind alg verifies with: a token's
// algorithm never gets a key made for another, which is what stops an
// HS256 token "signed" with an RSA public key.
func keyFits(key any, alg string) bool {
	switch k := key.(type) {
	case []byte:
		return algorithms[alg] == "hmac"
	case *rsa.PublicKey:
		return algorithms[alg] == "rsa"
	case *ecdsa.PublicKey:
		return algorithms[alg] == k.Curve.Params().Name
	case ed25519.PublicKey:
		return algorithms[alg] == "ed25519"
	}
	return false
}
