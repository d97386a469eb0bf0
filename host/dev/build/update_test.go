package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trellis-mesh/trellis/host/dev/build"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// TestUpdateBuildsOnlyWhenAnInputChanged: a second Update with nothing
// changed runs no toolchain, even after the first wrote a lock file into the
// source (cargo's Cargo.lock); a change to a file outside the source that the
// build reads (a header of an -I directory, a path dependency) builds again,
// and so does a module changed behind Update's back.
func TestUpdateBuildsOnlyWhenAnInputChanged(t *testing.T) {
	cases := []struct {
		lang       string
		files      map[string]string
		dependency string // a file outside plugin/ the build reads
		depends    []string
	}{
		{"c", map[string]string{
			"plugin/p.c":               "#include \"dep.h\"\n" + rawC + "int n(void) { return N; }\n",
			"plugin/compile_flags.txt": "-I../inc\n",
			"inc/dep.h":                "#define N 1\n",
		}, "inc/dep.h", []string{"inc"}},
		{"rust", map[string]string{
			"plugin/Cargo.toml": rawRustToml + "\n[dependencies]\ndep = { path = \"../dep\" }\n",
			"plugin/src/lib.rs": rawRust + "pub fn n() -> i32 { dep::n() }\n",
			"dep/Cargo.toml":    "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
			"dep/src/lib.rs":    "pub fn n() -> i32 { 1 }\n",
		}, "dep/src/lib.rs", []string{"dep"}},
		{"wat", map[string]string{"plugin/p.wat": rawWAT}, "plugin/p.wat", nil},
	}
	for _, c := range cases {
		t.Run(c.lang, func(t *testing.T) {
			t.Parallel()
			root := tree(t, c.files)
			src := filepath.Join(root, "plugin")
			out := filepath.Join(t.TempDir(), "p.wasm")
			update := func(want bool, why string) {
				t.Helper()
				_, built, err := build.Update(context.Background(), src, out)
				var te *build.ToolchainError
				if errors.As(err, &te) {
					trellistest.SkipWithoutToolchain(t, te.Error())
				}
				if err != nil {
					t.Fatalf("%s: %v", why, err)
				}
				if built != want {
					t.Fatalf("%s: built = %v, want %v", why, built, want)
				}
			}
			update(true, "first build")
			update(false, "nothing changed")
			if c.lang == "rust" && !fileExists(filepath.Join(src, "Cargo.lock")) {
				t.Fatal("cargo wrote no Cargo.lock: the case tests nothing")
			}
			deps, err := build.Dependencies(src)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, d := range c.depends {
				want = append(want, filepath.Join(root, d))
			}
			if !slices.Equal(deps, want) {
				t.Errorf("Dependencies = %q, want %q", deps, want)
			}
			write(t, root, c.dependency, c.files[c.dependency]+"\n")
			update(true, "a dependency changed")
			update(false, "nothing changed since")
			if err := os.WriteFile(out, []byte("not the module built"), 0o644); err != nil {
				t.Fatal(err)
			}
			update(true, "the module changed")
		})
	}
}
