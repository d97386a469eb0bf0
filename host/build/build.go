// Package build turns plugin sources into .wasm files with the language's
// own toolchain: the Go toolchain for Go (GOOS=wasip1, a c-shared reactor),
// wat2wasm for WebAssembly text.
//
// Errors name the missing tool and how to install it, so that `trellis build`
// and `trellis dev` can say what to do.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Lang is a plugin source language.
type Lang string

// The languages Build knows.
const (
	Go  Lang = "go"
	WAT Lang = "wat"
)

// ErrNoSource is wrapped by Detect's error for a directory holding no plugin
// source it recognises.
var ErrNoSource = errors.New("no plugin source found")

// ToolchainError says that a tool a build needs is not installed.
type ToolchainError struct {
	Lang    Lang
	Tool    string
	Install string // how to get it
}

func (e *ToolchainError) Error() string {
	return fmt.Sprintf("building %s plugins needs %s, which is not on PATH; install it with: %s", e.Lang, e.Tool, e.Install)
}

// Detect says which language the plugin source at path is in. path is a
// directory, or a single .wat file.
func Detect(path string) (Lang, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		if strings.HasSuffix(path, ".wat") {
			return WAT, nil
		}
		return "", fmt.Errorf("%s: %w (want a directory or a .wat file)", path, ErrNoSource)
	}
	if isGoMain(path) {
		return Go, nil
	}
	wats, _ := filepath.Glob(filepath.Join(path, "*.wat"))
	if len(wats) == 1 {
		return WAT, nil
	}
	return "", fmt.Errorf("%s: %w (a Go package main, or one .wat file)", path, ErrNoSource)
}

// Recognise reports whether dir looks like plugin source in a language this
// version cannot build yet, and which.
func Recognise(dir string) (string, bool) {
	for _, probe := range []struct{ file, lang string }{
		{"Cargo.toml", "Rust"}, {"asconfig.json", "AssemblyScript"},
	} {
		if fileExists(filepath.Join(dir, probe.file)) {
			return probe.lang, true
		}
	}
	if cs, _ := filepath.Glob(filepath.Join(dir, "*.c")); len(cs) > 0 {
		return "C", true
	}
	return "", false
}

// isGoMain reports whether dir holds a Go package main.
func isGoMain(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil && (bytes.Contains(b, []byte("\npackage main")) || bytes.HasPrefix(b, []byte("package main"))) {
			return true
		}
	}
	return false
}

// Build compiles the plugin source at src (see Detect) into the module out,
// replacing out only once the build has succeeded. The error carries the
// toolchain's own output.
func Build(ctx context.Context, src, out string) error {
	lang, err := Detect(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	// Build to a temporary name and rename, so a watcher never sees half a file.
	tmp := out + ".tmp"
	switch lang {
	case Go:
		err = buildGo(ctx, src, tmp)
	case WAT:
		err = buildWAT(ctx, src, tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

func buildGo(ctx context.Context, dir, out string) error {
	goTool, err := lookGo()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-buildmode=c-shared", "-o", abs, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	return run(cmd, "go build")
}

// lookGo finds the go command: the one running this program's toolchain
// (GOROOT) first, then PATH.
func lookGo() (string, error) {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	return "", &ToolchainError{Lang: Go, Tool: "go (1.24 or newer)", Install: "see https://go.dev/doc/install"}
}

func buildWAT(ctx context.Context, src, out string) error {
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		wats, _ := filepath.Glob(filepath.Join(src, "*.wat"))
		src = wats[0]
	}
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		return &ToolchainError{Lang: WAT, Tool: "wat2wasm", Install: "apt-get install wabt"}
	}
	return run(exec.CommandContext(ctx, tool, src, "-o", out), "wat2wasm")
}

func run(cmd *exec.Cmd, what string) error {
	var outb bytes.Buffer
	cmd.Stdout = &outb
	cmd.Stderr = &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s in %s failed: %w\n%s", what, cmd.Dir, err, strings.TrimSpace(outb.String()))
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
