package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/dev/build"
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

// describe lists plugins as "name:lang" (or "name:wasm" for built modules).
func describe(found []Plugin) string {
	var got []string
	for _, p := range found {
		kind := "wasm"
		if p.Source != "" {
			kind = string(p.Lang)
		}
		got = append(got, p.Name+":"+kind)
	}
	return strings.Join(got, " ")
}

const (
	cdylib    = "[package]\nname = \"rusty\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n"
	rustLib   = "[package]\nname = \"helper\"\n"
	asconfig  = `{"options": {"runtime": "incremental"}}`
	asPackage = `{"devDependencies": {"assemblyscript": "^0.28.20"}}`
	asEntry   = `export { trellis_abi_v1, trellis_init, trellis_handle } from "@trellis-mesh/sdk";`
)

func TestDirFindsSourcesAndBuiltModules(t *testing.T) {
	root := t.TempDir()
	write(t, root, "echo/main.go", "package main\n\nfunc main() {}\n")
	write(t, root, "echo/echo.wasm", "built output inside a source dir is not a second plugin")
	write(t, root, "raw/ping.wat", "(module)")
	write(t, root, "bin/greet.wasm", "\x00asm")
	write(t, root, "lib/helper.go", "package helper\n")
	write(t, root, "rusty/Cargo.toml", cdylib)
	write(t, root, "rusty/src/lib.rs", "")
	write(t, root, "rusty/target/wasm32-wasi/release/rusty.wasm", "cargo output is not a plugin")
	write(t, root, "cee/plugin.c", "")
	write(t, root, "assy/asconfig.json", asconfig)
	write(t, root, "assy/assembly/index.ts", "")
	write(t, root, "assy/node_modules/assemblyscript/std/x.wasm", "")
	write(t, root, "npm/package.json", asPackage)
	write(t, root, "npm/assembly/index.ts", asEntry)
	write(t, root, "node_modules/x/y.wasm", "")
	write(t, root, ".trellis/build/echo.wasm", "")
	write(t, root, ".hidden/main.go", "package main\n")
	write(t, root, "_draft/main.go", "package main\n")
	write(t, root, "other/echo.wasm", "duplicate name")
	write(t, root, "helper/Cargo.toml", rustLib)
	write(t, root, "helper/plugin/Cargo.toml", strings.Replace(cdylib, "rusty", "inner", 1))

	found, skipped, err := Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(found), "assy:as cee:c echo:go greet:wasm npm:as plugin:rust raw:wat rusty:rust"; got != want {
		t.Fatalf("found %s, want %s", got, want)
	}
	reasons := map[string]string{}
	for _, s := range skipped {
		rel, _ := filepath.Rel(root, s.Path)
		reasons[rel] = s.Reason
	}
	if len(reasons) != 2 || !strings.Contains(reasons["helper"], "not a cdylib") ||
		!strings.Contains(reasons[filepath.Join("other", "echo.wasm")], "another plugin named \"echo\"") {
		t.Fatalf("skipped %v", reasons)
	}
	if found[2].Lang != build.Go || found[2].Source != filepath.Join(root, "echo") {
		t.Fatal(found[2])
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

// TestDirFindsEveryExample is what `trellis dev ./examples` serves: every
// example in every language, from source, but not the examples that have
// their own config (the mesh, with its deliberately flaky mailer; the cluster).
func TestDirFindsEveryExample(t *testing.T) {
	found, skipped, err := Dir("../../../../examples")
	if err != nil {
		t.Fatal(err)
	}
	langs := map[string]build.Lang{}
	for _, p := range found {
		if p.Source == "" {
			t.Errorf("%s is served from %s, not built from source", p.Name, p.Wasm)
		}
		langs[p.Name] = p.Lang
	}
	for name, lang := range map[string]build.Lang{
		"echo": build.Go, "echo-c": build.C, "echo-rust": build.Rust, "echo-as": build.AssemblyScript,
		"greet": build.Go, "greet-c": build.C, "greet-rust": build.Rust, "greet-as": build.AssemblyScript,
	} {
		if langs[name] != lang {
			t.Errorf("%s: found as %q, want %q (found %s)", name, langs[name], lang, describe(found))
		}
	}
	for _, s := range skipped {
		if _, err := os.Stat(filepath.Join(s.Path, ConfigFile)); !s.Expected || err != nil {
			t.Errorf("skipped %+v", s)
		}
	}
	for _, name := range []string{"mailer", "orders-get", "orders-store"} {
		if _, ok := langs[name]; ok {
			t.Errorf("the mesh example's %s is served", name)
		}
	}
}

// TestDirLeavesOutDirectoriesWithTheirOwnConfig: a directory below the root
// with a trellis.hcl is a setup of its own (the mesh example), reported as
// left out on purpose; the root's own trellis.hcl changes nothing.
func TestDirLeavesOutDirectoriesWithTheirOwnConfig(t *testing.T) {
	root := t.TempDir()
	write(t, root, "trellis.hcl", "")
	write(t, root, "a.wasm", "")
	write(t, root, "mesh/trellis.hcl", "")
	write(t, root, "mesh/mailer.wasm", "")
	found, skipped, err := Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(found); got != "a:wasm" {
		t.Fatalf("found %q, want a:wasm", got)
	}
	if len(skipped) != 1 || !skipped[0].Expected || !strings.Contains(skipped[0].Reason, "trellis run --config") {
		t.Fatalf("skipped %+v", skipped)
	}
	if found, _, _ := Dir(filepath.Join(root, "mesh")); describe(found) != "mailer:wasm" {
		t.Fatalf("the mesh directory itself: %q", describe(found))
	}
}
