package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

// checkDir writes a handler (v1, v2: both declare "versioned"), a policy
// (allow) and a file that is no module into a temporary directory.
func checkDir(t *testing.T) string {
	dir := t.TempDir()
	for name, src := range map[string]string{"v1.wasm": "../internal/reload/testdata/v1.wat", "v2.wasm": "../internal/reload/testdata/v2.wat", "allow.wasm": "../testdata/allow.wat"} {
		if err := os.WriteFile(filepath.Join(dir, name), trellistest.WasmBytes(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "junk.wasm"), []byte("not a module"), 0o644)
	return dir
}

func TestCheckReportsEveryProblemRunWouldRefuse(t *testing.T) {
	dir := checkDir(t)
	src := `policy "allow" {
  path = "allow.wasm"
}
policy "handler-as-policy" {
  path = "v1.wasm"
}
plugin "h1" {
  path     = "v1.wasm"
  subjects = ["versioned"]
}
plugin "h2" {
  path     = "v2.wasm"
  subjects = ["versioned.v2"]
}
plugin "missing" {
  path = "nope.wasm"
}
plugin "junk" {
  path = "junk.wasm"
}
plugin "policy-as-handler" {
  path     = "allow.wasm"
  subjects = ["p"]
}
plugin "src" {
  source = "nosuchdir"
}
`
	file := filepath.Join(dir, "trellis.hcl")
	c, err := Parse([]byte(src), file)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(t.Context(), c, CheckOptions{})
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		file + `:4:1: Not a policy: policy "handler-as-policy"`,
		file + `:15:1: Missing plugin file: plugin "missing"`,
		file + `:18:1: Plugin refused: plugin "junk"`,
		file + `:21:1: Not a handler: plugin "policy-as-handler"`,
		file + `:25:1: Invalid plugin source: plugin "src"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 5 {
		t.Errorf("%d problems, want 5:\n%s", n, msg)
	}
}

func TestCheckAcceptsSharedSubjectsAndWorkingModules(t *testing.T) {
	dir := checkDir(t)
	src := `policy "allow" {
  path = "allow.wasm"
}
plugin "h1" {
  path     = "v1.wasm"
  subjects = ["versioned"]
  shared   = true
  policies = ["allow"]
}
plugin "h2" {
  path     = "v2.wasm"
  subjects = ["versioned"]
  shared   = true
}
`
	c, err := Parse([]byte(src), filepath.Join(dir, "trellis.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(t.Context(), c, CheckOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckBuildsSourcesWhenAsked(t *testing.T) {
	v1, _ := filepath.Abs("../internal/reload/testdata/v1.wat")
	broken := filepath.Join(t.TempDir(), "broken.wat")
	if err := os.WriteFile(broken, []byte("(module (func $f (result i32)))"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `plugin "a" {
  source   = "` + v1 + `"
  subjects = ["versioned"]
}
plugin "b" {
  source   = "` + broken + `"
  subjects = ["b"]
}
`
	file := filepath.Join(t.TempDir(), "trellis.hcl")
	c, err := Parse([]byte(src), file)
	if err != nil {
		t.Fatal(err)
	}
	// Without building, a source is only checked to be one.
	if err := Check(t.Context(), c, CheckOptions{}); err != nil {
		t.Fatal(err)
	}
	// Built, b's module does not compile.
	err = Check(t.Context(), c, CheckOptions{BuildDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), file+`:5:1: `) || strings.Contains(err.Error(), file+`:1:1: `) {
		t.Fatalf("error %v", err)
	}
}

func TestCheckRefusesAnOpenBusBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "trellis.hcl")
	c, err := Parse([]byte("nats {\n  listen = \"0.0.0.0:4222\"\n}\n"), file)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(t.Context(), c, CheckOptions{})
	if err == nil || !strings.Contains(err.Error(), file+":1:1: Invalid nats settings") || !strings.Contains(err.Error(), "allow_unauthenticated") {
		t.Fatalf("error %v", err)
	}
	c, err = Parse([]byte("nats {\n  listen = \"0.0.0.0:4222\"\n  allow_unauthenticated = true\n}\n"), file)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(t.Context(), c, CheckOptions{}); err != nil {
		t.Fatalf("allowed: %v", err)
	}
}
