package plugins_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
	"github.com/trellis-mesh/trellis/plugins/internal/jwttest"
)

// idp is an OpenID provider on a real HTTP server: a discovery document
// and a key set that a test rotates, or takes down.
type idp struct {
	srv    *httptest.Server
	mu     sync.Mutex
	keys   []jwttest.JWK
	status int
}

func newIDP(t *testing.T, keys ...jwttest.JWK) *idp {
	p := &idp{keys: keys, status: 200}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/certs"})
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=0")
		w.WriteHeader(p.status)
		w.Write([]byte(jwttest.JWKS(p.keys...)))
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) serve(status int, keys ...jwttest.JWK) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.keys = status, keys
}

// TestAuthKeyRotation runs the auth policy against keys the host fetches
// from a provider through OIDC discovery: a token of the provider's
// current key is accepted, the provider rotates, and a token signed with
// the new key is accepted while one signed with the removed key is
// refused; when the provider goes down, the last good keys stay.
func TestAuthKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := newIDP(t, jwttest.PublicJWK(&oldKey.PublicKey, "2026-01", "RS256"))

	h := trellistest.NewHost(t)
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"jwt_issuers":          "corp",
		"jwks.corp.algorithms": "RS256,ES256",
		"jwt_audience":         "orders",
	}, nil, nil), func(s *host.Spec) {
		s.KeySources = []host.KeySource{{Name: "corp", Issuer: p.srv.URL, MinRefresh: 50 * time.Millisecond, MaxRefresh: 200 * time.Millisecond}}
	})
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"), behind(nil, "auth"))

	claims := jwttest.Claims{"iss": p.srv.URL, "sub": "ada", "aud": "orders", "exp": time.Now().Add(time.Hour).Unix()}
	byOld := jwttest.Sign(jwt.SigningMethodRS256, oldKey, "2026-01", claims)
	byNew := jwttest.Sign(jwt.SigningMethodES256, newKey, "2026-02", claims)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	m := request(t, h, "claims", "", bearer(byOld)...)
	expect(t, "old key before rotation", m, "", "ada")
	if got := m.Header.Get("X-Seen-Principal"); got != "jwt:"+p.srv.URL+"#ada" {
		t.Errorf("principal %q", got)
	}
	expect(t, "new key before rotation", request(t, h, "claims", "", bearer(byNew)...), "401", "invalid credentials")

	p.serve(200, jwttest.PublicJWK(&newKey.PublicKey, "2026-02", "ES256"))
	if !h.WaitLog(10*time.Second, "plugin reloaded with new keys", "plugin=auth") {
		t.Fatal("the policy was not reloaded after the rotation")
	}
	expect(t, "new key after rotation", request(t, h, "claims", "", bearer(byNew)...), "", "ada")
	m = request(t, h, "claims", "", bearer(byOld)...)
	expect(t, "removed key after rotation", m, "401", "invalid credentials")
	noLeak(t, "removed key", m, byOld, "2026-01", "unknown_key")

	// The provider goes down: fetches fail, the keys stay.
	p.serve(503)
	if !h.WaitLog(10*time.Second, "key set fetch failed", "failures=2") {
		t.Fatal("no failed fetch logged")
	}
	expect(t, "new key while the provider is down", request(t, h, "claims", "", bearer(byNew)...), "", "ada")

	// Each refusal is in the log with its reason, and in a counter.
	if !h.WaitLog(5*time.Second, "auth: refused: reason=unknown_key") {
		t.Error("the refusal's reason is not in the log")
	}
	if n := kvCounter(t, h, "auth.refused.unknown_key"); n < 1 {
		t.Errorf("refused.unknown_key = %d, want at least 1", n)
	}
}

// TestAuthKeySetFirstFetchFails loads the policy while the provider is
// down: it serves, refusing the issuer's tokens, and takes them as soon as
// the provider answers.
func TestAuthKeySetFirstFetchFails(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := newIDP(t)
	p.serve(500)
	h := trellistest.NewHost(t)
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"jwt_issuers": "corp", "jwks.corp.algorithms": "ES384", "jwks.corp.issuer": "https://corp.example",
	}, nil, nil), func(s *host.Spec) {
		s.KeySources = []host.KeySource{{Name: "corp", URI: p.srv.URL + "/certs", MinRefresh: 50 * time.Millisecond, MaxRefresh: 100 * time.Millisecond}}
	})
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"), behind(nil, "auth"))
	tok := jwttest.Sign(jwt.SigningMethodES384, key, "k", jwttest.Claims{"iss": "https://corp.example", "sub": "ada"})
	expect(t, "before any key", request(t, h, "claims", "", "Authorization", "Bearer "+tok), "401", "invalid credentials")
	p.serve(200, jwttest.PublicJWK(&key.PublicKey, "k", ""))
	if !h.WaitLog(10*time.Second, "plugin reloaded with new keys", "plugin=auth") {
		t.Fatal("the policy was not reloaded once the provider answered")
	}
	expect(t, "after the first fetch", request(t, h, "claims", "", "Authorization", "Bearer "+tok), "", "ada")

	// The host's keys are the host's: a spec may not set them itself.
	err = h.Host.Load(context.Background(), host.Spec{Name: "auth2", Path: trellistest.Wasm(t, "./auth"), Policy: true,
		Config:     map[string]string{"jwks.corp": `{"keys":[]}`},
		KeySources: []host.KeySource{{Name: "corp", URI: p.srv.URL + "/certs"}}})
	if err == nil {
		t.Error("a spec setting the host's config key was loaded")
	}
}

// kvCounter reads an integer from the host's key-value bucket.
func kvCounter(t *testing.T, h *trellistest.Host, key string) int64 {
	t.Helper()
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := js.KeyValue(ctx, host.KVBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Get(ctx, key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	n, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestACLOnVerifiedClaims puts acl's claim rules behind auth on an HTTP
// route: a token's scopes and roles decide, and a client that writes the
// claim headers itself gets nothing from them.
func TestACLOnVerifiedClaims(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const iss = "https://idp.example/realms/corp"
	h, base := httpHost(t,
		host.HTTPRoute{Pattern: "POST /orders", Subject: "claims", Policies: policies("auth", "writers")},
		host.HTTPRoute{Pattern: "GET /open", Subject: "claims", Policies: policies("writers")})
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"jwt_issuers": "corp", "jwks.corp": jwttest.JWKS(jwttest.PublicJWK(&key.PublicKey, "k1", "ES256")),
		"jwks.corp.issuer": iss, "jwks.corp.algorithms": "ES256", "claims": "sub,scope,roles",
	}, nil, nil))
	h.Load("writers", trellistest.Wasm(t, "./acl"), asPolicy(map[string]string{
		"require_principal": "true", "require_claims": "scope=orders.write, roles=clerk|admin",
	}, nil, nil))
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"))

	tok := func(scope string, roles ...string) string {
		return "Bearer " + jwttest.Sign(jwt.SigningMethodES256, key, "k1", jwttest.Claims{
			"iss": iss, "sub": "ada", "scope": scope, "roles": roles, "exp": time.Now().Add(time.Minute).Unix()})
	}
	for _, tc := range []struct {
		name    string
		path    string
		headers []string
		code    int
	}{
		{"scope and role", "/orders", []string{"Authorization", tok("openid orders.write", "clerk")}, 200},
		{"other role", "/orders", []string{"Authorization", tok("orders.write", "admin")}, 200},
		{"no write scope", "/orders", []string{"Authorization", tok("orders.read", "clerk")}, 403},
		{"no role", "/orders", []string{"Authorization", tok("orders.write")}, 403},
		{"forged claim headers beside a token without them", "/orders", []string{"Authorization", tok("orders.read"), "X-Claim-Scope", "orders.write", "X-Claim-Roles", "admin"}, 403},
		{"forged claims and principal, no auth", "/open", []string{"X-Claim-Scope", "orders.write", "X-Claim-Roles", "admin", "Trellis-Principal", "token:ops"}, 403},
	} {
		method := "POST"
		if tc.path == "/open" {
			method = "GET"
		}
		resp, body := httpDo(t, method, base+tc.path, "", tc.headers...)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.code)
		}
		if tc.code == 403 && (strings.Contains(body, "scope") || strings.Contains(body, "claim")) {
			t.Errorf("%s: the body says why: %q", tc.name, body)
		}
	}
	if !h.WaitLog(5*time.Second, "acl: refused: reason=claim:scope") || !h.WaitLog(5*time.Second, "acl: refused: reason=principal") {
		t.Error("acl's refusals are not in the log with their reasons")
	}
}
