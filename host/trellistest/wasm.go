// Package trellistest runs plugins against a real embedded Trellis host in Go
// tests, the way net/http/httptest runs handlers against a real server.
//
//	func TestMyPlugin(t *testing.T) {
//		h := trellistest.NewHost(t)
//		h.Load("greet", trellistest.Wasm(t, "./greet"))
//		msg := h.Request("greet", []byte("Ada"), time.Second)
//		if string(msg.Data) != "Hello, Ada!" { ... }
//	}
//
// Wasm builds plugin sources with their real toolchains, once per test
// binary. When a toolchain is missing the test is skipped with a message that
// says what to install, unless TRELLIS_REQUIRE_TOOLCHAINS=1 is set (as CI
// does), in which case it fails.
package trellistest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trellis-mesh/trellis/host/dev/build"
)

// RequireToolchainsEnv names the environment variable that turns a missing
// toolchain from a skip into a failure.
const RequireToolchainsEnv = "TRELLIS_REQUIRE_TOOLCHAINS"

var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Wasm builds the plugin source at src (a Go package directory, a directory
// with one .wat file, or a .wat file; relative to the test's directory) and
// returns the path of the .wasm. Each source is built once per test binary;
// concurrent callers share the build.
func Wasm(tb testing.TB, src string) string {
	tb.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		tb.Fatal(err)
	}
	buildMu.Lock()
	if builtDir == "" {
		builtDir, err = os.MkdirTemp("", "trellistest-wasm-")
		if err != nil {
			buildMu.Unlock()
			tb.Fatal(err)
		}
	}
	r := built[abs]
	if r == nil {
		r = &buildResult{}
		built[abs] = r
	}
	dir := builtDir
	buildMu.Unlock()

	r.once.Do(func() {
		name := strings.NewReplacer("/", "_", "\\", "_", ":", "_").Replace(strings.TrimPrefix(abs, "/"))
		r.path = filepath.Join(dir, name+".wasm")
		r.err = build.Build(context.Background(), abs, r.path)
	})
	if r.err != nil {
		var te *build.ToolchainError
		if errors.As(r.err, &te) {
			SkipWithoutToolchain(tb, te.Error())
		}
		tb.Fatalf("build %s: %v", src, r.err)
	}
	return r.path
}

// WasmBytes is Wasm followed by reading the file.
func WasmBytes(tb testing.TB, src string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Wasm(tb, src))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// SkipWithoutToolchain skips the test with why, or fails it when
// TRELLIS_REQUIRE_TOOLCHAINS=1.
func SkipWithoutToolchain(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv(RequireToolchainsEnv) == "1" {
		tb.Fatalf("%s (%s=1, so a missing toolchain is a failure)", why, RequireToolchainsEnv)
	}
	tb.Skip(why)
}
