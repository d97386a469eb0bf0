package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("version")
	if code != 0 || !strings.Contains(out, "plugin ABI v1") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestEveryVerbHasHelp(t *testing.T) {
	for _, verb := range []string{"dev", "run", "build", "new", "req", "pub", "sub", "ls", "top", "version"} {
		code, _, errOut := runCLI(verb, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage: trellis "+verb) {
			t.Errorf("%s --help: exit %d, output %q", verb, code, errOut)
		}
	}
	if code, out, _ := runCLI("--help"); code != 0 || !strings.Contains(out, "trellis dev") {
		t.Errorf("--help: %d %q", code, out)
	}
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown verb") {
		t.Errorf("unknown verb: %d %q", code, errOut)
	}
}

func TestRunRefusesABadConfigWithFileLineColumn(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(file, []byte("plugin \"a\" {\n  path = \"a.wasm\"\n  timeout = \"soon\"\n}\n"), 0o644)
	code, _, errOut := runCLI("run", "--config", file)
	if code != 2 || !strings.Contains(errOut, file+":3:13: Invalid timeout") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := runCLI("run", "--config", "../../examples/trellis.hcl", "--check"); code != 0 || !strings.Contains(out, "ok, 4 plugins") {
		t.Fatalf("--check on the example config: %d %q", code, out)
	}
}

func TestBuildAGoPlugin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "echo.wasm")
	code, stdout, errOut := runCLI("build", "../../examples/echo", "-o", out)
	if code != 0 {
		t.Fatalf("build: %d %s", code, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) || !strings.Contains(stdout, "built") {
		t.Fatalf("output %d bytes, err %v, stdout %q", len(b), err, stdout)
	}
	code, _, errOut = runCLI("build", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no plugin source") {
		t.Fatalf("empty dir: %d %q", code, errOut)
	}
}

// TestDevServesAndShutsDownOnSignal runs `trellis dev` on the echo example
// with the embedded NATS on a free port, asks it through `trellis req`,
// then sends SIGINT and expects a clean exit.
func TestDevServesAndShutsDownOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole CLI")
	}
	dir := t.TempDir()
	logs := &trellistest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dev", "--nats-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "../../examples/echo"}, logs, logs)
	}()
	re := regexp.MustCompile(`serving; watching for changes.*nats=(nats://127\.0\.0\.1:\d+)`)
	var url string
	// A cold compile of a Go guest under the race detector on a loaded
	// 2-core machine takes minutes; this bounds a wait for an event.
	deadline := time.Now().Add(3 * time.Minute)
	for url == "" && time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	if url == "" {
		t.Fatalf("dev never said it was serving:\n%s", logs.String())
	}
	code, out, errOut := runCLI("req", "-s", url, "echo", "through the CLI")
	if code != 0 || out != "through the CLI\n" {
		t.Fatalf("req: %d %q %q", code, out, errOut)
	}
	checkAdmin(t, logs.String(), url)
	// sub sees what pub sends.
	type result struct {
		code     int
		out, err string
	}
	subbed := make(chan result, 1)
	go func() {
		code, out, errOut := runCLI("sub", "-s", url, "-count", "1", "-timeout", "30s", "events.>")
		subbed <- result{code, out, errOut}
	}()
	for sent := false; !sent; {
		select {
		case r := <-subbed:
			t.Fatalf("sub ended before any message: %+v", r)
		case <-time.After(100 * time.Millisecond):
		}
		// Publish until sub has subscribed and seen one.
		if code, _, errOut := runCLI("pub", "-s", url, "events.one", "event"); code != 0 {
			t.Fatalf("pub: %d %q", code, errOut)
		}
		select {
		case r := <-subbed:
			if r.code != 0 || r.out != "events.one: event\n" {
				t.Fatalf("sub: %+v", r)
			}
			sent = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("dev exited %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop on SIGINT")
	}
	if !strings.Contains(logs.String(), "host stopped") {
		t.Fatalf("no clean shutdown in log:\n%s", logs.String())
	}
	if _, err := nats.Connect(url, nats.Timeout(500*time.Millisecond)); err == nil {
		t.Fatal("the embedded NATS still accepts connections after shutdown")
	}
}

func TestNewWritesAPluginThatBuilds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello")
	code, out, errOut := runCLI("new", "--lang", "c", dir)
	if code != 0 || !strings.Contains(out, `wrote c plugin "hello"`) {
		t.Fatalf("new: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI("build", dir, "-o", filepath.Join(t.TempDir(), "hello.wasm")); code != 0 {
		if strings.Contains(errOut, "not on PATH") && os.Getenv("TRELLIS_REQUIRE_TOOLCHAINS") != "1" {
			t.Skip(errOut)
		}
		t.Fatalf("build the new plugin: %s", errOut)
	}
	if code, _, errOut := runCLI("new", "--lang", "cobol", filepath.Join(t.TempDir(), "x")); code != 1 || errOut == "" {
		t.Fatalf("unknown language: %d %q", code, errOut)
	}
}

func TestRunCheckPrintsEveryProblemParseFinds(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.hcl")
	os.WriteFile(file, []byte(`http {}
http_route "GET /a/{x}" {
  subject = "a"
}
http_route "GET /{y}/b" {
  subject = "b"
}
plugin "a" {
  path      = "a.wasm"
  subjects  = ["orders"]
  pool_size = "8abc"
}
plugin "b" {
  path         = "b.wasm"
  subjects     = ["orders"]
  memory_limit = "17179869185GiB"
}
`), 0o644)
	code, _, errOut := runCLI("run", "--config", file, "--check")
	if code == 0 {
		t.Fatal("--check passed")
	}
	for _, want := range []string{file + ":5:1: Invalid http_route", file + ":11:15: Invalid pool_size",
		file + ":15:18: Subject served by two plugins", file + ":16:18: Invalid memory_limit"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no %q in\n%s", want, errOut)
		}
	}
}

func TestRunCheckCompilesEveryPlugin(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.hcl")
	os.WriteFile(filepath.Join(dir, "junk.wasm"), []byte("\x00asm but not really"), 0o644)
	os.WriteFile(file, []byte(`plugin "missing" {
  path = "missing.wasm"
}
plugin "junk" {
  path = "junk.wasm"
}
plugin "src" {
  source = "nosuchdir"
}
`), 0o644)
	code, out, errOut := runCLI("run", "--config", file, "--check")
	if code == 0 || strings.Contains(out, "ok") {
		t.Fatalf("--check passed: %d %q", code, out)
	}
	for _, want := range []string{file + `:1:1: Missing plugin file: plugin "missing"`, file + `:4:1: Plugin refused: plugin "junk"`,
		file + `:7:1: Invalid plugin source: plugin "src"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no %q in\n%s", want, errOut)
		}
	}
}
