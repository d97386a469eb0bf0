package plugins_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/abi"
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
	maxAge int         // the Cache-Control max-age it sends, in seconds
	hits   []time.Time // when the key set was asked for
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
		p.hits = append(p.hits, time.Now())
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(p.maxAge))
		w.WriteHeader(p.status)
		w.Write([]byte(jwttest.JWKS(p.keys...)))
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// fetches returns when the key set was asked for, in order.
func (p *idp) fetches() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hits)
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

// TestAuthRefetchesKeysOnUnknownKid: the provider rotates to a new key
// while its key set says it is fresh for an hour. A token signed with the
// new key is refused once, its unknown kid makes the host refetch the set
// (one fetch), and the same token is accepted right after, long before
// the scheduled refresh. Then a flood of tokens with random kids makes at
// most one fetch per MinRefresh. Refusals name their reason in the log,
// in the policy's KV counter and in the host's Prometheus counter, and
// never in the answer.
func TestAuthRefetchesKeysOnUnknownKid(t *testing.T) {
	t.Parallel()
	oldKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := newIDP(t, jwttest.PublicJWK(&oldKey.PublicKey, "2026-01", "ES256"))
	p.maxAge = 3600
	const minRefresh = time.Second

	h := trellistest.NewHost(t)
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"jwt_issuers":          "corp",
		"jwks.corp.algorithms": "ES256,RS256",
	}, nil, nil), func(s *host.Spec) {
		s.KeySources = []host.KeySource{{Name: "corp", Issuer: p.srv.URL, MinRefresh: minRefresh, MaxRefresh: time.Hour}}
	})
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"), behind(nil, "auth"))
	if n := len(p.fetches()); n != 1 {
		t.Fatalf("%d fetches at load, want 1", n)
	}
	claims := jwttest.Claims{"iss": p.srv.URL, "sub": "ada", "exp": time.Now().Add(time.Hour).Unix()}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	expect(t, "old key", request(t, h, "claims", "", bearer(jwttest.Sign(jwt.SigningMethodES256, oldKey, "2026-01", claims))...), "", "ada")

	// The provider rotates; nothing tells the host but the next token.
	p.serve(200, jwttest.PublicJWK(&newKey.PublicKey, "2026-02", "RS256"))
	byNew := jwttest.Sign(jwt.SigningMethodRS256, newKey, "2026-02", claims)
	rotated := time.Now()
	m := request(t, h, "claims", "", bearer(byNew)...)
	expect(t, "new key, first token", m, "401", "invalid credentials")
	noLeak(t, "new key, first token", m, "unknown_key", abi.HeaderRefusal, "2026-02")
	if !h.WaitLog(10*time.Second, "plugin reloaded with new keys", "plugin=auth") {
		t.Fatal("the unknown kid did not bring the new key in")
	}
	expect(t, "new key, after the refetch", request(t, h, "claims", "", bearer(byNew)...), "", "ada")
	if took := time.Since(rotated); took > 30*time.Second {
		t.Errorf("the new key took %s to be accepted", took)
	}
	if n := len(p.fetches()); n != 2 {
		t.Fatalf("%d fetches after the rotation, want 2: one at load, one for the unknown kid", n)
	}
	if !h.WaitLog(5*time.Second, "key set refetched: a token named a key it lacked", "changed=true") {
		t.Error("the refetch is not in the log")
	}

	// A flood of forged kids: refused, and at most one fetch per
	// MinRefresh, however many ask. It lasts until the flood has made
	// two fetches, so that the test sees it refetch at all.
	forged := 0
	deadline := time.Now().Add(30 * time.Second)
	for len(p.fetches()) < 4 && time.Now().Before(deadline) {
		kid := fmt.Sprintf("forged-%d-%d", forged, time.Now().UnixNano())
		m := request(t, h, "claims", "", bearer(jwttest.Sign(jwt.SigningMethodRS256, newKey, kid, claims))...)
		expect(t, "forged kid", m, "401", "invalid credentials")
		forged++
	}
	hits := p.fetches()
	if len(hits) < 4 {
		t.Fatalf("%d forged kids made %d fetches in 30s; want a refetch per MinRefresh", forged, len(hits)-2)
	}
	for i := 2; i < len(hits); i++ {
		if gap := hits[i].Sub(hits[i-1]); gap < minRefresh-10*time.Millisecond {
			t.Errorf("fetches %d and %d %s apart, less than MinRefresh %s", i, i+1, gap, minRefresh)
		}
	}
	t.Logf("%d forged kids in %s made %d fetches", forged, hits[len(hits)-1].Sub(hits[2]), len(hits)-2)
	if forged < 10 {
		t.Errorf("only %d forged tokens were sent: the flood did not flood", forged)
	}
	expect(t, "new key after the flood", request(t, h, "claims", "", bearer(byNew)...), "", "ada")

	// Each refusal is counted by reason: in the host's metric...
	trellistest.WaitFor(t, 5*time.Second, "the refusal metric", func() bool {
		v, _ := h.Scrape().Value("trellis_policy_refusals_total", "policy", "auth", "reason", "unknown_key")
		return v == float64(forged+1)
	})
	// ...in the policy's log and its key-value counter.
	if !h.WaitLog(5*time.Second, "auth: refused: reason=unknown_key") {
		t.Error("the refusal's reason is not in the log")
	}
	if n := kvCounter(t, h, "auth.refused.unknown_key"); n < 1 {
		t.Errorf("refused.unknown_key = %d, want at least 1", n)
	}
}

// TestACLOnNestedClaims: a token shaped as Keycloak writes one (roles in
// realm_access.roles and resource_access.<client>.roles, a
// space-separated scope) passes acl rules on those paths over HTTP; a
// token whose roles are elsewhere, or a string dressed as a role list, is
// refused with 403, the reason counted by the host and never in the
// answer.
func TestACLOnNestedClaims(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const iss = "https://keycloak.example/realms/shop"
	h, base := httpHost(t, host.HTTPRoute{Pattern: "POST /orders", Subject: "claims", Policies: policies("auth", "clerks")})
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"jwt_issuers": "kc", "jwks.kc": jwttest.JWKS(jwttest.PublicJWK(&key.PublicKey, "k1", "ES256")),
		"jwks.kc.issuer": iss, "jwks.kc.algorithms": "ES256", "claims": "sub,scope,realm_access,resource_access,name",
	}, nil, nil))
	h.Load("clerks", trellistest.Wasm(t, "./acl"), asPolicy(map[string]string{
		"require_claims": "scope=orders:write, realm_access.roles=clerk|admin, resource_access.orders-api.roles=writer",
	}, nil, nil))
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"))

	tok := func(extra jwttest.Claims) string {
		c := jwttest.Claims{"iss": iss, "sub": "ada", "scope": "openid orders:write", "exp": time.Now().Add(time.Minute).Unix(),
			"realm_access":    map[string]any{"roles": []string{"offline_access", "clerk"}},
			"resource_access": map[string]any{"orders-api": map[string]any{"roles": []string{"writer"}}, "account": map[string]any{"roles": []string{"view-profile"}}}}
		for k, v := range extra {
			c[k] = v
		}
		return "Bearer " + jwttest.Sign(jwt.SigningMethodES256, key, "k1", c)
	}
	for _, tc := range []struct {
		name  string
		extra jwttest.Claims
		code  int
	}{
		{"Keycloak's roles", nil, 200},
		{"no realm role", jwttest.Claims{"realm_access": map[string]any{"roles": []string{"viewer"}}}, 403},
		{"the role at the top, not in realm_access", jwttest.Claims{"realm_access": map[string]any{}, "roles": []string{"clerk"}}, 403},
		{"a flat key with a dot", jwttest.Claims{"realm_access": nil, "realm_access.roles": []string{"clerk"}}, 403},
		{"realm_access as a string that looks like JSON", jwttest.Claims{"realm_access": `{"roles":["clerk"]}`}, 403},
		{"a role of another client", jwttest.Claims{"resource_access": map[string]any{"account": map[string]any{"roles": []string{"writer"}}}}, 403},
		{"roles as numbers", jwttest.Claims{"realm_access": map[string]any{"roles": []int{1, 2}}}, 403},
		{"scope without orders:write", jwttest.Claims{"scope": "openid orders:read"}, 403},
	} {
		resp, body := httpDo(t, "POST", base+"/orders", "", "Authorization", tok(tc.extra))
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.code)
		}
		if resp.Header.Get(abi.HeaderRefusal) != "" || strings.Contains(body, "realm_access") || strings.Contains(body, "claim") {
			t.Errorf("%s: the answer says why: %v %q", tc.name, resp.Header, body)
		}
	}
	trellistest.WaitFor(t, 5*time.Second, "the refusals counted by reason", func() bool {
		m := h.Scrape()
		roles, _ := m.Value("trellis_policy_refusals_total", "policy", "clerks", "reason", "claim:realm_access.roles")
		scope, _ := m.Value("trellis_policy_refusals_total", "policy", "clerks", "reason", "claim:scope")
		client, _ := m.Value("trellis_policy_refusals_total", "policy", "clerks", "reason", "claim:resource_access.orders-api.roles")
		return roles == 5 && scope == 1 && client == 1
	})
	if !h.WaitLog(5*time.Second, "acl: refused: reason=claim:realm_access.roles") {
		t.Error("the refusal is not in the log with its path")
	}
	if n := kvCounter(t, h, "clerks.refused.claim.realm_access.roles"); n < 1 {
		t.Errorf("the KV counter of claim:realm_access.roles is %d", n)
	}
}
