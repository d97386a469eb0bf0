package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/trellis-mesh/trellis/plugins/internal/jwttest"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
)

const corpIss = "https://idp.example/realms/corp"

// idpKeys are an identity provider's signing keys, made once: RSA key
// generation is slow.
type idpKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	p256      *ecdsa.PrivateKey
	p384      *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     idpKeys
)

func testKeys(t testing.TB) idpKeys {
	t.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		keys.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, keys.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
	})
	return keys
}

// corpSettings is a config with one issuer whose key set holds one key of
// each kind, and the algorithms algs pinned.
func corpSettings(t *testing.T, algs string, extra policyconf.Map) *settings {
	t.Helper()
	k := testKeys(t)
	cfg := policyconf.Map{
		"jwt_issuers":          "corp",
		"jwks.corp":            jwttest.JWKS(jwttest.PublicJWK(&k.rsa.PublicKey, "rsa-1", ""), jwttest.PublicJWK(&k.p256.PublicKey, "ec-1", "ES256"), jwttest.PublicJWK(&k.p384.PublicKey, "ec-2", "ES384"), jwttest.PublicJWK(k.ed.Public(), "ed-1", "EdDSA")),
		"jwks.corp.issuer":     corpIss,
		"jwks.corp.algorithms": algs,
		"jwt_audience":         "orders",
	}
	for key, v := range extra {
		cfg[key] = v
	}
	s, err := parseSettings(cfg.Get)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyEveryAlgorithmFromAKeySet(t *testing.T) {
	k := testKeys(t)
	s := corpSettings(t, "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA", nil)
	claims := jwttest.Claims{"iss": corpIss, "sub": "ada", "aud": "orders", "exp": now.Unix() + 60}
	for _, tc := range []struct {
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{jwt.SigningMethodRS256, k.rsa, "rsa-1"},
		{jwt.SigningMethodRS384, k.rsa, "rsa-1"},
		{jwt.SigningMethodRS512, k.rsa, "rsa-1"},
		{jwt.SigningMethodPS256, k.rsa, "rsa-1"},
		{jwt.SigningMethodPS384, k.rsa, "rsa-1"},
		{jwt.SigningMethodPS512, k.rsa, "rsa-1"},
		{jwt.SigningMethodES256, k.p256, "ec-1"},
		{jwt.SigningMethodES384, k.p384, "ec-2"},
		{jwt.SigningMethodEdDSA, k.ed, "ed-1"},
		{jwt.SigningMethodRS256, k.rsa, ""}, // no kid: every key that fits is tried
		{jwt.SigningMethodES256, k.p256, ""},
	} {
		t.Run(tc.method.Alg()+" "+tc.kid, func(t *testing.T) {
			got, err := s.verifier.Verify(jwttest.Sign(tc.method, tc.key, tc.kid, claims), now)
			if err != nil || got["sub"] != "ada" {
				t.Fatalf("Verify = %v, %v", got, err)
			}
		})
	}
}

// TestVerifyRefusesForgeries tries what an attacker who knows the issuer's
// public keys (everyone does: they are published) would try.
func TestVerifyRefusesForgeries(t *testing.T) {
	k := testKeys(t)
	s := corpSettings(t, "RS256,ES256", policyconf.Map{"jwt_hs256_secret": string(hsSecret)})
	good := jwttest.Claims{"iss": corpIss, "sub": "ada", "aud": "orders", "exp": now.Unix() + 60}
	root := jwttest.Claims{"iss": corpIss, "sub": "root", "aud": "orders", "exp": now.Unix() + 60}
	rsaDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})
	nJSON, _ := json.Marshal(jwttest.PublicJWK(&k.rsa.PublicKey, "rsa-1", ""))

	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"genuine RS256", jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", good), nil},
		{"genuine ES256", jwttest.Sign(jwt.SigningMethodES256, k.p256, "ec-1", good), nil},
		{"alg none", jwttest.WithSignature("none", good, nil) + "AA", ErrAlgorithm},
		{"alg none, no signature", jwttest.Unsigned("none", good) + ".", ErrMalformed},
		// Key confusion: HS256 "signed" with the issuer's public key as the
		// secret, in every form it is published in.
		{"HS256 keyed with the RSA PEM", jwttest.HS256(rsaPEM, good), ErrAlgorithm},
		{"HS256 keyed with the RSA DER", jwttest.HS256(rsaDER, good), ErrAlgorithm},
		{"HS256 keyed with the JWK", jwttest.HS256(nJSON, good), ErrAlgorithm},
		{"HS256 keyed with the RSA PEM, kid of the RSA key", jwttest.WithHeader(map[string]any{"alg": "HS256", "kid": "rsa-1"}, rsaPEM, good), ErrAlgorithm},
		// The config's own HS256 secret is for tokens of no named issuer:
		// it cannot sign for corp.
		{"HS256 with the config's secret, as corp", jwttest.HS256(hsSecret, good), ErrAlgorithm},
		{"RS384, not pinned", jwttest.Sign(jwt.SigningMethodRS384, k.rsa, "rsa-1", good), ErrAlgorithm},
		{"PS256 with the RS256 key, not pinned", jwttest.Sign(jwt.SigningMethodPS256, k.rsa, "rsa-1", good), ErrAlgorithm},
		{"EdDSA, not pinned", jwttest.Sign(jwt.SigningMethodEdDSA, k.ed, "ed-1", good), ErrAlgorithm},
		{"ES256 naming the RSA key's kid", jwttest.Sign(jwt.SigningMethodES256, k.p256, "rsa-1", good), ErrUnknownKey},
		{"RS256 naming the EC key's kid", jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "ec-1", good), ErrUnknownKey},
		{"RS256 by another key", jwttest.Sign(jwt.SigningMethodRS256, k.rsa2, "rsa-1", good), ErrSignature},
		{"RS256 by another key, no kid", jwttest.Sign(jwt.SigningMethodRS256, k.rsa2, "", good), ErrSignature},
		{"unknown kid", jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-9", good), ErrUnknownKey},
		{"kid not a string", jwttest.WithHeader(map[string]any{"alg": "RS256", "kid": 1}, nil, good), ErrMalformed},
		{"tampered payload", jwttest.Tamper(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", good), root), ErrSignature},
		{"another issuer", jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": "https://evil.example", "aud": "orders"}), ErrAlgorithm},
		{"crit header", jwttest.WithHeader(map[string]any{"alg": "RS256", "crit": []string{"x"}}, nil, good), ErrMalformed},
		{"expired", jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": corpIss, "aud": "orders", "exp": now.Unix() - 1}), ErrExpired},
		{"wrong audience", jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": corpIss, "aud": "billing"}), ErrAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.verifier.Verify(tc.tok, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyUnknownIssuerWithoutConfigKeys(t *testing.T) {
	k := testKeys(t)
	s := corpSettings(t, "RS256", nil)
	for _, claims := range []jwttest.Claims{{"iss": "https://other.example"}, {}, {"iss": 7}} {
		if _, err := s.verifier.Verify(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", claims), now); !errors.Is(err, ErrIssuer) {
			t.Errorf("%v: Verify = %v, want %v", claims, err, ErrIssuer)
		}
	}
}

func TestIssuerAudienceOverridesTheDefault(t *testing.T) {
	k := testKeys(t)
	s := corpSettings(t, "RS256", policyconf.Map{"jwks.corp.audience": "billing, reports"})
	for aud, want := range map[string]error{"billing": nil, "reports": nil, "orders": ErrAudience} {
		_, err := s.verifier.Verify(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": corpIss, "aud": aud}), now)
		if !errors.Is(err, want) {
			t.Errorf("aud %s: %v, want %v", aud, err, want)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	k := testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := jwttest.PublicJWK(&k.p256.PublicKey, "bad", "")
	offCurve["y"] = offCurve["x"]
	p224JWK := jwttest.PublicJWK(&k.p256.PublicKey, "p224", "")
	p224JWK["crv"] = "P-224"
	_ = p224
	enc := jwttest.PublicJWK(&k.rsa.PublicKey, "enc", "")
	enc["use"] = "enc"
	mismatch := jwttest.PublicJWK(&k.rsa.PublicKey, "mismatch", "ES256")
	secret := jwttest.JWK{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(hsSecret), "kid": "hs"}
	set := jwttest.JWKS(
		jwttest.PublicJWK(&k.rsa.PublicKey, "rsa", "RS256"),
		jwttest.PublicJWK(&k.p256.PublicKey, "ec", ""),
		jwttest.PublicJWK(k.ed.Public(), "ed", ""),
		jwttest.PublicJWK(&small.PublicKey, "small", ""), offCurve, p224JWK, enc, mismatch, secret,
		jwttest.JWK{"kty": "RSA", "n": "not base64!", "e": "AQAB"},
	)
	got, skipped, err := ParseJWKS([]byte(set))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, key := range got {
		ids = append(ids, key.ID)
	}
	if strings.Join(ids, ",") != "rsa,ec,ed" || skipped != 7 {
		t.Fatalf("keys %v, %d skipped; want rsa,ec,ed and 7 skipped", ids, skipped)
	}

	many := make([]jwttest.JWK, MaxKeys+1)
	for i := range many {
		many[i] = jwttest.PublicJWK(k.ed.Public(), fmt.Sprint(i), "")
	}
	for name, data := range map[string]string{
		"too many keys":     jwttest.JWKS(many...),
		"too long":          `{"keys":[],"x":"` + strings.Repeat("a", MaxJWKSLen) + `"}`,
		"not JSON":          `{"keys":`,
		"no keys":           `{}`,
		"keys not an array": `{"keys":{}}`,
		"two values":        `{"keys":[]} {}`,
		"an array":          `[]`,
	} {
		if _, _, err := ParseJWKS([]byte(data)); !errors.Is(err, ErrJWKS) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got, _, err := ParseJWKS([]byte(jwttest.JWKS(many[:MaxKeys]...))); err != nil || len(got) != MaxKeys {
		t.Errorf("MaxKeys keys: %d, %v", len(got), err)
	}
}

func TestParseSettingsIssuers(t *testing.T) {
	k := testKeys(t)
	set := jwttest.JWKS(jwttest.PublicJWK(&k.rsa.PublicKey, "rsa-1", ""))
	base := func(extra policyconf.Map) policyconf.Map {
		m := policyconf.Map{"jwt_issuers": "corp", "jwks.corp": set, "jwks.corp.issuer": corpIss, "jwks.corp.algorithms": "RS256"}
		for key, v := range extra {
			m[key] = v
		}
		return m
	}
	if _, err := parseSettings(base(nil).Get); err != nil {
		t.Fatal(err)
	}
	// A set the host could not fetch yet is empty: the policy loads, and
	// refuses corp's tokens until keys arrive.
	s, err := parseSettings(base(policyconf.Map{"jwks.corp": `{"keys":[]}`}).Get)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.verifier.Verify(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": corpIss}), now); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("empty set: %v", err)
	}
	var many []string
	for i := range MaxIssuers + 1 {
		many = append(many, fmt.Sprint("i", i))
	}
	for name, m := range map[string]policyconf.Map{
		"no set":            base(policyconf.Map{"jwks.corp": ""}),
		"no issuer":         base(policyconf.Map{"jwks.corp.issuer": " "}),
		"no algorithms":     base(policyconf.Map{"jwks.corp.algorithms": ""}),
		"alg none":          base(policyconf.Map{"jwks.corp.algorithms": "none"}),
		"HS256 from a set":  base(policyconf.Map{"jwks.corp.algorithms": "RS256,HS256"}),
		"unknown alg":       base(policyconf.Map{"jwks.corp.algorithms": "RS1"}),
		"bad name":          base(policyconf.Map{"jwt_issuers": "co rp"}),
		"bad set":           base(policyconf.Map{"jwks.corp": "{"}),
		"too many issuers":  base(policyconf.Map{"jwt_issuers": strings.Join(many, ",")}),
		"same issuer twice": base(policyconf.Map{"jwt_issuers": "corp,corp2", "jwks.corp2": set, "jwks.corp2.issuer": corpIss, "jwks.corp2.algorithms": "RS256"}),
	} {
		if name == "no set" {
			delete(m, "jwks.corp")
		}
		if _, err := parseSettings(m.Get); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAuthenticateNamesTheReason(t *testing.T) {
	k := testKeys(t)
	s := corpSettings(t, "RS256", policyconf.Map{"tokens": "ops:ops-token"})
	bearer := func(tok string) map[string][]string { return map[string][]string{"Authorization": {"Bearer " + tok}} }
	for _, tc := range []struct {
		h   map[string][]string
		why string
	}{
		{nil, "missing"},
		{map[string][]string{"Authorization": {"Basic x"}}, "scheme"},
		{bearer("guess"), "unknown_token"},
		{bearer(jwttest.Sign(jwt.SigningMethodRS256, k.rsa2, "rsa-1", jwttest.Claims{"iss": corpIss})), "signature"},
		{bearer(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-7", jwttest.Claims{"iss": corpIss})), "unknown_key"},
		{bearer(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": corpIss, "aud": "x"})), "audience"},
		{bearer(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": "https://x"})), "issuer"},
		{bearer(jwttest.Sign(jwt.SigningMethodRS256, k.rsa, "rsa-1", jwttest.Claims{"iss": corpIss, "aud": "orders"})), ""},
	} {
		if v := s.authenticate(tc.h, now); v.why != tc.why || (tc.why == "") != (v.status == 0) {
			t.Errorf("%v: status %d why %q, want %q", tc.h, v.status, v.why, tc.why)
		}
	}
}

// FuzzParseJWKS feeds the key-set parser arbitrary bytes: it never panics,
// never returns more than MaxKeys keys, and every key it returns is one a
// token could be verified with.
func FuzzParseJWKS(f *testing.F) {
	k := testKeys(f)
	f.Add([]byte(jwttest.JWKS(jwttest.PublicJWK(&k.rsa.PublicKey, "r", "RS256"), jwttest.PublicJWK(&k.p256.PublicKey, "e", ""), jwttest.PublicJWK(k.ed.Public(), "d", ""))))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-384","x":"","y":""},{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := ParseJWKS(data)
		if err != nil {
			if len(keys) != 0 {
				t.Fatal("keys with an error")
			}
			return
		}
		if len(keys)+skipped > MaxKeys {
			t.Fatalf("%d keys and %d skipped", len(keys), skipped)
		}
		for _, key := range keys {
			fits := false
			for alg := range algorithms {
				fits = fits || keyFits(key.Public, alg)
			}
			if !fits {
				t.Fatalf("key %q of type %T fits no algorithm", key.ID, key.Public)
			}
			if _, secret := key.Public.([]byte); secret {
				t.Fatal("a secret from a key set")
			}
		}
	})
}
