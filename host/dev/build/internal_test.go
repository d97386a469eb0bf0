package build

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	cases := []struct {
		toml string
		want manifest
	}{
		{"[package]\nname = \"echo-rust\"\n[lib]\ncrate-type = [\"cdylib\"]\n", manifest{pkg: "echo-rust", cdylib: true}},
		{"[package]\nname='x' # comment\n[lib]\nname = \"y\"\ncrate-type = ['rlib', 'cdylib']\n", manifest{pkg: "x", lib: "y", cdylib: true}},
		{"[package]\nname = \"lib\"\n[dependencies]\nname = \"not-this\"\n", manifest{pkg: "lib"}},
		{"[lib]\n# crate-type = [\"cdylib\"]\n[package]\nname = \"z\"\n", manifest{pkg: "z"}},
	}
	for _, c := range cases {
		if got := parseManifest(c.toml); got != c.want {
			t.Errorf("parseManifest(%q) = %+v, want %+v", c.toml, got, c.want)
		}
	}
}

func TestAscEntry(t *testing.T) {
	for script, want := range map[string]string{
		"asc assembly/index.ts --target release":      "assembly/index.ts",
		"npx asc --target release src/main.ts":        "src/main.ts",
		"node ./node_modules/.bin/asc a.ts -o a.wasm": "a.ts",
		"tsc && asc": "",
		"asc --config x.json && cp index.ts elsewhere.ts": "",
		"": "",
	} {
		if got := ascEntry(script); got != want {
			t.Errorf("ascEntry(%q) = %q, want %q", script, got, want)
		}
	}
}

func TestMissingRustToolchainSaysHowToInstall(t *testing.T) {
	debianBin = t.TempDir()
	t.Cleanup(func() { debianBin = "/usr/bin" })
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	s := &source{lang: Rust, dir: dir, crate: "x"}
	err := buildRust(context.Background(), s, filepath.Join(dir, "x.wasm"))
	var te *ToolchainError
	if !errors.As(err, &te) || te.Tool != "cargo" || !strings.Contains(err.Error(), "apt-get install rustc cargo libstd-rust-dev-wasm32") {
		t.Fatalf("error %v", err)
	}
}

func TestMissingCPiecesAreToolchainErrors(t *testing.T) {
	for output, want := range map[string]string{
		"fatal error: 'stdlib.h' file not found":                                                                             "wasi-libc",
		`clang: error: unable to execute command: Executable "wasm-ld" doesn't exist!`:                                       "lld",
		"wasm-ld: error: cannot open /usr/lib/llvm-14/lib/clang/14.0.6/lib/wasi/libclang_rt.builtins-wasm32.a: No such file": "libclang-rt",
		"error: use of undeclared identifier 'x'":                                                                            "",
		"fatal error: 'mylib.h' file not found":                                                                              "",
	} {
		got := missingCTool([]byte(output))
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("missingCTool(%q) = %q, want mention of %q", output, got, want)
		}
	}
}
