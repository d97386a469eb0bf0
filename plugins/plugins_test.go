package plugins_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
	"github.com/trellis-mesh/trellis/plugins/internal/jwttest"
)

// The error headers of a NATS micro-service error reply.
const (
	errCode = "Nats-Service-Error-Code"
	errText = "Nats-Service-Error"
)

// asPolicy loads a module as a policy with config and, optionally, the
// subjects it may route requests to and publish to.
func asPolicy(config map[string]string, request, publish []string) func(*host.Spec) {
	return func(s *host.Spec) {
		s.Policy = true
		s.Config = config
		s.Grants.Request = request
		s.Grants.Publish = publish
	}
}

// behind puts a handler on subjects (none: the ones it declares) behind
// policies, in order.
func behind(subjects []string, policies ...string) func(*host.Spec) {
	return func(s *host.Spec) {
		s.Subjects = subjects
		for _, p := range policies {
			s.Policies = append(s.Policies, host.PolicyRef{Name: p})
		}
	}
}

// greeting loads examples/greet on subject, answering "<word>, <data>!".
func greeting(h *trellistest.Host, t *testing.T, name, subject, word string) {
	h.Load(name, trellistest.Wasm(t, "../examples/greet"), func(s *host.Spec) {
		s.Subjects = []string{subject}
		s.Config = map[string]string{"greeting": word}
	})
}

// request sends data to subject with headers (name, value pairs) and
// returns the reply, error replies included.
func request(t *testing.T, h *trellistest.Host, subject, data string, headers ...string) *nats.Msg {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(data)
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Add(headers[i], headers[i+1])
	}
	reply, err := h.Client().RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return reply
}

// expect checks a reply: code "" for a success with body, else the error
// status and reason.
func expect(t *testing.T, what string, m *nats.Msg, code, textOrBody string) {
	t.Helper()
	if got := m.Header.Get(errCode); got != code {
		t.Errorf("%s: status %q (%q), want %q", what, got, m.Header.Get(errText), code)
		return
	}
	if code == "" && string(m.Data) != textOrBody {
		t.Errorf("%s: body %q, want %q", what, m.Data, textOrBody)
	}
	if code != "" && m.Header.Get(errText) != textOrBody {
		t.Errorf("%s: reason %q, want %q", what, m.Header.Get(errText), textOrBody)
	}
}

// noLeak fails if any secret appears in a header or the body of m.
func noLeak(t *testing.T, what string, m *nats.Msg, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(m.Data), s) {
			t.Errorf("%s: the reply body holds a secret", what)
		}
		for k, vs := range m.Header {
			for _, v := range vs {
				if strings.Contains(k, s) || strings.Contains(v, s) {
					t.Errorf("%s: reply header %s holds a secret", what, k)
				}
			}
		}
	}
}

// httpHost is a host with an HTTP ingress serving routes.
func httpHost(t *testing.T, routes ...host.HTTPRoute) (*trellistest.Host, string) {
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: routes}
	})
	return h, "http://" + h.HTTPAddr()
}

func httpDo(t *testing.T, method, url, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func policies(names ...string) []host.PolicyRef {
	var refs []host.PolicyRef
	for _, n := range names {
		refs = append(refs, host.PolicyRef{Name: n})
	}
	return refs
}

const hsSecret = "integration-hs256-secret-0123456789"

func TestAuth(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := trellistest.NewHost(t)
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"tokens":                 "dev-token, ci-token",
		"jwt_hs256_secret":       hsSecret,
		"jwt_ed25519_public_key": base64.StdEncoding.EncodeToString(pub),
		"jwt_audience":           "orders",
	}, nil, nil))
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"), behind(nil, "auth"))
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"), behind(nil, "auth"))

	soon := time.Now().Add(time.Minute).Unix()
	ada := jwttest.HS256([]byte(hsSecret), jwttest.Claims{"sub": "ada", "aud": "orders", "exp": soon})
	grace := jwttest.EdDSA(priv, jwttest.Claims{"sub": "grace", "aud": []string{"billing", "orders"}, "exp": soon})
	expired := jwttest.HS256([]byte(hsSecret), jwttest.Claims{"sub": "ada", "aud": "orders", "exp": time.Now().Add(-time.Minute).Unix()})
	wrongAud := jwttest.EdDSA(priv, jwttest.Claims{"sub": "grace", "aud": "billing", "exp": soon})
	algNone := jwttest.WithSignature("none", jwttest.Claims{"sub": "root", "aud": "orders"}, []byte{0})
	tampered := jwttest.Tamper(ada, jwttest.Claims{"sub": "root", "aud": "orders", "exp": soon})
	forgedHS := jwttest.HS256([]byte("a-different-secret-0123456789abcdef"), jwttest.Claims{"sub": "root", "aud": "orders"})

	for _, tc := range []struct {
		name      string
		subject   string
		headers   []string
		code      string
		want      string // body, or reason for an error
		challenge string
		seen      string // claim headers the handler got
	}{
		{"static token", "echo", []string{"Authorization", "Bearer dev-token"}, "", "hi", "", ""},
		{"second static token, any case", "echo", []string{"authorization", "bearer ci-token"}, "", "hi", "", ""},
		{"missing", "echo", nil, "401", "missing credentials", "Bearer", ""},
		{"not bearer", "echo", []string{"Authorization", "Basic ZGV2LXRva2Vu"}, "401", "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"unknown token", "echo", []string{"Authorization", "Bearer guess"}, "401", "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"hs256", "claims", []string{"Authorization", "Bearer " + ada}, "", "ada", "", "X-Claim-sub"},
		{"eddsa", "claims", []string{"Authorization", "Bearer " + grace}, "", "grace", "", "X-Claim-sub"},
		{"expired", "claims", []string{"Authorization", "Bearer " + expired}, "401", "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"wrong audience", "claims", []string{"Authorization", "Bearer " + wrongAud}, "403", "forbidden", "", ""},
		{"alg none", "claims", []string{"Authorization", "Bearer " + algNone}, "401", "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"tampered payload", "claims", []string{"Authorization", "Bearer " + tampered}, "401", "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"signed with another secret", "claims", []string{"Authorization", "Bearer " + forgedHS}, "401", "invalid credentials", `Bearer error="invalid_token"`, ""},
		{"forged claims with a static token", "claims", []string{"Authorization", "Bearer dev-token", "X-Claim-sub", "root", "x-claim-admin", "true"}, "", "", "", ""},
		{"forged claims with a JWT", "claims", []string{"Authorization", "Bearer " + ada, "X-Claim-sub", "root", "X-CLAIM-ADMIN", "true"}, "", "ada", "", "X-Claim-sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := request(t, h, tc.subject, "hi", tc.headers...)
			expect(t, tc.name, m, tc.code, tc.want)
			if got := m.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.code == "" && tc.subject == "claims" && m.Header.Get("X-Seen-Claims") != tc.seen {
				t.Errorf("the handler got claim headers %q, want %q", m.Header.Get("X-Seen-Claims"), tc.seen)
			}
			noLeak(t, tc.name, m, hsSecret, "dev-token", "ci-token", ada, grace, expired, wrongAud, tampered)
		})
	}
}

func TestAuthOverHTTP(t *testing.T) {
	t.Parallel()
	h, base := httpHost(t, host.HTTPRoute{Pattern: "GET /me", Subject: "claims", Policies: policies("auth")})
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"jwt_hs256_secret": hsSecret, "claims": "sub,tenant",
	}, nil, nil))
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"))
	tok := jwttest.HS256([]byte(hsSecret), jwttest.Claims{"sub": "ada", "tenant": "t1", "exp": time.Now().Add(time.Minute).Unix()})

	resp, body := httpDo(t, "GET", base+"/me", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" || !strings.Contains(body, "missing credentials") {
		t.Fatalf("no token: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// net/http writes a client's forged claim as X-Claim-Sub; it is dropped all the same.
	resp, body = httpDo(t, "GET", base+"/me", "", "Authorization", "Bearer "+tok, "X-Claim-Sub", "root", "X-Claim-Admin", "true")
	if resp.StatusCode != 200 || body != "ada" || resp.Header.Get("X-Seen-Claims") != "X-Claim-sub,X-Claim-tenant" {
		t.Fatalf("token: %d %q seen %q", resp.StatusCode, body, resp.Header.Get("X-Seen-Claims"))
	}
	resp, body = httpDo(t, "GET", base+"/me", "", "Authorization", "Bearer "+tok+"x")
	if resp.StatusCode != 401 || strings.Contains(body, tok) || strings.Contains(body, hsSecret) {
		t.Fatalf("bad signature: %d %q", resp.StatusCode, body)
	}
}

func TestACL(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	h.Load("acl", trellistest.Wasm(t, "./acl"), asPolicy(map[string]string{
		"allow": "svc.public.>, svc.status", "deny": "svc.public.admin.>",
	}, nil, nil))
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"), behind([]string{"svc.>"}, "acl"))

	for _, tc := range []struct {
		subject, code string
	}{
		{"svc.public.orders", ""},
		{"svc.public.orders.42", ""},
		{"svc.status", ""},
		{"svc.public.admin.drop", "403"},
		{"svc.private", "403"},
		{"svc.status.detail", "403"},
	} {
		want := "hi"
		if tc.code != "" {
			want = "forbidden"
		}
		expect(t, tc.subject, request(t, h, tc.subject, "hi"), tc.code, want)
	}
}

func TestACLOverHTTP(t *testing.T) {
	t.Parallel()
	h, base := httpHost(t, host.HTTPRoute{Pattern: "/api/", Subject: "echo", Policies: policies("acl")})
	h.Load("acl", trellistest.Wasm(t, "./acl"), asPolicy(map[string]string{
		"allow": "GET /api/orders/*, POST /api/orders, /api/public/**",
		"deny":  "/api/public/internal/**",
	}, nil, nil))
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"))

	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/orders/42", 200},
		{"POST", "/api/orders", 200},
		{"DELETE", "/api/orders/42", 403},
		{"GET", "/api/orders/42/items", 403},
		{"GET", "/api/public", 200},
		{"PUT", "/api/public/a/b/c", 200},
		{"GET", "/api/public/internal", 403},
		{"GET", "/api/public/internal/keys", 403},
		{"GET", "/api/users", 403},
	} {
		resp, body := httpDo(t, tc.method, base+tc.path, "ok")
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, resp.StatusCode, body, tc.code)
		}
		if tc.code == 403 && !strings.Contains(body, "forbidden") {
			t.Errorf("%s %s: body %q", tc.method, tc.path, body)
		}
	}
}

func TestRateLimitPerClaim(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{"jwt_hs256_secret": hsSecret}, nil, nil))
	// One request per 5 s, 3 at once: the burst below is well inside one
	// refill even on a slow machine.
	h.Load("ratelimit", trellistest.Wasm(t, "./ratelimit"), asPolicy(map[string]string{
		"rate": "0.2", "burst": "3", "key": "claim:sub",
	}, nil, nil))
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"), behind(nil, "auth", "ratelimit"))

	soon := time.Now().Add(time.Minute).Unix()
	ada := jwttest.HS256([]byte(hsSecret), jwttest.Claims{"sub": "ada", "exp": soon})
	grace := jwttest.HS256([]byte(hsSecret), jwttest.Claims{"sub": "grace", "exp": soon})

	for i := range 5 {
		m := request(t, h, "echo", "hi", "Authorization", "Bearer "+ada)
		what := fmt.Sprintf("ada #%d", i+1)
		noLeak(t, what, m, ada, hsSecret)
		if i < 3 {
			expect(t, what, m, "", "hi")
			if got, want := m.Header.Get("X-RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
				t.Errorf("%s: X-RateLimit-Remaining %q, want %q", what, got, want)
			}
			continue
		}
		expect(t, what, m, "429", "rate limit exceeded")
		if n, err := strconv.Atoi(m.Header.Get("Retry-After")); err != nil || n < 1 || n > 5 {
			t.Errorf("%s: Retry-After %q, want 1..5 seconds", what, m.Header.Get("Retry-After"))
		}
		if m.Header.Get("X-RateLimit-Limit") != "3" {
			t.Errorf("%s: X-RateLimit-Limit %q", what, m.Header.Get("X-RateLimit-Limit"))
		}
	}
	// Another subject has a bucket of its own.
	for i := range 3 {
		expect(t, fmt.Sprintf("grace #%d", i+1), request(t, h, "echo", "hi", "Authorization", "Bearer "+grace), "", "hi")
	}
}

func TestRateLimitPerHeaderConcurrently(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	h.Load("ratelimit", trellistest.Wasm(t, "./ratelimit"), asPolicy(map[string]string{
		"rate": "0.1", "burst": "10", "key": "header:X-API-Key",
	}, nil, nil), func(s *host.Spec) { s.PoolSize = 8 })
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"), behind(nil, "ratelimit"))

	// 30 requests at once from one key: the compare-and-set loop lets
	// exactly the burst through, however the instances interleave.
	nc := h.Client() // made once, before the goroutines share it
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := nats.NewMsg("echo")
			m.Header.Set("X-API-Key", "key-a")
			reply, err := nc.RequestMsg(m, 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[err.Error()]++
				return
			}
			codes[reply.Header.Get(errCode)]++
		}()
	}
	wg.Wait()
	if codes[""] != 10 || codes["429"] != 20 {
		t.Fatalf("outcomes %v, want 10 allowed and 20 limited", codes)
	}
	expect(t, "key-b", request(t, h, "echo", "hi", "X-API-Key", "key-b"), "", "hi")
}

func TestRateLimitPerClientAddressOverHTTP(t *testing.T) {
	t.Parallel()
	h, base := httpHost(t, host.HTTPRoute{Pattern: "POST /echo", Subject: "echo", Policies: policies("ratelimit")})
	h.Load("ratelimit", trellistest.Wasm(t, "./ratelimit"), asPolicy(map[string]string{"rate": "0.5", "burst": "2"}, nil, nil))
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"))

	for i, want := range []int{200, 200, 429} {
		resp, body := httpDo(t, "POST", base+"/echo", "x")
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d %q, want %d", i+1, resp.StatusCode, body, want)
		}
		if want == 429 && (resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-RateLimit-Limit") != "2") {
			t.Fatalf("429 without its headers: %v", resp.Header)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	h.Load("sizelimit", trellistest.Wasm(t, "./sizelimit"), asPolicy(map[string]string{"max_bytes": "1KiB"}, nil, nil))
	h.Load("echo", trellistest.Wasm(t, "../examples/echo"), behind(nil, "sizelimit"))

	fits := strings.Repeat("x", 1024)
	expect(t, "1024 bytes", request(t, h, "echo", fits), "", fits)
	expect(t, "empty", request(t, h, "echo", ""), "", "")
	expect(t, "1025 bytes", request(t, h, "echo", fits+"x"), "413", "payload too large")
}

func TestRouteByHeaderAndMirror(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	h.Load("route", trellistest.Wasm(t, "./route"), asPolicy(map[string]string{
		"header": "X-Version",
		"routes": "v2=orders.get.v2, v3=orders.get.v3",
		"mirror": "orders.shadow",
	}, []string{"orders.get.v2"}, []string{"orders.shadow"})) // v3 is not granted
	greeting(h, t, "orders-v2", "orders.get.v2", "v2")
	h.Load("orders", trellistest.Wasm(t, "../examples/echo"), behind([]string{"orders.get"}, "route"))

	mirror, err := h.Client().SubscribeSync("orders.shadow")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Client().Flush(); err != nil {
		t.Fatal(err)
	}
	mirrored := func(what, data, version string) {
		t.Helper()
		m, err := mirror.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: no mirrored copy: %v", what, err)
		}
		if string(m.Data) != data || m.Header.Get("X-Mirrored-From") != "orders.get" || m.Header.Get("X-Version") != version {
			t.Errorf("%s: mirrored %q with headers %v", what, m.Data, m.Header)
		}
	}

	expect(t, "v2", request(t, h, "orders.get", "Ada", "X-Version", "v2"), "", "v2, Ada!")
	mirrored("v2", "Ada", "v2")
	expect(t, "no header", request(t, h, "orders.get", "Bob"), "", "Bob")
	mirrored("no header", "Bob", "")
	expect(t, "unknown version", request(t, h, "orders.get", "Cy", "X-Version", "v9"), "", "Cy")
	mirrored("unknown version", "Cy", "v9")
	expect(t, "route not granted", request(t, h, "orders.get", "Di", "X-Version", "v3"), "500", "routing failed")
}

func TestRouteDefaultAndOwnSubject(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	h.Load("route", trellistest.Wasm(t, "./route"), asPolicy(map[string]string{
		"header":  "X-Version",
		"routes":  "v1=catalog.get", // the handler's own subject: no detour
		"default": "catalog.get.v2",
	}, []string{"catalog.get.v2"}, nil))
	greeting(h, t, "catalog-v2", "catalog.get.v2", "v2")
	h.Load("catalog", trellistest.Wasm(t, "../examples/echo"), behind([]string{"catalog.get"}, "route"))

	expect(t, "v1", request(t, h, "catalog.get", "Ada", "X-Version", "v1"), "", "Ada")
	expect(t, "default", request(t, h, "catalog.get", "Ada"), "", "v2, Ada!")
}

func TestSplitWeights(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	targets := []string{"orders.get.v1", "orders.get.v2"}
	h.Load("split", trellistest.Wasm(t, "./split"), asPolicy(map[string]string{
		"targets": "orders.get.v1=90,orders.get.v2=10",
	}, targets, nil))
	greeting(h, t, "orders-v1", "orders.get.v1", "v1")
	greeting(h, t, "orders-v2", "orders.get.v2", "v2")
	h.Load("orders", trellistest.Wasm(t, "../examples/echo"), behind([]string{"orders.get"}, "split"))

	const n, workers = 1000, 8
	nc := h.Client() // made once, before the goroutines share it
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				m := nats.NewMsg("orders.get")
				m.Data = []byte("x")
				reply, err := nc.RequestMsg(m, 10*time.Second)
				mu.Lock()
				switch {
				case err != nil:
					counts["error: "+err.Error()]++
				case string(reply.Data) != strings.TrimPrefix(reply.Header.Get("X-Trellis-Target"), "orders.get.")+", x!":
					counts[fmt.Sprintf("mismatch: %q from %q", reply.Data, reply.Header.Get("X-Trellis-Target"))]++
				default:
					counts[reply.Header.Get("X-Trellis-Target")]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Binomial(1000, 0.1): mean 100, standard deviation 9.5; ±50 is over 5σ.
	v1, v2 := counts["orders.get.v1"], counts["orders.get.v2"]
	if v1+v2 != n || v2 < 50 || v2 > 150 {
		t.Fatalf("outcomes %v, want about 900 on v1 and 100 on v2", counts)
	}
}

func TestSplitSticky(t *testing.T) {
	t.Parallel()
	h := trellistest.NewHost(t)
	targets := []string{"profile.get.v1", "profile.get.v2"}
	h.Load("split", trellistest.Wasm(t, "./split"), asPolicy(map[string]string{
		"targets": "profile.get.v1=50,profile.get.v2=50", "sticky": "header:X-User",
	}, targets, nil))
	greeting(h, t, "profile-v1", "profile.get.v1", "v1")
	greeting(h, t, "profile-v2", "profile.get.v2", "v2")
	h.Load("profile", trellistest.Wasm(t, "../examples/echo"), behind([]string{"profile.get"}, "split"))

	perTarget := map[string]int{}
	for u := range 32 {
		user := fmt.Sprintf("user-%d", u)
		first := ""
		for i := range 4 {
			m := request(t, h, "profile.get", user, "X-User", user)
			got := m.Header.Get("X-Trellis-Target")
			if m.Header.Get(errCode) != "" || got == "" {
				t.Fatalf("%s: %q %v", user, m.Data, m.Header)
			}
			if i == 0 {
				first = got
				perTarget[got]++
			} else if got != first {
				t.Fatalf("%s went to %s, then to %s", user, first, got)
			}
		}
	}
	if len(perTarget) != 2 {
		t.Fatalf("32 users all landed on %v", perTarget)
	}
}

// TestRateLimitKeysOnWhoNotOnSpelling sends one credential spelt in several
// ways (scheme in any case, extra whitespace), through auth then ratelimit,
// over the HTTP ingress and over NATS: the auth policy accepts them all as
// one principal, and the rate limit counts them as one client, whether it
// keys on the principal (the default) or on the Authorization header.
func TestRateLimitKeysOnWhoNotOnSpelling(t *testing.T) {
	t.Parallel()
	h, base := httpHost(t,
		host.HTTPRoute{Pattern: "GET /me", Subject: "claims", Policies: policies("auth", "ratelimit")},
		host.HTTPRoute{Pattern: "GET /by-header", Subject: "claims", Policies: policies("auth", "ratelimit-header")})
	h.Load("auth", trellistest.Wasm(t, "./auth"), asPolicy(map[string]string{
		"tokens": "alice:secret-a, bob:secret-b", "jwt_hs256_secret": hsSecret,
	}, nil, nil))
	// One request per 5 s, 3 at once; the key is the principal, by default.
	h.Load("ratelimit", trellistest.Wasm(t, "./ratelimit"), asPolicy(map[string]string{"rate": "0.2", "burst": "3"}, nil, nil))
	h.Load("ratelimit-header", trellistest.Wasm(t, "./ratelimit"), asPolicy(map[string]string{
		"rate": "0.2", "burst": "3", "key": "header:Authorization",
	}, nil, nil))
	h.Load("claims", trellistest.Wasm(t, "./testdata/claims"))
	h.Load("guarded", trellistest.Wasm(t, "./testdata/claims"), behind([]string{"guarded"}, "auth", "ratelimit"))

	spellings := []string{"Bearer secret-a", "bearer secret-a", "BEARER secret-a", "Bearer   secret-a", "Bearer secret-a   ", "bEaReR \t secret-a \t "}
	forged := []string{abi.HeaderPrincipal, "token:bob", "X-Claim-sub", "bob"}

	t.Run("HTTP, keyed on the Authorization header", func(t *testing.T) {
		for i, auth := range spellings {
			resp, body := httpDo(t, "GET", base+"/by-header", "", "Authorization", auth)
			want := 200
			if i >= 3 {
				want = 429
			}
			if resp.StatusCode != want {
				t.Fatalf("request %d (%q): %d %q, want %d", i+1, auth, resp.StatusCode, body, want)
			}
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		for i, auth := range spellings {
			resp, body := httpDo(t, "GET", base+"/me", "", append([]string{"Authorization", auth}, forged...)...)
			want := 200
			if i >= 3 {
				want = 429
			}
			if resp.StatusCode != want {
				t.Fatalf("request %d (%q): %d %q, want %d", i+1, auth, resp.StatusCode, body, want)
			}
			if want == 200 && (resp.Header.Get("X-Seen-Principal") != "token:alice" || resp.Header.Get("X-Seen-Claims") != "") {
				t.Errorf("request %d: the handler got principal %q and claims %q, want token:alice and none",
					i+1, resp.Header.Get("X-Seen-Principal"), resp.Header.Get("X-Seen-Claims"))
			}
		}
		// Another principal from the same address has a bucket of its own.
		if resp, body := httpDo(t, "GET", base+"/me", "", "Authorization", "Bearer secret-b"); resp.StatusCode != 200 || resp.Header.Get("X-Seen-Principal") != "token:bob" {
			t.Fatalf("bob: %d %q, principal %q", resp.StatusCode, body, resp.Header.Get("X-Seen-Principal"))
		}
	})

	t.Run("NATS", func(t *testing.T) {
		// The same policies in front of a handler, for a JWT's principal.
		tok := jwttest.HS256([]byte(hsSecret), jwttest.Claims{"sub": "ada", "iss": "https://issuer.example", "exp": time.Now().Add(time.Minute).Unix()})
		jwtSpellings := []string{"Bearer " + tok, "bearer  " + tok, "BEARER " + tok + " ", "Bearer    " + tok}
		for i, auth := range jwtSpellings {
			m := request(t, h, "guarded", "hi", append([]string{"Authorization", auth}, forged...)...)
			if i >= 3 {
				expect(t, fmt.Sprintf("request %d", i+1), m, "429", "rate limit exceeded")
				continue
			}
			expect(t, fmt.Sprintf("request %d", i+1), m, "", "ada")
			if p := m.Header.Get("X-Seen-Principal"); p != "jwt:https://issuer.example#ada" {
				t.Errorf("request %d: the handler got principal %q", i+1, p)
			}
		}
		// Another principal on the same subject has a bucket of its own.
		m := request(t, h, "guarded", "hi", "Authorization", "Bearer secret-b")
		if m.Header.Get(errCode) != "" || m.Header.Get("X-Seen-Principal") != "token:bob" {
			t.Errorf("bob: %q %v", m.Data, m.Header)
		}
		// A forged principal without credentials gets nowhere.
		expect(t, "forged only", request(t, h, "guarded", "hi", forged...), "401", "missing credentials")
	})
}
