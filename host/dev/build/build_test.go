package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/trellis-mesh/trellis/host/dev/build"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const repo = "../../.."

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

// tree writes files (relative path -> content) under a new temporary
// directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		write(t, root, rel, content)
	}
	return root
}

// Minimal plugins with no SDK, one per language, and a broken one of each.
var (
	rawC = `__attribute__((export_name("trellis_abi_v1"))) void abi(void) {}
__attribute__((export_name("trellis_handle"))) int handle(int a, int b, int c, int d) { return 0; }
`
	rawRustToml = `[package]
name = "raw-plugin"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"] # a module with exports

[profile.release]
opt-level = "s"
`
	rawRust = `#[no_mangle] pub extern "C" fn trellis_abi_v1() {}
#[no_mangle] pub extern "C" fn trellis_handle(_s: u32, _r: u32, _h: u32, _d: u32) -> i32 { 0 }
`
	rawWAT = `(module (memory (export "memory") 1) (func (export "trellis_abi_v1"))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32) (i32.const 0)))`
	asconfig   = `{"targets": {"release": {"outFile": "x.wasm", "optimizeLevel": 3}}, "options": {"runtime": "incremental", "use": ["abort="]}}`
	asPackage  = `{"name": "p", "private": true, "devDependencies": {"assemblyscript": "^0.28.20"}}`
	asBuild    = `{"name": "p", "private": true, "scripts": {"build": "asc src/main.ts --target release"}, "devDependencies": {"assemblyscript": "^0.28.20"}}`
	asReexport = `export { trellis_abi_v1, trellis_init, trellis_handle } from "@trellis-mesh/sdk";` + "\n"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		sub   string // path below the tree to detect; "" for its root
		lang  build.Lang
		err   error
	}{
		{"go main", map[string]string{"main.go": "package main\nfunc main() {}\n"}, "", build.Go, nil},
		{"go library", map[string]string{"lib.go": "package lib\n"}, "", "", build.ErrNoSource},
		{"go main with only a test", map[string]string{"x_test.go": "package main\n"}, "", "", build.ErrNoSource},
		{"rust cdylib", map[string]string{"Cargo.toml": rawRustToml}, "", build.Rust, nil},
		{"rust lib", map[string]string{"Cargo.toml": "[package]\nname = \"x\"\n"}, "", "", build.ErrNotPlugin},
		{"rust workspace", map[string]string{"Cargo.toml": "[workspace]\nmembers = [\"a\"]\n"}, "", "", build.ErrNoSource},
		{"as asconfig", map[string]string{"asconfig.json": asconfig, "assembly/index.ts": "// raw ABI\n"}, "", build.AssemblyScript, nil},
		{"as build script", map[string]string{"package.json": asBuild, "src/main.ts": ""}, "", build.AssemblyScript, nil},
		{"as re-exporting entry", map[string]string{"package.json": asPackage, "assembly/index.ts": asReexport}, "", build.AssemblyScript, nil},
		{"as library", map[string]string{"package.json": asPackage, "assembly/index.ts": "// " + asReexport + "export function trellis_handle(): i32 { return 0 }\n"}, "", "", build.ErrNotPlugin},
		{"as nested", map[string]string{"package.json": asPackage, "conformance/index.ts": asReexport}, "conformance", build.AssemblyScript, nil},
		{"as nested outside a package", map[string]string{"conformance/index.ts": asReexport}, "conformance", "", build.ErrNoSource},
		{"other npm package", map[string]string{"package.json": `{"name": "web"}`, "index.ts": asReexport}, "", "", build.ErrNoSource},
		{"c", map[string]string{"a.c": rawC, "b.c": ""}, "", build.C, nil},
		{"c file", map[string]string{"a.c": rawC}, "a.c", build.C, nil},
		{"wat", map[string]string{"p.wat": rawWAT}, "", build.WAT, nil},
		{"wat file", map[string]string{"p.wat": rawWAT}, "p.wat", build.WAT, nil},
		{"two wats", map[string]string{"a.wat": rawWAT, "b.wat": rawWAT}, "", "", build.ErrNotPlugin},
		{"nothing", map[string]string{"README.md": "hi"}, "", "", build.ErrNoSource},
		{"go wins over c", map[string]string{"main.go": "package main\n", "x.c": ""}, "", build.Go, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := tree(t, c.files)
			lang, err := build.Detect(filepath.Join(root, c.sub))
			if lang != c.lang || !errors.Is(err, c.err) {
				t.Fatalf("Detect = %q, %v; want %q, %v", lang, err, c.lang, c.err)
			}
		})
	}
}

func TestDetectRepositorySources(t *testing.T) {
	want := map[string]build.Lang{
		"examples/echo": build.Go, "examples/greet": build.Go,
		"examples/echo-c": build.C, "examples/greet-c": build.C,
		"examples/echo-rust": build.Rust, "examples/greet-rust": build.Rust,
		"examples/echo-as": build.AssemblyScript, "examples/greet-as": build.AssemblyScript,
		"sdk/go/conformance": build.Go, "sdk/c/conformance": build.C,
		"sdk/rust/conformance": build.Rust, "sdk/assemblyscript/conformance": build.AssemblyScript,
		"abi/echo.wat": build.WAT,
	}
	for path, lang := range want {
		if got, err := build.Detect(filepath.Join(repo, path)); got != lang || err != nil {
			t.Errorf("Detect(%s) = %q, %v; want %q", path, got, err, lang)
		}
	}
	// The SDKs themselves are libraries, not plugins.
	for _, path := range []string{"sdk/rust", "sdk/assemblyscript", "sdk/assemblyscript/assembly", "sdk/c", "sdk/go"} {
		if got, err := build.Detect(filepath.Join(repo, path)); err == nil {
			t.Errorf("Detect(%s) = %q, want an error", path, got)
		}
	}
}

// exports compiles a module and returns its exported function names.
func exports(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	m, err := rt.CompileModule(ctx, b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	names := map[string]bool{}
	for name := range m.ExportedFunctions() {
		names[name] = true
	}
	return names
}

// buildOrSkip builds src into a temporary directory, skipping the test when
// the toolchain is missing (unless TRELLIS_REQUIRE_TOOLCHAINS=1).
func buildOrSkip(t *testing.T, src string) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out", "plugin.wasm")
	err := build.Build(context.Background(), src, out)
	var te *build.ToolchainError
	if errors.As(err, &te) {
		trellistest.SkipWithoutToolchain(t, te.Error())
	}
	return out, err
}

func TestBuildEachLanguage(t *testing.T) {
	cases := []struct {
		name, src string
		lang      string // as the module's language section says it
	}{
		{"go", "examples/echo", "go"},
		{"c", "examples/echo-c", "c"},
		{"rust", "examples/echo-rust", "rust"},
		{"as", "examples/echo-as", "assemblyscript"},
		{"as-nested", "sdk/assemblyscript/conformance", "assemblyscript"},
		{"wat", "abi/echo.wat", "wat"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, err := buildOrSkip(t, filepath.Join(repo, c.src))
			if err != nil {
				t.Fatal(err)
			}
			names := exports(t, out)
			if !names["trellis_abi_v1"] || !names["trellis_handle"] || names["_start"] {
				t.Fatalf("%s exports %v; want trellis_abi_v1 and trellis_handle, no _start", c.src, names)
			}
			if wasm, err := os.ReadFile(out); err != nil || plugin.Language(wasm) != c.lang {
				t.Errorf("%s: language %q, want %q (%v)", c.src, plugin.Language(wasm), c.lang, err)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".trellis-build-*")); len(left) > 0 {
				t.Fatalf("temporary files left beside the module: %v", left)
			}
		})
	}
}

func TestBuildRawPluginsWithoutSDK(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
	}{
		{"c", map[string]string{"plugin.c": rawC}},
		{"rust", map[string]string{"Cargo.toml": rawRustToml, "src/lib.rs": rawRust}},
		{"wat", map[string]string{"plugin.wat": rawWAT}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := tree(t, c.files)
			out, err := buildOrSkip(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if names := exports(t, out); !names["trellis_handle"] {
				t.Fatalf("exports %v", names)
			}
			if fileExists(filepath.Join(src, "target")) {
				t.Fatal("cargo wrote target/ into the source directory")
			}
		})
	}
}

// asProject writes an AssemblyScript project whose node_modules is the
// echo example's, so that no npm install runs.
func asProject(t *testing.T, entry string) string {
	t.Helper()
	nm, err := filepath.Abs(filepath.Join(repo, "examples", "echo-as", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	if !fileExists(filepath.Join(nm, "assemblyscript")) {
		trellistest.SkipWithoutToolchain(t, "the AssemblyScript compiler is not installed in examples/echo-as; run npm ci there")
	}
	src := tree(t, map[string]string{"asconfig.json": asconfig, "package.json": asPackage, "assembly/index.ts": entry})
	if err := os.Symlink(nm, filepath.Join(src, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestBuildErrorCarriesToolchainOutput(t *testing.T) {
	cases := []struct {
		name  string
		src   func(t *testing.T) string
		wants string // in the error: the toolchain's own words
	}{
		{"go", func(t *testing.T) string {
			return tree(t, map[string]string{"go.mod": "module bad\n\ngo 1.24\n", "main.go": "package main\nfunc main() { undefinedThing() }\n"})
		}, "undefined: undefinedThing"},
		{"c", func(t *testing.T) string {
			return tree(t, map[string]string{"bad.c": "int f(void) { return undefined_thing; }\n"})
		}, "use of undeclared identifier 'undefined_thing'"},
		{"rust", func(t *testing.T) string {
			return tree(t, map[string]string{"Cargo.toml": rawRustToml, "src/lib.rs": "pub fn f() -> u32 { undefined_thing }\n"})
		}, "cannot find value `undefined_thing`"},
		{"as", func(t *testing.T) string {
			return asProject(t, "export function f(): i32 { return undefinedThing; }\n")
		}, "undefinedThing"},
		{"wat", func(t *testing.T) string {
			return tree(t, map[string]string{"bad.wat": "(module (func (export \"f\") (result i32) (i32.const)))"})
		}, "bad.wat"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := c.src(t)
			out, err := buildOrSkip(t, src)
			if err == nil || !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("error %v; want the toolchain's output with %q", err, c.wants)
			}
			if fileExists(out) {
				t.Fatal("a failed build wrote the module")
			}
		})
	}
}

func TestBuildAssemblyScriptWithOwnCompiler(t *testing.T) {
	src := asProject(t, "// raw ABI, no SDK\n"+
		"export function trellis_abi_v1(): void {}\n"+
		"export function trellis_handle(s: u32, r: u32, h: u32, d: u32): i32 { return 0; }\n")
	out, err := buildOrSkip(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if names := exports(t, out); !names["trellis_handle"] {
		t.Fatalf("exports %v", names)
	}
	if fileExists(filepath.Join(src, "x.wasm")) {
		t.Fatal("asc wrote asconfig's outFile too")
	}
}

func TestFailedBuildLeavesTheOldModule(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "plugin.wasm")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := tree(t, map[string]string{"main.go": "package main\nfunc main() { nope() }\n"})
	if err := build.Build(context.Background(), src, out); err == nil {
		t.Fatal("a broken build succeeded")
	}
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Fatalf("module is now %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the old module", len(entries))
	}
}

func TestConcurrentBuildsOfOneModule(t *testing.T) {
	src := tree(t, map[string]string{"plugin.c": rawC})
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = build.Build(context.Background(), src, out)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var te *build.ToolchainError
		if errors.As(err, &te) {
			trellistest.SkipWithoutToolchain(t, te.Error())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if names := exports(t, out); !names["trellis_handle"] {
		t.Fatalf("exports %v", names)
	}
}

func TestMissingToolchainSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOROOT", "")
	cases := []struct {
		name    string
		files   map[string]string
		tool    string
		install string
	}{
		{"go", map[string]string{"main.go": "package main\n"}, "go", "go.dev"},
		{"c", map[string]string{"p.c": rawC}, "clang", "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"},
		{"as", map[string]string{"package.json": asPackage, "assembly/index.ts": asReexport}, "npm", "apt-get install nodejs npm"},
		{"wat", map[string]string{"p.wat": rawWAT}, "wat2wasm", "apt-get install wabt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := build.Build(context.Background(), tree(t, c.files), filepath.Join(t.TempDir(), "p.wasm"))
			var te *build.ToolchainError
			if !errors.As(err, &te) || !strings.HasPrefix(te.Tool, c.tool) || !strings.Contains(te.Install, c.install) {
				t.Fatalf("error %v; want a ToolchainError for %s saying %q", err, c.tool, c.install)
			}
			if !strings.Contains(err.Error(), c.install) {
				t.Fatalf("message %q does not say how to install", err)
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
