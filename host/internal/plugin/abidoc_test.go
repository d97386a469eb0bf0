package plugin_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// docQuote is a text ABI.md quotes in double quotes.
var docQuote = regexp.MustCompile(`"([^"\n]{16,})"`)

// notErrorTexts are ABI.md's double-quoted texts that are not the host's
// words: section titles referred to, and names.
var notErrorTexts = map[string]bool{
	"Identity headers": true,
}

// TestABIDocQuotesTheHostsErrors keeps every error text abi/ABI.md quotes
// equal to what the host says, with the doc's placeholders (NAME, N) put
// in place of what varies. A new quote in the doc must be added here.
func TestABIDocQuotesTheHostsErrors(t *testing.T) {
	b, err := os.ReadFile("../../../abi/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	loadErr := func(src, name string) func(t *testing.T) string {
		return func(t *testing.T) string {
			_, err := plugin.Load(context.Background(), trellistest.WasmBytes(t, src), plugin.Options{Name: name})
			if err == nil {
				t.Fatalf("%s loaded", src)
			}
			prefix := `plugin "` + name + `": `
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("%q does not start with %q, as ABI.md section 2 says", err, prefix)
			}
			return err.Error()
		}
	}
	says := map[string]func(t *testing.T) string{ // quoted text -> what the host says, placeholders in
		"unsupported ABI version: built for Trellis ABI vN; this host supports v1": func(t *testing.T) string {
			return strings.Replace(loadErr("testdata/abiv2.wat", "x")(t), "ABI v2", "ABI vN", 1)
		},
		"not a Trellis plugin: it does not export trellis_abi_v1 (is it built with a Trellis SDK?)": loadErr("testdata/noabi.wat", "x"),
		"module does not fit the ABI: it imports trellis.NAME, which this host does not provide (ABI v1)": func(t *testing.T) string {
			return strings.Replace(loadErr("testdata/badimport.wat", "x")(t), "trellis.teleport", "trellis.NAME", 1)
		},
		"policy NAME failed": func(t *testing.T) string {
			h := trellistest.NewHost(t)
			h.Load("guard", trellistest.Wasm(t, "testdata/trappolicy.wat"), func(s *host.Spec) { s.Policy = true })
			h.Load("echo", trellistest.Wasm(t, echoWAT), func(s *host.Spec) { s.Policies = []host.PolicyRef{{Name: "guard"}} })
			m := h.Request("echo", []byte("hi"), 10*time.Second)
			if code := m.Header.Get(abi.HeaderErrorCode); code != "503" {
				t.Errorf("status %q, want 503 as ABI.md section 5a says", code)
			}
			return strings.Replace(m.Header.Get(abi.HeaderError), "guard", "NAME", 1)
		},
	}
	// Quotes in code are code.
	text := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(b), "")
	seen := map[string]bool{}
	for _, m := range docQuote.FindAllStringSubmatch(text, -1) {
		q := m[1]
		if notErrorTexts[q] || strings.HasPrefix(q, "trellis_") || seen[q] {
			continue
		}
		seen[q] = true
		get, ok := says[q]
		if !ok {
			t.Errorf("ABI.md quotes %q, which this test does not check: add how to make the host say it", q)
			continue
		}
		if got := get(t); !strings.Contains(got, q) {
			t.Errorf("ABI.md quotes %q; the host says %q", q, got)
		}
	}
	for q := range says {
		if !seen[q] {
			t.Errorf("ABI.md no longer quotes %q; drop it here", q)
		}
	}
}

// TestABIDocCallsEveryHostFunction builds section 10's two C modules from
// ABI.md itself and runs them, the policy in front of the handler, so that
// the document's example of each host function compiles and does what the
// document says.
func TestABIDocCallsEveryHostFunction(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		trellistest.SkipWithoutToolchain(t, "the ABI's C examples need clang (apt-get install clang lld)")
	}
	b, err := os.ReadFile("../../../abi/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec10, ok := strings.Cut(string(b), "## 10. Every host function")
	if !ok {
		t.Fatal("ABI.md has no section 10")
	}
	blocks := regexp.MustCompile("(?s)```c\n(.*?)```").FindAllStringSubmatch(sec10, -1)
	if len(blocks) != 2 {
		t.Fatalf("section 10 has %d C blocks, want 2 (handler, policy)", len(blocks))
	}
	dir := t.TempDir()
	wasm := map[string]string{}
	for i, name := range []string{"calls", "guard"} {
		src := filepath.Join(dir, name+".c")
		os.WriteFile(src, []byte(blocks[i][1]), 0o644)
		wasm[name] = filepath.Join(dir, name+".wasm")
		out, err := exec.Command(clang, "--target=wasm32", "-O2", "-mbulk-memory", "-nostdlib", "-Wl,--no-entry", "-o", wasm[name], src).CombinedOutput()
		if err != nil {
			if regexp.MustCompile(`"wasm-ld[^"]*"( doesn't exist| not found)|wasm-ld[^:]*: (command )?not found`).Match(out) {
				trellistest.SkipWithoutToolchain(t, "the ABI's C examples need wasm-ld (apt-get install lld)")
			}
			t.Fatalf("clang %s: %v\n%s", name, err, out)
		}
	}
	grants := plugin.Grants{Publish: []string{"calls.>"}, Request: []string{"calls.>"}}
	h := trellistest.NewHost(t)
	h.Load("guard", wasm["guard"], func(s *host.Spec) { s.Policy, s.Grants = true, grants })
	h.Load("calls", wasm["calls"], func(s *host.Spec) {
		s.Policies = []host.PolicyRef{{Name: "guard"}}
		s.Grants, s.Config, s.Subjects = grants, map[string]string{"greeting": "Hello"}, []string{"calls"}
	})
	nc := h.Client()
	nc.Subscribe("calls.echo", func(m *nats.Msg) { m.Respond(append([]byte("echo:"), m.Data...)) })
	seen, _ := nc.SubscribeSync("calls.seen")
	nc.Flush()
	cases := []struct {
		data, want, header, value string
	}{
		{"Ada", "Hello, Ada! (echoed echo:Ada)", "X-Hits", "1"},
		{"", "Hello, nobody! (echoed echo:nobody)", "X-Hits", "more"},
		{"route", "echo:route", "", ""},
		{"stop", "", "Retry-After", "60"},
	}
	for _, c := range cases {
		m := h.Request("calls", []byte(c.data), 10*time.Second)
		if string(m.Data) != c.want || (c.header != "" && m.Header.Get(c.header) != c.value) {
			t.Errorf("%q: reply %q, headers %v; want %q with %s: %s", c.data, m.Data, m.Header, c.want, c.header, c.value)
		}
		if c.data == "stop" && (m.Header.Get(abi.HeaderErrorCode) != "403" || m.Header.Get(abi.HeaderError) != "stopped by policy") {
			t.Errorf("stop: headers %v, want 403 stopped by policy", m.Header)
		}
	}
	if m, err := seen.NextMsg(5 * time.Second); err != nil || string(m.Data) != "Ada" {
		t.Errorf("publish: %v %v", m, err)
	}
}
