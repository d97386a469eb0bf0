package scaffold_test

import (
	"errors"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/dev/build"
	"github.com/trellis-mesh/trellis/host/dev/scaffold"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// insideTree returns a new directory inside this source tree (under
// testdata, which .gitignore covers), removed when the test ends.
func insideTree(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("testdata", "new-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWrittenPluginBuildsAndAnswers is the promise of `trellis new`: the
// plugin builds as written and answers on a real host, inside the source
// tree (the SDK by relative path) and outside it (the SDK of the tree the
// working directory is in).
func TestWrittenPluginBuildsAndAnswers(t *testing.T) {
	for _, lang := range scaffold.Langs {
		for _, where := range []string{"inside", "outside"} {
			t.Run(string(lang)+"/"+where, func(t *testing.T) {
				t.Parallel()
				parent := t.TempDir()
				if where == "inside" {
					parent = insideTree(t)
				}
				name := "hello-" + string(lang)
				dir := filepath.Join(parent, name)
				if err := scaffold.Write(dir, string(lang), name); err != nil {
					t.Fatal(err)
				}
				if got, err := build.Detect(dir); got != lang || err != nil {
					t.Fatalf("Detect = %q, %v; want %q", got, err, lang)
				}
				wasm := trellistest.Wasm(t, dir)
				h := trellistest.NewHost(t)
				h.Load(name, wasm)
				m := h.Request(name, []byte("world"), 10*time.Second)
				if want := "Hello from " + name + ": world"; string(m.Data) != want {
					t.Fatalf("reply %q (headers %v), want %q", m.Data, m.Header, want)
				}
			})
		}
	}
}

func TestGoPluginInsideTheTreeHasNoModule(t *testing.T) {
	dir := filepath.Join(insideTree(t), "hello")
	if err := scaffold.Write(dir, "go", "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("go.mod inside the tree: %v", err)
	}
	src := read(t, filepath.Join(dir, "main.go"))
	if formatted, err := format.Source([]byte(src)); err != nil || string(formatted) != src {
		t.Fatalf("main.go is not gofmt'd (%v):\n%s", err, src)
	}
}

func TestPluginOutsideTheTreeUsesItsSDK(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{ // lang -> file, text it must hold
		"go":   {"go.mod", "github.com/trellis-mesh/trellis/sdk/go => " + root + "/sdk/go"},
		"rust": {"Cargo.toml", `trellis = { path = "` + root + `/sdk/rust" }`},
		"c":    {"compile_flags.txt", "-I" + root + "/sdk/c"},
		"as":   {"package.json", `"file:` + root + `/sdk/assemblyscript"`},
	}
	for lang, w := range want {
		dir := filepath.Join(t.TempDir(), "p")
		if err := scaffold.Write(dir, lang, "p"); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(dir, w[0])); !strings.Contains(got, w[1]) {
			t.Errorf("%s %s does not hold %q:\n%s", lang, w[0], w[1], got)
		}
	}
}

// TestPluginWithoutATreeSaysHowToFindTheSDK: written far from any Trellis
// source tree, each plugin names the SDK with a placeholder (Go: requires
// the module) and its README says what to change.
func TestPluginWithoutATreeSaysHowToFindTheSDK(t *testing.T) {
	t.Chdir(t.TempDir())
	want := map[string][2]string{ // lang -> text in the build file, text in the README
		"go":   {"github.com/trellis-mesh/trellis/sdk/go v0.0.0", "go get github.com/trellis-mesh/trellis/sdk/go@latest"},
		"rust": {"path/to/trellis/sdk/rust", "set it to\n`sdk/rust`"},
		"c":    {"-Ipath/to/trellis/sdk/c", "copy `trellis.h` into this directory"},
		"as":   {"file:path/to/trellis/sdk/assemblyscript", "set it to `sdk/assemblyscript`"},
	}
	files := map[string]string{"go": "go.mod", "rust": "Cargo.toml", "c": "compile_flags.txt", "as": "package.json"}
	for lang, w := range want {
		dir := filepath.Join(t.TempDir(), "p")
		if err := scaffold.Write(dir, lang, "p"); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(dir, files[lang])); !strings.Contains(got, w[0]) {
			t.Errorf("%s %s does not hold %q:\n%s", lang, files[lang], w[0], got)
		}
		if got := read(t, filepath.Join(dir, "README.md")); !strings.Contains(got, w[1]) {
			t.Errorf("%s README.md does not say %q:\n%s", lang, w[1], got)
		}
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dir, lang, name string
		says            string
	}{
		{filepath.Join(t.TempDir(), "x"), "cobol", "x", `language "cobol": want one of go, rust, c, as`},
		{filepath.Join(t.TempDir(), "x"), "go", "orders.created", "plugin name"},
		{filepath.Join(t.TempDir(), "x"), "go", "", "plugin name"},
		{filepath.Join(t.TempDir(), "x"), "go", "9lives", "plugin name"},
		{full, "go", "full", "not empty"},
	}
	for _, c := range cases {
		err := scaffold.Write(c.dir, c.lang, c.name)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Write(%s, %q, %q) = %v; want an error saying %q", c.dir, c.lang, c.name, err, c.says)
		}
	}
	if err := scaffold.Write(full, "go", "full"); !errors.Is(err, scaffold.ErrExists) {
		t.Errorf("error %v is not ErrExists", err)
	}
	if read(t, filepath.Join(full, "keep.txt")) != "mine" {
		t.Error("Write touched a file that was there")
	}
}

func TestWriteIntoAnEmptyDirectory(t *testing.T) {
	dir := t.TempDir() // exists, empty: as after mkdir
	if err := scaffold.Write(dir, "AssemblyScript", "Hello"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "package.json")); !strings.Contains(got, `"name": "hello"`) {
		t.Fatalf("package.json:\n%s", got)
	}
}

// TestGoPluginModuleGraphHoldsOnlyTheSDK: a Go plugin written outside the
// tree depends on the SDK and abi modules alone, so building it pulls in
// none of the host's dependencies (nats-server, wazero, HCL) and needs no
// newer Go than the SDK's; and its go.mod is tidy as written.
func TestGoPluginModuleGraphHoldsOnlyTheSDK(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir := filepath.Join(t.TempDir(), "hello")
	if err := scaffold.Write(dir, "go", "hello"); err != nil {
		t.Fatal(err)
	}
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(goTool, args...)
		cmd.Dir = dir
		// GOFLAGS=-mod=mod would let go rewrite go.mod; the graph must be
		// the one written. GOWORK=off: no workspace above the temp dir.
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-mod=readonly", "GOWORK=off", "GOPROXY=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var mods []string
	for _, line := range strings.Split(strings.TrimSpace(goCmd("list", "-m", "all")), "\n") {
		mods = append(mods, strings.Fields(line)[0])
	}
	want := []string{"hello", "github.com/trellis-mesh/trellis/abi", "github.com/trellis-mesh/trellis/sdk/go"}
	if !slices.Equal(mods, want) {
		t.Fatalf("go list -m all = %q, want %q", mods, want)
	}
	if deps := goCmd("list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "."); strings.TrimSpace(deps) != "github.com/trellis-mesh/trellis/abi\ngithub.com/trellis-mesh/trellis/sdk/go\nhello" {
		t.Fatalf("non-standard packages:\n%s", deps)
	}
	goCmd("mod", "tidy", "-diff")
	goMod := read(t, filepath.Join(dir, "go.mod"))
	if !strings.Contains(goMod, "\ngo 1.24\n") {
		t.Fatalf("go.mod does not ask for the SDK's Go (1.24):\n%s", goMod)
	}
}
