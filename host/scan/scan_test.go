package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/build"
)

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirFindsSourcesAndBuiltModules(t *testing.T) {
	root := t.TempDir()
	write(t, root, "echo/main.go", "package main\n\nfunc main() {}\n")
	write(t, root, "echo/echo.wasm", "built output inside a source dir is not a second plugin")
	write(t, root, "raw/ping.wat", "(module)")
	write(t, root, "bin/greet.wasm", "\x00asm")
	write(t, root, "lib/helper.go", "package helper\n")
	write(t, root, "rusty/Cargo.toml", "[package]")
	write(t, root, "node_modules/x/y.wasm", "")
	write(t, root, ".trellis/build/echo.wasm", "")
	write(t, root, "other/echo.wasm", "duplicate name")

	found, skipped, err := Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range found {
		kind := "wasm"
		if p.Source != "" {
			kind = string(p.Lang)
		}
		got = append(got, p.Name+":"+kind)
	}
	if want := "echo:go greet:wasm raw:wat"; strings.Join(got, " ") != want {
		t.Fatalf("found %v, want %s", got, want)
	}
	reasons := map[string]string{}
	for _, s := range skipped {
		rel, _ := filepath.Rel(root, s.Path)
		reasons[rel] = s.Reason
	}
	if !strings.Contains(reasons["rusty"], "Rust") || !strings.Contains(reasons[filepath.Join("other", "echo.wasm")], "another plugin named \"echo\"") {
		t.Fatalf("skipped %v", reasons)
	}
	if found[0].Lang != build.Go {
		t.Fatal(found[0])
	}
}

func TestDirOnASourceDirectoryItself(t *testing.T) {
	root := filepath.Join(t.TempDir(), "hello")
	write(t, root, "main.go", "package main\nfunc main() {}\n")
	found, _, err := Dir(root)
	if err != nil || len(found) != 1 || found[0].Name != "hello" {
		t.Fatalf("found %v err %v", found, err)
	}
}
