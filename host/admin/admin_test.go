package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// meshHost serves the conformance handler on conf.>, behind testpolicy on
// the route POST /echo (to conf.echo); conformance publishes to
// published.conf, which the echo WAT serves.
func meshHost(t *testing.T) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{
			{Pattern: "POST /echo", Subject: "conf.echo", Policies: []host.PolicyRef{{Name: "testpolicy"}}},
		}}
	})
	h.Load("testpolicy", trellistest.Wasm(t, "../testdata/testpolicy"), func(s *host.Spec) { s.Policy = true })
	h.Load("conformance", trellistest.Wasm(t, "../../sdk/go/conformance"), func(s *host.Spec) {
		s.Grants.Publish = []string{"published.>"}
	})
	h.Load("sink", trellistest.Wasm(t, "../../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"published.>"} })
	return h
}

// startAdmin serves h's admin endpoint on a free loopback port.
func startAdmin(t *testing.T, h *trellistest.Host, opts admin.Options) (*admin.Server, string) {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	opts.Logger = h.Logger()
	a, err := admin.New(h.Host, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return a, "http://" + a.Addr()
}

func TestAdminRefusesUnprotectedNonLoopback(t *testing.T) {
	h := trellistest.NewHost(t)
	for _, listen := range []string{"0.0.0.0:0", ":0", "192.0.2.1:9180"} {
		if _, err := admin.New(h.Host, admin.Options{Listen: listen}); !errors.Is(err, admin.ErrUnprotected) {
			t.Errorf("listen %q without protection: %v, want ErrUnprotected", listen, err)
		}
	}
	a, err := admin.New(h.Host, admin.Options{Listen: "0.0.0.0:0", Token: "s3cret"})
	if err != nil {
		t.Fatalf("with a token: %v", err)
	}
	a.Close(context.Background())
	if _, err := admin.New(h.Host, admin.Options{Listen: "127.0.0.1:0", Username: "ops"}); err == nil {
		t.Error("a user name without a password was accepted")
	}
}

func TestAdminAuth(t *testing.T) {
	h := trellistest.NewHost(t)
	_, base := startAdmin(t, h, admin.Options{Token: "s3cret", Username: "ops", Password: "pw"})
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/metrics", ""); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/metrics", "", "Authorization", "Bearer wrong"); resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/metrics", "", "Authorization", "Bearer s3cret"); resp.StatusCode != 200 {
		t.Errorf("token: %d", resp.StatusCode)
	}
	// Probes need none: Kubernetes' httpGet probes cannot carry a secret.
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := trellistest.HTTP(t, nil, "GET", base+path, ""); resp.StatusCode != 200 {
			t.Errorf("%s without credentials: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/healthz/../metrics", ""); resp.StatusCode == 200 {
		t.Errorf("a path past the probes served without credentials: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/readyz", nil)
	req.SetBasicAuth("ops", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("basic auth: %d", resp.StatusCode)
	}
}

func TestAdminEndpoints(t *testing.T) {
	h := meshHost(t)
	_, base := startAdmin(t, h, admin.Options{})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/debug/pprof/": 200, "/": 200, "/app.js": 200} {
		if resp, body := trellistest.HTTP(t, nil, "GET", base+path, ""); resp.StatusCode != want {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}

	// Traffic for a while, so that the sampler sees rates.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc := h.Client()
		for {
			select {
			case <-stop:
				return
			default:
			}
			nc.Request("conf.publish", []byte("x"), 5*time.Second)
			nc.Request("conf.error", []byte("x"), 5*time.Second)
			if resp, err := http.Post("http://"+h.HTTPAddr()+"/echo", "text/plain", strings.NewReader("hi")); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()

	var st admin.Status
	trellistest.WaitFor(t, 15*time.Second, "conformance's rate in /api/plugins", func() bool {
		_, body := trellistest.HTTP(t, nil, "GET", base+"/api/plugins", "")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/api/plugins: %v: %s", err, body)
		}
		for _, p := range st.Plugins {
			if p.Name == "conformance" {
				return p.PerSecond > 0
			}
		}
		return false
	})
	if !st.Ready || len(st.Plugins) != 3 {
		t.Fatalf("status: %+v", st)
	}
	for _, p := range st.Plugins {
		switch p.Name {
		case "conformance":
			// One conf.error (422) in every three messages.
			if p.ErrorRatio < 0.2 || p.ErrorRatio > 0.5 || p.P50 <= 0 || p.P99 < p.P50 || p.Pool.Size == 0 ||
				p.LastReload == nil || p.LastReload.Kind != host.EventLoaded || p.Health != "degraded" {
				t.Errorf("conformance: %+v", p)
			}
		case "testpolicy":
			if p.Role != "policy" || p.PerSecond <= 0 {
				t.Errorf("testpolicy: %+v", p)
			}
		}
	}

	var g admin.Graph
	_, body := trellistest.HTTP(t, nil, "GET", base+"/api/graph", "")
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatal(err)
	}
	edges := map[string]admin.Edge{}
	for _, e := range g.Edges {
		edges[e.From+" -> "+e.To] = e
	}
	for _, want := range []string{
		"route:POST /echo -> policy:testpolicy@route:POST /echo",
		"policy:testpolicy@route:POST /echo -> subject:conf.echo",
		"subject:conf.echo -> subject:conf.>",
		"subject:conf.> -> handler:conformance",
		"handler:conformance -> subject:published.conf",
		"subject:published.conf -> subject:published.>",
		"subject:published.> -> handler:sink",
	} {
		e, ok := edges[want]
		if !ok {
			t.Errorf("no edge %s in %s", want, body)
			continue
		}
		if e.PerSecond <= 0 || e.Total <= 0 {
			t.Errorf("edge %s: %+v, want traffic", want, e)
		}
	}

	m := trellistest.ScrapeURL(t, nil, base+"/metrics")
	if v, _ := m.Value("trellis_messages_total", "plugin", "sink"); v <= 0 {
		t.Errorf("/metrics: sink's messages = %v", v)
	}
}
