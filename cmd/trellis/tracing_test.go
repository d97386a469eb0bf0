package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad OTEL_* variable stops run and dev before anything starts, naming
// the variable; a bad tracing block is refused at its line.
func TestTracingSettingsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.hcl")
	os.WriteFile(file, []byte("log_level = \"info\"\n"), 0o644)
	t.Setenv("OTEL_TRACES_SAMPLER", "sometimes")
	if code, _, errOut := runCLI("run", "--config", file); code != 2 || !strings.Contains(errOut, `tracing: OTEL_TRACES_SAMPLER "sometimes"`) {
		t.Fatalf("run: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCLI("dev", t.TempDir()); code != 2 || !strings.Contains(errOut, "OTEL_TRACES_SAMPLER") {
		t.Fatalf("dev: exit %d, stderr %q", code, errOut)
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	os.WriteFile(file, []byte("tracing {\n  endpoint = \"localhost:4317\"\n}\n"), 0o644)
	if code, _, errOut := runCLI("run", "--config", file); code != 2 || !strings.Contains(errOut, file+":2:14: Invalid tracing endpoint") {
		t.Fatalf("bad block: exit %d, stderr %q", code, errOut)
	}
}
