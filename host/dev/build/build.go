// Package build turns plugin sources into .wasm files with each language's
// own toolchain:
//
//	Go              go build, GOOS=wasip1 GOARCH=wasm -buildmode=c-shared (a reactor)
//	Rust            cargo build --release --target wasm32-wasi --offline (a cdylib)
//	C               clang --target=wasm32-wasi -O2 -mexec-model=reactor -s
//	AssemblyScript  asc from the project's node_modules (npm ci first if needed)
//	WAT             wat2wasm
//
// Detect says which of these a path holds; Build runs the toolchain. A
// missing toolchain is a *ToolchainError that names the tool and the Debian
// command that installs it, so that `trellis build` and `trellis dev` can
// say what to do; a failed build returns the toolchain's own output.
package build

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/regfile"
)

// Lang is a plugin source language. Its value is the short name the CLI
// and logs use.
type Lang string

// The languages Build knows.
const (
	Go             Lang = "go"
	Rust           Lang = "rust"
	C              Lang = "c"
	AssemblyScript Lang = "as"
	WAT            Lang = "wat"
)

// Langs lists the languages Build knows, in the order Detect tries them.
var Langs = []Lang{Go, Rust, AssemblyScript, C, WAT}

// String returns the language's name as people write it ("Rust").
func (l Lang) String() string {
	switch l {
	case Go:
		return "Go"
	case Rust:
		return "Rust"
	case C:
		return "C"
	case AssemblyScript:
		return "AssemblyScript"
	case WAT:
		return "WAT"
	}
	return string(l)
}

// ErrNoSource is wrapped by Detect's error for a path holding no source
// Build recognises.
var ErrNoSource = errors.New("no plugin source found")

// ErrNotPlugin is wrapped by every *NotPluginError.
var ErrNotPlugin = errors.New("not a plugin")

// NotPluginError is Detect's error for a directory that holds sources of a
// language Build knows but is not set up as a plugin: a Rust crate that is
// not a cdylib, an AssemblyScript package with no plugin entry file,
// several .wat files. Reason says what is missing. It wraps ErrNotPlugin.
type NotPluginError struct {
	Path   string
	Lang   Lang
	Reason string
}

func (e *NotPluginError) Error() string { return e.Path + ": not a plugin: " + e.Reason }

// Unwrap returns ErrNotPlugin.
func (e *NotPluginError) Unwrap() error { return ErrNotPlugin }

func notPlugin(path string, lang Lang, format string, args ...any) error {
	return &NotPluginError{Path: path, Lang: lang, Reason: fmt.Sprintf(format, args...)}
}

// ToolchainError says that a tool a build needs is not installed.
type ToolchainError struct {
	Lang    Lang
	Tool    string
	Install string // how to get it, on Debian unless it says otherwise
}

func (e *ToolchainError) Error() string {
	return fmt.Sprintf("building %s plugins needs %s, which is not installed; install it with: %s", e.Lang, e.Tool, e.Install)
}

// Debian packages of each toolchain, as .ci/run installs them.
const (
	installGo   = "see https://go.dev/doc/install (Go 1.24 or newer)"
	installC    = "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
	installRust = "apt-get install rustc cargo libstd-rust-dev-wasm32"
	installAS   = "apt-get install nodejs npm"
	installWAT  = "apt-get install wabt"
)

// source is what Detect found: the language and what its build needs.
type source struct {
	lang Lang
	// dir is where the toolchain runs: the Go package, the crate, the
	// AssemblyScript package, the directory of the C or WAT files.
	dir string
	// files are the C files or the one WAT file, relative to dir.
	files []string
	// crate is the Rust library's name as cargo writes its output file.
	crate string
	// entry is the AssemblyScript entry file relative to dir; asconfig says
	// whether dir has an asconfig.json, release whether it has a release target.
	entry             string
	asconfig, release bool
}

// Detect says which language the plugin source at path is in. path is a
// directory, or a single .wat or .c file. For a directory, in this order:
//
//   - Go: a package main (non-test .go files declaring package main).
//   - Rust: a Cargo.toml whose [lib] has crate-type "cdylib".
//   - AssemblyScript: an asconfig.json, or a package.json that depends on
//     assemblyscript, with an entry file (see below); or a directory without
//     either whose index.ts re-exports trellis_handle (export { ...,
//     trellis_handle } from ...) inside such a package (the SDK's own
//     conformance plugin is one), built with that package's compiler.
//   - C: one or more .c files.
//   - WAT: exactly one .wat file.
//
// The AssemblyScript entry is the first of asconfig.json "entries", the
// .ts file named after asc in package.json's "build" script, then
// assembly/index.ts or index.ts if it re-exports trellis_handle (with an
// asconfig.json, assembly/index.ts is taken as is: it is asc's own layout).
//
// Detect reads a few small files and runs nothing. Its error wraps
// ErrNoSource, or is a *NotPluginError.
func Detect(path string) (Lang, error) {
	s, err := inspect(path)
	if err != nil {
		return "", err
	}
	return s.lang, nil
}

func inspect(path string) (*source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		dir, file := filepath.Split(path)
		if dir == "" {
			dir = "."
		}
		switch filepath.Ext(path) {
		case ".wat":
			return &source{lang: WAT, dir: dir, files: []string{file}}, nil
		case ".c":
			return &source{lang: C, dir: dir, files: []string{file}}, nil
		}
		return nil, fmt.Errorf("%s: %w (want a directory, a .wat or a .c file)", path, ErrNoSource)
	}
	if isGoMain(path) {
		return &source{lang: Go, dir: path}, nil
	}
	if s, err := inspectRust(path); s != nil || err != nil {
		return s, err
	}
	if s, err := inspectAS(path); s != nil || err != nil {
		return s, err
	}
	if cs := glob(path, "*.c"); len(cs) > 0 {
		return &source{lang: C, dir: path, files: cs}, nil
	}
	switch wats := glob(path, "*.wat"); len(wats) {
	case 0:
	case 1:
		return &source{lang: WAT, dir: path, files: wats}, nil
	default:
		return nil, notPlugin(path, WAT, "%d .wat files (%s); a WAT plugin is one file", len(wats), strings.Join(wats, ", "))
	}
	return nil, fmt.Errorf("%s: %w (a Go package main, a Rust cdylib crate, an AssemblyScript package, .c files or one .wat file)", path, ErrNoSource)
}

// glob returns the names of dir's files matching pattern, sorted.
func glob(dir, pattern string) []string {
	paths, _ := filepath.Glob(filepath.Join(dir, pattern))
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			names = append(names, filepath.Base(p))
		}
	}
	return names
}

// isGoMain reports whether dir holds a Go package main.
func isGoMain(dir string) bool {
	for _, f := range glob(dir, "*.go") {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := readSource(filepath.Join(dir, f))
		if err == nil && (bytes.Contains(b, []byte("\npackage main")) || bytes.HasPrefix(b, []byte("package main"))) {
			return true
		}
	}
	return false
}

// Build compiles the plugin source at src (see Detect) into the module out.
// The toolchain writes into a hidden temporary directory beside out, and
// the module is renamed into place only once the build has succeeded, so a
// watcher never sees half a file and a failed build leaves out as it was.
// A build takes from milliseconds (WAT, C) to seconds (Go, Rust and
// AssemblyScript from scratch); ctx cancels it. The error is a
// *ToolchainError when a tool is missing, and otherwise carries the
// toolchain's own output.
func Build(ctx context.Context, src, out string) error {
	s, err := inspect(src)
	if err != nil {
		return err
	}
	outDir := filepath.Dir(out)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	tmpDir, err := os.MkdirTemp(outDir, ".trellis-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	tmp, err := filepath.Abs(filepath.Join(tmpDir, filepath.Base(out)))
	if err != nil {
		return err
	}
	switch s.lang {
	case Go:
		err = buildGo(ctx, s, tmp)
	case Rust:
		err = buildRust(ctx, s, tmp)
	case C:
		err = buildC(ctx, s, tmp)
	case AssemblyScript:
		err = buildAS(ctx, s, tmp)
	case WAT:
		err = buildWAT(ctx, s, tmp)
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(tmp); err != nil {
		return fmt.Errorf("%s build of %s wrote no module: %w", s.lang, src, err)
	}
	if err := tagLanguage(tmp, s.lang); err != nil {
		return fmt.Errorf("%s build of %s: %w", s.lang, src, err)
	}
	return os.Rename(tmp, out)
}

// tagLanguage appends to the module at path the custom section that names
// its language (abi.SectionLanguage), for `trellis ls` and the metrics.
// AssemblyScript is spelled out there.
func tagLanguage(path string, lang Lang) error {
	name := string(lang)
	if lang == AssemblyScript {
		name = "assemblyscript"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	payload := binary.AppendUvarint(nil, uint64(len(abi.SectionLanguage)))
	payload = append(payload, abi.SectionLanguage...)
	payload = append(payload, name...)
	section := append([]byte{0}, binary.AppendUvarint(nil, uint64(len(payload)))...)
	if _, err := f.Write(append(section, payload...)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// run runs cmd and returns its combined output in the error if it fails.
func run(cmd *exec.Cmd, what string) ([]byte, error) {
	var outb bytes.Buffer
	cmd.Stdout = &outb
	cmd.Stderr = &outb
	if err := cmd.Run(); err != nil {
		return outb.Bytes(), fmt.Errorf("%s in %s failed: %w\n%s", what, cmd.Dir, err, strings.TrimSpace(outb.String()))
	}
	return outb.Bytes(), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// env returns the environment for a toolchain: this process's, with set
// added and every variable named in set or drop removed first.
func env(set []string, drop ...string) []string {
	skip := map[string]bool{}
	for _, kv := range set {
		skip[kv[:strings.IndexByte(kv, '=')]] = true
	}
	for _, k := range drop {
		skip[k] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		if i := strings.IndexByte(kv, '='); i > 0 && skip[kv[:i]] {
			continue
		}
		out = append(out, kv)
	}
	return append(out, set...)
}

// MaxSourceFile is the largest source or manifest file (a .go file,
// package.json, Cargo.toml, ...) read to detect or build a plugin.
const MaxSourceFile = 16 << 20

// readSource reads a file of a source directory. Those directories are
// watched, so whatever lands in them is read through regfile: a FIFO named
// main.go must not stall the dev loop, nor a symlink to a device fill memory.
func readSource(path string) ([]byte, error) {
	return regfile.Read(path, MaxSourceFile, "build.MaxSourceFile")
}
