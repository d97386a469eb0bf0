package jwks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/jwks"
)

// provider is an identity provider's key endpoint and discovery document,
// served by a real HTTP server, whose answers a test changes as it runs.
type provider struct {
	srv      *httptest.Server
	mu       sync.Mutex
	set      string
	status   int
	cache    string
	issuer   string // "" : the server's own URL
	hits     atomic.Int64
	jwksHits atomic.Int64
}

func newProvider(t *testing.T, set string) *provider {
	p := &provider{set: set, status: 200}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+jwks.DiscoveryPath, func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		iss := p.issuer
		p.mu.Unlock()
		if iss == "" {
			iss = p.srv.URL
		}
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": p.srv.URL + "/certs"})
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.jwksHits.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cache != "" {
			w.Header().Set("Cache-Control", p.cache)
		}
		w.WriteHeader(p.status)
		w.Write([]byte(p.set))
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) serve(status int, set string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.set = status, set
}

const (
	keyA = `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}`
	keyB = `{"kty":"OKP","crv":"Ed25519","x":"3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08","kid":"b"}`
)

func set(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }

func TestParseKeepsOnlyPublicSignatureKeys(t *testing.T) {
	got, err := jwks.Parse([]byte(set(
		`{"kty":"RSA","kid":"r","use":"sig","alg":"RS256","n":"AQAB","e":"AQAB","d":"SECRET-D","p":"SECRET-P","x5c":["MII"]}`,
		`{"kty":"oct","kid":"h","k":"SECRET-K"}`,
		`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}`,
		`{"kty":"EC","kid":"e","crv":"P-256","x":"AA","y":"AA"}`,
		`{"kty":"EC","kid":7}`,
		`{"kty":"XYZ","kid":"new"}`,
		keyA,
	)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Keys != 3 || got.Dropped != 4 {
		t.Errorf("%d keys, %d dropped; want 3 and 4", got.Keys, got.Dropped)
	}
	if s := string(got.JSON); strings.Contains(s, "SECRET") || strings.Contains(s, "x5c") || !strings.Contains(s, `"kid":"r"`) || !strings.Contains(s, `"kid":"a"`) {
		t.Errorf("JSON %s", s)
	}
}

func TestParseRefusesWhatIsNotABoundedSet(t *testing.T) {
	many := make([]string, jwks.MaxKeys+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"kty":"OKP","kid":"%d"}`, i)
	}
	for name, data := range map[string]string{
		"too many keys": set(many...),
		"too large":     `{"keys":[],"pad":"` + strings.Repeat("x", jwks.MaxSetLen) + `"}`,
		"not JSON":      `{"keys":[`,
		"no keys":       `{"issuer":"x"}`,
		"keys null":     `{"keys":null}`,
		"two objects":   `{"keys":[]}{"keys":[]}`,
		"an array":      `[{"kty":"RSA"}]`,
		"key a string":  `{"keys":["x"]}`,
	} {
		if _, err := jwks.Parse([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got, err := jwks.Parse([]byte(set(many[:jwks.MaxKeys]...))); err != nil || got.Keys != jwks.MaxKeys {
		t.Errorf("MaxKeys keys: %+v, %v", got, err)
	}
}

func TestFetchByURLAndByDiscovery(t *testing.T) {
	p := newProvider(t, set(keyA))
	p.cache = "public, max-age=300"
	byURL, err := jwks.Fetch(t.Context(), jwks.Source{URI: p.srv.URL + "/certs"})
	if err != nil || byURL.Keys != 1 || byURL.MaxAge != 300*time.Second {
		t.Fatalf("by URL: %+v, %v", byURL, err)
	}
	byIssuer, err := jwks.Fetch(t.Context(), jwks.Source{Issuer: p.srv.URL})
	if err != nil || string(byIssuer.JSON) != string(byURL.JSON) {
		t.Fatalf("by discovery: %+v, %v", byIssuer, err)
	}
	// A discovery document that names another issuer speaks for nobody.
	p.mu.Lock()
	p.issuer = "https://idp.example"
	p.mu.Unlock()
	if _, err := jwks.Fetch(t.Context(), jwks.Source{Issuer: p.srv.URL}); !errors.Is(err, jwks.ErrIssuer) {
		t.Fatalf("another issuer: %v", err)
	}
}

func TestFetchRefusesBadAnswers(t *testing.T) {
	p := newProvider(t, set(keyA))
	src := jwks.Source{URI: p.srv.URL + "/certs"}
	p.serve(503, "down")
	if _, err := jwks.Fetch(t.Context(), src); !errors.Is(err, jwks.ErrStatus) {
		t.Errorf("503: %v", err)
	}
	p.serve(200, set(keyA)+strings.Repeat(" ", jwks.MaxSetLen))
	if _, err := jwks.Fetch(t.Context(), src); !errors.Is(err, jwks.ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}

	// A body with no length that never ends is cut at the limit.
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[`))
		for i := 0; i < 1<<12 && r.Context().Err() == nil; i++ {
			w.Write([]byte(strings.Repeat(" ", 1024)))
			w.(http.Flusher).Flush()
		}
	}))
	defer endless.Close()
	if _, err := jwks.Fetch(t.Context(), jwks.Source{URI: endless.URL}); !errors.Is(err, jwks.ErrTooLarge) {
		t.Errorf("endless: %v", err)
	}

	// A server that never answers is given up on at the timeout.
	stuck := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(stuck)
	start := time.Now()
	if _, err := jwks.Fetch(t.Context(), jwks.Source{URI: slow.URL, Timeout: 100 * time.Millisecond}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow: gave up after %s", d)
	}
}

func TestSourceCheck(t *testing.T) {
	for _, bad := range []jwks.Source{
		{},
		{URI: "https://a/certs", Issuer: "https://a"},
		{URI: "file:///etc/passwd"},
		{Issuer: "idp.example"},
		{URI: "https://a/" + strings.Repeat("x", jwks.MaxURLLen)},
		{URI: "https://a/certs", MinRefresh: time.Hour, MaxRefresh: time.Minute},
		{URI: "https://a/certs", Timeout: -1},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	if err := (jwks.Source{Issuer: "https://idp.example/realms/x"}).Check(); err != nil {
		t.Error(err)
	}
}

// TestWatcherKeepsLastGoodSetAndPicksUpRotation runs a Watcher against a
// provider that goes down, then comes back with rotated keys.
func TestWatcherKeepsLastGoodSetAndPicksUpRotation(t *testing.T) {
	p := newProvider(t, set(keyA))
	changes := make(chan jwks.Set, 4)
	w := jwks.NewWatcher(jwks.Source{URI: p.srv.URL + "/certs", MinRefresh: 10 * time.Millisecond, MaxRefresh: 20 * time.Millisecond},
		nil, func(s jwks.Set) { changes <- s })
	first, changed, err := w.Fetch(t.Context())
	if err != nil || !changed || first.Keys != 1 {
		t.Fatalf("first fetch: %+v %v %v", first, changed, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	p.serve(500, "")
	for w.Failures.Load() < 2 {
		time.Sleep(5 * time.Millisecond) // real time must pass for the refresh to be due
	}
	if cur, ok := w.Current(); !ok || string(cur.JSON) != string(first.JSON) {
		t.Fatalf("after failures the set is %s", cur.JSON)
	}
	select {
	case s := <-changes:
		t.Fatalf("a failed fetch changed the set to %s", s.JSON)
	default:
	}

	p.serve(200, set(keyB))
	select {
	case s := <-changes:
		if !strings.Contains(string(s.JSON), `"kid":"b"`) || strings.Contains(string(s.JSON), `"kid":"a"`) {
			t.Fatalf("rotated set %s", s.JSON)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the rotated set never arrived")
	}
}

// TestWatcherRefreshIsRateLimited asks for a refresh many times, as forged
// kids would: the provider is asked once per MinRefresh.
func TestWatcherRefreshIsRateLimited(t *testing.T) {
	p := newProvider(t, set(keyA))
	const minRefresh = 300 * time.Millisecond
	w := jwks.NewWatcher(jwks.Source{URI: p.srv.URL + "/certs", MinRefresh: minRefresh, MaxRefresh: time.Hour}, nil, nil)
	if _, _, err := w.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	for range 100 {
		w.Refresh()
	}
	for w.Fetches.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d < minRefresh/2 {
		t.Errorf("refetched after %s, before MinRefresh", d)
	}
	for range 100 {
		w.Refresh()
	}
	time.Sleep(minRefresh / 3) // real time, to see that no fetch comes early
	if n := p.jwksHits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// FuzzParse feeds the key-set parser arbitrary bytes: it never panics,
// what it keeps parses again to the same set, and it never passes on a
// private or symmetric member.
func FuzzParse(f *testing.F) {
	f.Add([]byte(set(keyA, keyB)))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"x","e":"AQAB","d":"s"},{"kty":"oct","k":"s"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","use":"enc"}],"x":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := jwks.Parse(data)
		if err != nil {
			return
		}
		if s.Keys > jwks.MaxKeys || len(s.JSON) > jwks.MaxSetLen {
			t.Fatalf("%d keys, %d bytes", s.Keys, len(s.JSON))
		}
		again, err := jwks.Parse(s.JSON)
		if err != nil || string(again.JSON) != string(s.JSON) || again.Dropped != 0 {
			t.Fatalf("reparse: %v %s", err, again.JSON)
		}
		var doc struct{ Keys []map[string]any }
		if err := json.Unmarshal(s.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range doc.Keys {
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
				if _, ok := k[private]; ok {
					t.Fatalf("member %s passed on", private)
				}
			}
		}
	})
}
