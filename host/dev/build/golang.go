package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
)

// buildGo builds the package main in s.dir as a wasip1 reactor, within
// whatever Go module holds it: the Trellis tree's own module for the examples
// and built-in plugins; the SDK's module (sdk/go) for its conformance plugin;
// or the plugin's own go.mod, which requires github.com/trellis-mesh/trellis/sdk/go
// (and, through it, .../abi), as `trellis new` writes it, with replace
// directives to a source tree's sdk/go and abi or versions of a release. The
// SDK and abi modules import nothing outside the standard library, so such a
// plugin needs no more than they do: Go 1.24, the first with //go:wasmexport.
func buildGo(ctx context.Context, s *source, out string) error {
	goTool, err := lookGo()
	if err != nil {
		return err
	}
	// -trimpath: the module does not depend on where its source is, so a
	// moved or copied plugin keeps its version hash (and its compiled code
	// in the cache).
	cmd := exec.CommandContext(ctx, goTool, "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = s.dir
	cmd.Env = env([]string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"})
	_, err = run(cmd, "go build")
	return err
}

// lookGo finds the go command: the one of GOROOT first, then PATH.
func lookGo() (string, error) {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	return "", &ToolchainError{Lang: Go, Tool: "go (1.24 or newer)", Install: installGo}
}
