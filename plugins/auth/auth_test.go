package main

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/plugins/internal/jwttest"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

var (
	hsSecret = []byte("0123456789abcdef0123456789abcdef")
	now      = time.Unix(1_800_000_000, 0)
)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// ownKeys is the issuer of keys written in the config, as parseSettings
// makes it from jwt_hs256_secret and jwt_ed25519_public_key.
func ownKeys(secret []byte, pub ed25519.PublicKey) Issuer {
	is := Issuer{Name: "config"}
	if secret != nil {
		is.Algorithms = append(is.Algorithms, "HS256")
		is.Keys = append(is.Keys, Key{Alg: "HS256", Public: secret})
	}
	if pub != nil {
		is.Algorithms = append(is.Algorithms, "EdDSA")
		is.Keys = append(is.Keys, Key{Alg: "EdDSA", Public: pub})
	}
	return is
}

func TestVerify(t *testing.T) {
	pub, priv := newKey(t)
	_, otherPriv := newKey(t)
	v := &Verifier{Issuers: []Issuer{ownKeys(hsSecret, pub)}, Audiences: []string{"orders"}}
	valid := jwttest.Claims{"sub": "ada", "aud": "orders", "exp": now.Unix() + 60}
	root := jwttest.Claims{"sub": "root", "aud": "orders", "exp": now.Unix() + 60}

	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"hs256", jwttest.HS256(hsSecret, valid), nil},
		{"eddsa", jwttest.EdDSA(priv, valid), nil},
		{"aud array", jwttest.HS256(hsSecret, jwttest.Claims{"aud": []string{"billing", "orders"}}), nil},
		{"fractional exp", jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders", "exp": float64(now.Unix()) + 0.5}), nil},
		{"nbf past", jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders", "nbf": now.Unix() - 1}), nil},
		{"hs256 wrong secret", jwttest.HS256([]byte("another-secret-another-secret-xx"), valid), ErrSignature},
		{"eddsa wrong key", jwttest.EdDSA(otherPriv, valid), ErrSignature},
		{"hs256 tampered payload", jwttest.Tamper(jwttest.HS256(hsSecret, valid), root), ErrSignature},
		{"eddsa tampered payload", jwttest.Tamper(jwttest.EdDSA(priv, valid), root), ErrSignature},
		{"alg none", jwttest.WithSignature("none", valid, []byte{0, 0, 0}), ErrAlgorithm},
		{"alg none empty signature", jwttest.Unsigned("none", valid) + ".", ErrMalformed},
		{"alg None", jwttest.WithSignature("None", valid, []byte{0, 0, 0}), ErrAlgorithm},
		{"alg RS256", jwttest.WithSignature("RS256", valid, make([]byte, 256)), ErrAlgorithm},
		{"hs256 keyed with public key", jwttest.HS256(pub, valid), ErrSignature},
		{"expired", jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders", "exp": now.Unix()}), ErrExpired},
		{"nbf future", jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders", "nbf": now.Unix() + 10}), ErrNotYetValid},
		{"exp not a number", jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders", "exp": "tomorrow"}), ErrMalformed},
		{"wrong aud", jwttest.HS256(hsSecret, jwttest.Claims{"aud": "billing"}), ErrAudience},
		{"wrong aud array", jwttest.HS256(hsSecret, jwttest.Claims{"aud": []string{"billing"}}), ErrAudience},
		{"no aud", jwttest.HS256(hsSecret, jwttest.Claims{"sub": "ada"}), ErrAudience},
		{"aud not a string", jwttest.HS256(hsSecret, jwttest.Claims{"aud": 7}), ErrMalformed},
		{"crit header", signHS256(hsSecret, raw(`{"alg":"HS256","crit":["exp"]}`)+"."+raw(`{"aud":"orders"}`)), ErrMalformed},
		{"two parts", "abc.def", ErrMalformed},
		{"padding", jwttest.HS256(hsSecret, valid) + "=", ErrMalformed},
		{"non-canonical signature encoding", flipPaddingBits(jwttest.HS256(hsSecret, valid)), ErrMalformed},
		{"payload not an object", signHS256(hsSecret, raw(`{"alg":"HS256"}`)+"."+raw(`[1]`)), ErrMalformed},
		{"payload not JSON", signHS256(hsSecret, raw(`{"alg":"HS256"}`)+"."+raw(`{"aud":`)), ErrMalformed},
		{"two payloads", signHS256(hsSecret, raw(`{"alg":"HS256"}`)+"."+raw(`{"aud":"orders"}{}`)), ErrMalformed},
		{"too long", strings.Repeat("a", maxTokenLen) + ".b.c", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(tc.tok, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if err == nil && claims == nil {
				t.Fatal("no claims for a valid token")
			}
		})
	}
}

func TestVerifyOnlyAcceptsConfiguredAlgorithms(t *testing.T) {
	pub, priv := newKey(t)
	hsOnly := &Verifier{Issuers: []Issuer{ownKeys(hsSecret, nil)}}
	if _, err := hsOnly.Verify(jwttest.EdDSA(priv, jwttest.Claims{}), now); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("EdDSA with no Ed25519 key: %v", err)
	}
	edOnly := &Verifier{Issuers: []Issuer{ownKeys(nil, pub)}}
	// The classic confusion: HS256 keyed with the public key, which anybody has.
	if _, err := edOnly.Verify(jwttest.HS256(pub, jwttest.Claims{}), now); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("HS256 with no secret: %v", err)
	}
}

func TestVerifyExpRules(t *testing.T) {
	noExp := jwttest.HS256(hsSecret, jwttest.Claims{"sub": "ada"})
	if _, err := (&Verifier{Issuers: []Issuer{ownKeys(hsSecret, nil)}}).Verify(noExp, now); err != nil {
		t.Errorf("exp optional: %v", err)
	}
	if _, err := (&Verifier{Issuers: []Issuer{ownKeys(hsSecret, nil)}, RequireExp: true}).Verify(noExp, now); !errors.Is(err, ErrMissingExp) {
		t.Errorf("exp required: %v", err)
	}
	justExpired := jwttest.HS256(hsSecret, jwttest.Claims{"exp": now.Unix() - 5})
	if _, err := (&Verifier{Issuers: []Issuer{ownKeys(hsSecret, nil)}, Leeway: 10 * time.Second}).Verify(justExpired, now); err != nil {
		t.Errorf("within leeway: %v", err)
	}
}

func TestVerifyReturnsClaimsAsJSONNumbers(t *testing.T) {
	tok := jwttest.HS256(hsSecret, jwttest.Claims{"sub": "ada", "uid": 12345678901234567, "admin": true, "roles": []string{"a", "b"}})
	claims, err := (&Verifier{Issuers: []Issuer{ownKeys(hsSecret, nil)}}).Verify(tok, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sub": "ada", "uid": "12345678901234567", "admin": "true", "roles": `["a","b"]`} {
		if got, ok := ClaimHeaderValue(claims[name]); !ok || got != want {
			t.Errorf("claim %s = %q %v, want %q", name, got, ok, want)
		}
	}
	for _, v := range []any{nil, "", "a\r\nX-Claim-admin: true", "tab\there"} {
		if got, ok := ClaimHeaderValue(v); ok {
			t.Errorf("ClaimHeaderValue(%q) = %q, want refused", v, got)
		}
	}
}

// TestClaimHeaderValueKeepsStringsApartFromJSON: a string claim that
// looks like an array or an object is passed on quoted, so a policy that
// reads claims as JSON (acl) cannot take it for one.
func TestClaimHeaderValueKeepsStringsApartFromJSON(t *testing.T) {
	for in, want := range map[string]string{
		`["admin"]`:          `"[\"admin\"]"`,
		` {"roles":"admin"}`: `" {\"roles\":\"admin\"}"`,
		`"admin"`:            `"\"admin\""`,
		"orders.read [x]":    "orders.read [x]",
		"ada":                "ada",
	} {
		if got, ok := ClaimHeaderValue(in); !ok || got != want {
			t.Errorf("ClaimHeaderValue(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	nested := map[string]any{"roles": []any{"admin"}}
	if got, _ := ClaimHeaderValue(nested); got != `{"roles":["admin"]}` {
		t.Errorf("an object claim: %q", got)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for tok, want := range map[string]bool{
		"a.b.c": true, "eyJ.eyJ.sig-_": true,
		"dev-token": false, "a.b": false, "a..c": false, "a.b.c.d": false, "a.b.c=": false, "a b.c.d": false,
	} {
		if got := LooksLikeJWT(tok); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", tok, got)
		}
	}
}

func TestParseEd25519Key(t *testing.T) {
	pub, _ := newKey(t)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		got, err := ParseEd25519Key(" " + enc.EncodeToString(pub) + "\n")
		if err != nil || !got.Equal(pub) {
			t.Errorf("%v: %v", enc, err)
		}
	}
	if _, err := ParseEd25519Key(base64.StdEncoding.EncodeToString(pub[:31])); err == nil {
		t.Error("accepted a 31-byte key")
	}
	if _, err := ParseEd25519Key("not base64!"); err == nil {
		t.Error("accepted garbage")
	}
}

func mustTokens(t *testing.T, items ...string) TokenSet {
	t.Helper()
	s, err := ParseTokens(items)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenSet(t *testing.T) {
	s := mustTokens(t, "dev-token", "ci-token")
	for tok, want := range map[string]bool{"dev-token": true, "ci-token": true, "dev-toke": false, "": false, "dev-token ": false} {
		if _, got := s.Match(tok); got != want {
			t.Errorf("Match(%q) = %v", tok, got)
		}
	}
	if _, ok := mustTokens(t).Match(""); ok {
		t.Error("an empty set contains the empty token")
	}
}

func TestParseTokensNamesTheirHolders(t *testing.T) {
	s := mustTokens(t, "alice:secret1", "bob: secret2", "legacy-token", "carol:tok:with:colons")
	for tok, want := range map[string]string{
		"secret1":         "alice",
		"secret2":         "bob",
		"legacy-token":    TokenID("legacy-token"),
		"tok:with:colons": "carol",
	} {
		if id, ok := s.Match(tok); !ok || id != want {
			t.Errorf("Match(%q) = %q %v, want %q", tok, id, ok, want)
		}
	}
	for _, tok := range []string{"alice", "alice:secret1", "legacy"} {
		if id, ok := s.Match(tok); ok {
			t.Errorf("Match(%q) = %q, want no match", tok, id)
		}
	}

	// An unnamed token's id is stable, differs between tokens, and does not
	// give the token away.
	id := TokenID("legacy-token")
	if id != TokenID("legacy-token") || id == TokenID("legacy-token2") || len(id) != 25 || id[0] != '#' ||
		strings.Contains(id, "legacy") || ValidTokenName(id) {
		t.Errorf("TokenID = %q", id)
	}

	secret := "s3cret-value"
	for _, items := range [][]string{
		{":" + secret},
		{"al ice:" + secret},
		{"#abc:" + secret},
		{strings.Repeat("a", maxTokenName+1) + ":" + secret},
		{"alice:" + secret, "alice:" + secret + "2"},
		{"alice:" + secret, "bob:" + secret},
		{secret, secret},
		{"alice:"},
	} {
		_, err := ParseTokens(items)
		if err == nil {
			t.Errorf("%q accepted", items)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%q: error quotes the token: %v", items, err)
		}
	}
}

func TestJWTPrincipal(t *testing.T) {
	for _, tc := range []struct {
		claims jwttest.Claims
		want   string
	}{
		{jwttest.Claims{"sub": "ada"}, "jwt:#ada"},
		{jwttest.Claims{"sub": "ada", "iss": "https://issuer.example"}, "jwt:https://issuer.example#ada"},
		{jwttest.Claims{"sub": "a#b/c", "iss": "https://issuer.example/"}, "jwt:https://issuer.example/#a#b/c"},
		// Issuers are escaped, so these two do not meet.
		{jwttest.Claims{"sub": "c", "iss": "a#b"}, "jwt:a%23b#c"},
		{jwttest.Claims{"sub": "b#c", "iss": "a"}, "jwt:a#b#c"},
		{jwttest.Claims{"sub": "x", "iss": "50%"}, "jwt:50%25#x"},
		{jwttest.Claims{"sub": ""}, ""},
		{jwttest.Claims{"sub": 7}, ""},
		{jwttest.Claims{"sub": "a\r\nX-Evil: 1"}, ""},
		{jwttest.Claims{"sub": "ada", "iss": 1}, ""},
		{jwttest.Claims{}, ""},
	} {
		tok := jwttest.HS256(hsSecret, tc.claims)
		claims, err := (&Verifier{Issuers: []Issuer{ownKeys(hsSecret, nil)}}).Verify(tok, now)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := JWTPrincipal(claims)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("JWTPrincipal(%v) = %q %v, want %q", tc.claims, got, ok, tc.want)
		}
	}
}

func TestCredential(t *testing.T) {
	for _, tc := range []struct {
		header  string
		h       trellis.Header
		tok     string
		present bool
	}{
		{"Authorization", trellis.Header{"Authorization": {"Bearer abc"}}, "abc", true},
		{"Authorization", trellis.Header{"authorization": {"bearer   abc "}}, "abc", true},
		{"Authorization", trellis.Header{"Authorization": {"Basic YWRhOng="}}, "", true},
		{"Authorization", trellis.Header{"Authorization": {"Bearer"}}, "", true},
		{"Authorization", trellis.Header{"Authorization": {" "}}, "", false},
		{"Authorization", nil, "", false},
		{"X-API-Key", trellis.Header{"X-API-Key": {"k1"}}, "k1", true},
		{"X-API-Key", trellis.Header{"X-Api-Key": {"Bearer k1"}}, "Bearer k1", true},
		{"X-API-Key", trellis.Header{"Authorization": {"Bearer k1"}}, "", false},
	} {
		tok, present := Credential(tc.h, tc.header)
		if tok != tc.tok || present != tc.present {
			t.Errorf("%s %v: got %q %v, want %q %v", tc.header, tc.h, tok, present, tc.tok, tc.present)
		}
	}
}

func TestIdentityHeadersFindsEveryCase(t *testing.T) {
	h := trellis.Header{"X-Claim-sub": {"a"}, "x-claim-role": {"b"}, "X-CLAIM-": {"c"}, "X-Claims": {"d"}, "X-Other": {"e"},
		"Trellis-Principal": {"f"}, "trellis-principal": {"g"}, "Trellis-Principals": {"h"}}
	got := map[string]bool{}
	for _, n := range IdentityHeaders(h) {
		got[n] = true
	}
	if len(got) != 5 || !got["X-Claim-sub"] || !got["x-claim-role"] || !got["X-CLAIM-"] || !got["Trellis-Principal"] || !got["trellis-principal"] {
		t.Errorf("got %v", got)
	}
}

func TestParseSettings(t *testing.T) {
	pub, _ := newKey(t)
	s, err := parseSettings(policyconf.Map{"tokens": "a, b", "jwt_hs256_secret": string(hsSecret), "jwt_ed25519_public_key": base64.StdEncoding.EncodeToString(pub), "jwt_audience": "orders,billing", "jwt_require_exp": "true", "jwt_leeway": "30s", "claims": "sub, tenant"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	if s.header != "Authorization" || s.tokens.Len() != 2 || !s.verifier.RequireExp ||
		s.verifier.Leeway != 30*time.Second || len(s.verifier.Audiences) != 2 || len(s.claims) != 2 {
		t.Errorf("got %+v", s)
	}
	if s, _ := parseSettings(policyconf.Map{"tokens": "a"}.Get); len(s.claims) != 1 || s.claims[0] != "sub" {
		t.Errorf("default claims: %v", s.claims)
	}
	if s, _ := parseSettings(policyconf.Map{"tokens": "a", "claims": ""}.Get); len(s.claims) != 0 {
		t.Errorf("empty claims: %v", s.claims)
	}

	secret := "short-secret-do-not-print"
	for _, tc := range []struct {
		name string
		get  func(string) (string, bool)
	}{
		{"nothing to accept", policyconf.Map{}.Get},
		{"empty tokens", policyconf.Map{"tokens": " , "}.Get},
		{"short secret", policyconf.Map{"jwt_hs256_secret": secret}.Get},
		{"bad key", policyconf.Map{"jwt_ed25519_public_key": secret}.Get},
		{"bad header", policyconf.Map{"tokens": "a", "header": "X Key"}.Get},
		{"bad require_exp", policyconf.Map{"tokens": "a", "jwt_require_exp": "yes please"}.Get},
		{"bad leeway", policyconf.Map{"tokens": "a", "jwt_leeway": "-1s"}.Get},
		{"bad claim", policyconf.Map{"tokens": "a", "claims": "https://x/roles"}.Get},
		{"bad token name", policyconf.Map{"tokens": "a b:" + secret}.Get},
		{"token twice", policyconf.Map{"tokens": "a:" + secret + ",b:" + secret}.Get},
	} {
		_, err := parseSettings(tc.get)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error quotes the secret: %v", tc.name, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	pub, priv := newKey(t)
	s, err := parseSettings(policyconf.Map{"tokens": "dev-token, ops:ops-token", "jwt_hs256_secret": string(hsSecret), "jwt_ed25519_public_key": base64.RawURLEncoding.EncodeToString(pub), "jwt_audience": "orders"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) trellis.Header { return trellis.Header{"Authorization": {"Bearer " + tok}} }
	good := jwttest.Claims{"sub": "ada", "aud": "orders", "exp": now.Unix() + 60}
	issued := jwttest.Claims{"sub": "ada", "iss": "https://issuer.example", "aud": "orders"}
	for _, tc := range []struct {
		name      string
		h         trellis.Header
		status    int
		reason    string
		challenge string
		principal string
	}{
		{"static token", bearer("dev-token"), 0, "", "", "token:" + TokenID("dev-token")},
		{"named static token", bearer("ops-token"), 0, "", "", "token:ops"},
		{"named static token, scheme in capitals, spaces", trellis.Header{"Authorization": {"BEARER   ops-token  "}}, 0, "", "", "token:ops"},
		{"hs256", bearer(jwttest.HS256(hsSecret, good)), 0, "", "", "jwt:#ada"},
		{"eddsa", bearer(jwttest.EdDSA(priv, good)), 0, "", "", "jwt:#ada"},
		{"with an issuer", bearer(jwttest.EdDSA(priv, issued)), 0, "", "", "jwt:https://issuer.example#ada"},
		{"without a subject", bearer(jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders"})), 0, "", "", ""},
		{"missing", nil, 401, "missing credentials", "Bearer", ""},
		{"basic", trellis.Header{"Authorization": {"Basic YWRhOng="}}, 401, "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"unknown token", bearer("guess"), 401, "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"expired", bearer(jwttest.HS256(hsSecret, jwttest.Claims{"aud": "orders", "exp": now.Unix() - 1})), 401, "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"wrong aud", bearer(jwttest.EdDSA(priv, jwttest.Claims{"aud": "billing"})), 403, "forbidden", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := s.authenticate(tc.h, now)
			if v.status != tc.status || v.reason != tc.reason || v.challenge != tc.challenge || v.principal != tc.principal {
				t.Errorf("got %d %q %q %q, want %d %q %q %q", v.status, v.reason, v.challenge, v.principal, tc.status, tc.reason, tc.challenge, tc.principal)
			}
		})
	}

	apiKey, err := parseSettings(policyconf.Map{"tokens": "k1", "header": "X-API-Key"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	if v := apiKey.authenticate(trellis.Header{"X-API-Key": {"k1"}}, now); v.status != 0 {
		t.Errorf("api key: %+v", v)
	}
	if v := apiKey.authenticate(nil, now); v.status != 401 || v.challenge != "" {
		t.Errorf("api key missing: %+v", v)
	}
}

// flipPaddingBits changes the unused low bits of the token's last base64
// character: the same signature bytes, spelt differently.
func flipPaddingBits(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[last^1])
}

func raw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signHS256 signs header.payload as it is, for payloads jwttest cannot make.
func signHS256(secret []byte, signed string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// FuzzVerify feeds the verifier arbitrary tokens: it must never panic, and
// nothing but a token signed with the configured key may pass.
func FuzzVerify(f *testing.F) {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	v := &Verifier{Issuers: []Issuer{ownKeys(hsSecret, pub)}, Audiences: []string{"orders"}}
	good := jwttest.HS256(hsSecret, jwttest.Claims{"sub": "ada", "aud": "orders"})
	f.Add(good)
	f.Add(jwttest.WithSignature("none", jwttest.Claims{"aud": "orders"}, nil))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		claims, err := v.Verify(tok, now)
		if err == nil && (claims == nil || !strings.HasPrefix(tok, strings.Split(good, ".")[0]+".")) {
			t.Fatalf("accepted %q", tok)
		}
		Credential(trellis.Header{"Authorization": {tok}}, "Authorization")
		LooksLikeJWT(tok)
	})
}
