package reload_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// meshDir writes the two versions beside a config file and returns the
// file's path.
func meshDir(t *testing.T) string {
	fx := versions(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "v1.wasm"), fx.v1, 0o644)
	os.WriteFile(filepath.Join(dir, "v2.wasm"), fx.v2, 0o644)
	return filepath.Join(dir, "trellis.hcl")
}

func parse(t *testing.T, file, src string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(src), file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const routedV1 = `http {
  listen = "127.0.0.1:0"
}
plugin "a" {
  path     = "v1.wasm"
  subjects = ["versioned"]
}
http_route "POST /v" {
  subject = "versioned"
}
`

func TestConfigApplyChangesNothingWhenRoutesAreRefused(t *testing.T) {
	file := meshDir(t)
	h := trellistest.NewHost(t, func(o *host.Options) { o.HTTP.Listen = "127.0.0.1:0" })
	loop := config.NewLoop(h.Host, file, 0, h.Logger())
	if res := loop.Apply(t.Context(), parse(t, file, routedV1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	url := "http://" + h.HTTPAddr() + "/v"
	if _, got := trellistest.HTTP(t, nil, "POST", url, ""); got != "v1:" {
		t.Fatalf("POST /v: %q", got)
	}
	// A config the parser did not see (built in code): plugin a moves to
	// v2, and two routes conflict with each other.
	c := parse(t, file, strings.Replace(routedV1, "v1.wasm", "v2.wasm", 1))
	c.HTTP.Routes = append(c.HTTP.Routes,
		host.HTTPRoute{Pattern: "GET /a/{x}", Subject: "versioned"},
		host.HTTPRoute{Pattern: "GET /{y}/b", Subject: "versioned"},
		host.HTTPRoute{Pattern: "GET /nosubject"})
	res := loop.Apply(t.Context(), c)
	if res.Err == nil || len(res.Reloaded) != 0 {
		t.Fatalf("want two refused routes and nothing reloaded: %+v", res)
	}
	for _, want := range []string{
		`"GET /{y}/b" conflicts with pattern "GET /a/{x}"`,
		`http route "GET /nosubject": no subject`,
	} {
		if !strings.Contains(res.Err.Error(), want) {
			t.Errorf("error %v, want %q", res.Err, want)
		}
		if !h.WaitLog(time.Second, "config refused") || !strings.Contains(h.Logs(), want) {
			t.Errorf("no log of %q", want)
		}
	}
	if _, got := trellistest.HTTP(t, nil, "POST", url, ""); got != "v1:" {
		t.Fatalf("after the refused config, POST /v: %q (the plugin was reloaded)", got)
	}
	if m := h.Request("versioned", []byte("x"), 2*time.Second); string(m.Data) != "v1:x" {
		t.Fatalf("bus: %q", m.Data)
	}
}

func TestConfigReloadWithConflictingRoutesIsRefusedWhole(t *testing.T) {
	file := meshDir(t)
	h := trellistest.NewHost(t, func(o *host.Options) { o.HTTP.Listen = "127.0.0.1:0" })
	writeByRename(t, file, []byte(routedV1))
	runLoop(t, h, file)
	waitAnswer(t, h.Client(), "v1:")

	writeByRename(t, file, []byte(strings.Replace(routedV1, "v1.wasm", "v2.wasm", 1)+`
http_route "GET /a/{x}" {
  subject = "versioned"
}
http_route "GET /{y}/b" {
  subject = "versioned"
}
`))
	if !h.WaitLog(10*time.Second, "config refused", "trellis.hcl:15:1: Invalid http_route") {
		t.Fatalf("no refusal naming the route's line:\n%s", h.Logs())
	}
	if m := h.Request("versioned", []byte("x"), 2*time.Second); string(m.Data) != "v1:x" {
		t.Fatalf("plugin changed although the config was refused: %q", m.Data)
	}
}

func TestConfigApplyUnloadsBeforeLoadingSoASubjectCanMove(t *testing.T) {
	file := meshDir(t)
	h := trellistest.NewHost(t, func(o *host.Options) { o.ExclusiveSubjects = true })
	loop := config.NewLoop(h.Host, file, 0, h.Logger())
	if res := loop.Apply(t.Context(), parse(t, file, "plugin \"a\" {\n  path = \"v1.wasm\"\n  subjects = [\"versioned\"]\n}\n")); res.Err != nil {
		t.Fatal(res.Err)
	}
	res := loop.Apply(t.Context(), parse(t, file, "plugin \"b\" {\n  path = \"v2.wasm\"\n  subjects = [\"versioned\"]\n}\n"))
	if res.Err != nil || len(res.Loaded) != 1 || len(res.Unloaded) != 1 {
		t.Fatalf("renamed plugin: %+v", res)
	}
	if m := h.Request("versioned", []byte("x"), 2*time.Second); string(m.Data) != "v2:x" {
		t.Fatalf("%q", m.Data)
	}
}

// TestAFileTheConfigReadsIsWatched: the config reads its plugin's path with
// file() from a file in a subdirectory, as a mounted Secret would be;
// rewriting that file alone applies the config again.
func TestAFileTheConfigReadsIsWatched(t *testing.T) {
	file := meshDir(t)
	secret := filepath.Join(filepath.Dir(file), "secret", "which")
	if err := os.MkdirAll(filepath.Dir(secret), 0o755); err != nil {
		t.Fatal(err)
	}
	writeByRename(t, secret, []byte("v1.wasm\n"))
	writeByRename(t, file, []byte(`plugin "a" {
  path     = file("secret/which")
  subjects = ["versioned"]
}
`))
	h := trellistest.NewHost(t)
	runLoop(t, h, file)
	waitAnswer(t, h.Client(), "v1:")
	writeByRename(t, secret, []byte("v2.wasm\n"))
	waitAnswer(t, h.Client(), "v2:")
}

// runLoop loads file and runs a config loop on it for h until the test
// ends.
func runLoop(t *testing.T, h *trellistest.Host, file string) {
	t.Helper()
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	loop := config.NewLoop(h.Host, file, 20*time.Millisecond, h.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loop.Run(ctx, c, nil) }()
	t.Cleanup(func() { cancel(); <-done })
}
