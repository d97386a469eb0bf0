package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// StampSuffix is added to a module's path to name the file, beside it, in
// which Update records the fingerprint of the sources it was built from.
const StampSuffix = ".stamp"

// Update brings the module out up to date with the plugin source at src:
// it builds (as Build does) unless the stamp beside out records the
// fingerprint src has now and out is the module that build made. It returns
// that fingerprint and whether it built. A warm `trellis dev` start thus
// runs no toolchain at all: not even AssemblyScript's, which has no cache
// of its own, nor Go's linker, which runs at every go build.
//
// The fingerprint covers what a build reads (see Fingerprint). A build that
// writes a lock file into the source (cargo's Cargo.lock, npm's
// package-lock.json, the compiler npm installs) does not make the next
// Update build again: the fingerprint recorded is taken after the build when
// nothing but those changed during it.
func Update(ctx context.Context, src, out string) (fingerprint string, built bool, err error) {
	before, err := inputs(src)
	if err != nil {
		return "", false, err
	}
	fingerprint = before.sum()
	if b, err := os.ReadFile(out + StampSuffix); err == nil {
		if fp, mod, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok && fp == fingerprint && mod == fileSum(out) {
			return fingerprint, false, nil
		}
	}
	os.Remove(out + StampSuffix)
	if err := Build(ctx, src, out); err != nil {
		return fingerprint, true, err
	}
	if after, err := inputs(src); err == nil && before.onlyToolchainWrites(after) {
		fingerprint = after.sum()
	}
	stamp := fingerprint + " " + fileSum(out) + "\n"
	if err := os.WriteFile(out+StampSuffix, []byte(stamp), 0o644); err != nil {
		return fingerprint, true, fmt.Errorf("build stamp: %w", err)
	}
	return fingerprint, true, nil
}

// Fingerprint returns a hash of everything a build of the plugin source at
// src reads, as far as it can be known without running the toolchain: the
// content of every file under the source (but build outputs, node_modules,
// target, testdata and hidden directories), the language's toolchain (its
// programs' paths, sizes and modification times), and what the source
// depends on outside itself:
//
//	Go              go.mod and go.sum, the module's packages the plugin imports
//	                (transitively), the directories of local replace directives
//	Rust            the crates of path dependencies (transitively)
//	C               the headers of the SDK directory the build finds and of
//	                compile_flags.txt's -I directories
//	AssemblyScript  the packages of file: dependencies, and the version of the
//	                compiler installed
//	WAT             the file
//
// It reads files and runs nothing: a few milliseconds for a plugin and its
// SDK.
func Fingerprint(src string) (string, error) {
	in, err := inputs(src)
	if err != nil {
		return "", err
	}
	return in.sum(), nil
}

// Dependencies returns the directories outside src that a build of it
// reads (see Fingerprint), so that a watcher can watch them too.
func Dependencies(src string) ([]string, error) {
	in, err := inputs(src)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range in.dirs {
		if d != abs && !strings.HasPrefix(d, abs+string(filepath.Separator)) {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

// inputSet is what a build reads, by key: "file:PATH" for a file's content
// hash, "tool:NAME" for a toolchain's identity.
type inputSet struct {
	entries map[string]string
	dirs    []string // the directories hashed, absolute
	seen    map[string]bool
}

func (in *inputSet) sum() string {
	keys := make([]string, 0, len(in.entries))
	for k := range in.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	// What Build itself adds to a module: a module built before it did
	// is built again.
	fmt.Fprintf(h, "build\x00%s\n", buildFormat)
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\n", k, in.entries[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// buildFormat changes when what Build does to a toolchain's output
// changes (2: the language section), so that builds of unchanged sources
// made the old way are made again.
const buildFormat = "2"

// toolchainWrites are the files and entries a build itself may add or
// change in its source without that being a change to build again for.
var toolchainWrites = map[string]bool{"Cargo.lock": true, "package-lock.json": true, "tool:asc": true}

// onlyToolchainWrites reports whether after differs from in only in
// entries a toolchain writes during a build.
func (in *inputSet) onlyToolchainWrites(after *inputSet) bool {
	differs := func(k string) bool {
		return !toolchainWrites[k] && !toolchainWrites[filepath.Base(strings.TrimPrefix(k, "file:"))]
	}
	for k, v := range in.entries {
		if after.entries[k] != v && differs(k) {
			return false
		}
	}
	for k := range after.entries {
		if _, ok := in.entries[k]; !ok && differs(k) {
			return false
		}
	}
	return true
}

func inputs(src string) (*inputSet, error) {
	s, err := inspect(src)
	if err != nil {
		return nil, err
	}
	in := &inputSet{entries: map[string]string{"lang": string(s.lang)}, seen: map[string]bool{}}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	in.entries["source"] = abs
	switch s.lang {
	case Go:
		in.tool("go", func() (string, error) { return lookGo() })
		err = in.goInputs(s.dir)
	case Rust:
		in.tool("cargo", func() (string, error) { c, _, err := lookRust(); return c, err })
		in.tool("rustc", func() (string, error) { _, r, err := lookRust(); return r, err })
		err = in.rustInputs(s.dir)
	case C:
		in.tool("clang", func() (string, error) { return exec.LookPath("clang") })
		err = in.cInputs(s)
	case AssemblyScript:
		in.tool("node", func() (string, error) { return exec.LookPath("node") })
		err = in.asInputs(s.dir)
	case WAT:
		in.tool("wat2wasm", func() (string, error) { return exec.LookPath("wat2wasm") })
		in.file(filepath.Join(s.dir, s.files[0]))
	}
	return in, err
}

// tool records a program's identity: where it is, its size and when it
// changed; a toolchain upgrade changes one of them.
func (in *inputSet) tool(name string, find func() (string, error)) {
	p, err := find()
	if err != nil {
		in.entries["tool:"+name] = "missing"
		return
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	st, err := os.Stat(p)
	if err != nil {
		in.entries["tool:"+name] = "missing"
		return
	}
	in.entries["tool:"+name] = fmt.Sprintf("%s %d %d", p, st.Size(), st.ModTime().UnixNano())
}

// file records one file's content hash.
func (in *inputSet) file(p string) {
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = p
	}
	b, err := readSource(abs)
	if err != nil {
		in.entries["file:"+abs] = "unreadable: " + err.Error()
		return
	}
	sum := sha256.Sum256(b)
	in.entries["file:"+abs] = hex.EncodeToString(sum[:])
}

// skipDir reports a directory no build reads sources from.
func skipDir(name string) bool {
	return strings.HasPrefix(name, ".") || name == "node_modules" || name == "target" || name == "testdata"
}

// tree records every file under dir (but skipped directories and .wasm
// files) once; keep filters the files by name (nil: all).
func (in *inputSet) tree(dir string, keep func(name string) bool) error {
	return in.walk(dir, keep, true)
}

// walk records dir's files as tree does, and its subdirectories' only if
// recursive.
func (in *inputSet) walk(dir string, keep func(name string) bool, recursive bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if in.seen[abs] {
		return nil
	}
	in.seen[abs] = true
	in.dirs = append(in.dirs, abs)
	return filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == abs {
				return err
			}
			return nil // vanished while we looked: the next event looks again
		}
		if d.IsDir() {
			if p != abs && (!recursive || skipDir(d.Name())) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".wasm") || (keep != nil && !keep(d.Name())) {
			return nil
		}
		in.file(p)
		return nil
	})
}

var (
	goModuleLine  = regexp.MustCompile(`(?m)^module\s+"?([^"\s]+)"?\s*$`)
	goReplaceDest = regexp.MustCompile(`=>\s*("[^"]+"|\S+)\s*$`)
)

// goInputs records the plugin package's directory, its module's go.mod and
// go.sum, the module's packages it imports, and local replacements. Modules
// from the module cache are fixed by go.sum.
func (in *inputSet) goInputs(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	modFile := findUp(abs, "go.mod")
	if err := in.tree(abs, nil); err != nil {
		return err
	}
	if modFile == "" {
		return nil
	}
	root := filepath.Dir(modFile)
	in.file(modFile)
	if fileExists(filepath.Join(root, "go.sum")) {
		in.file(filepath.Join(root, "go.sum"))
	}
	gomod, err := readSource(modFile)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(gomod), "\n") {
		line, _, _ = strings.Cut(line, "//")
		if m := goReplaceDest.FindStringSubmatch(line); m != nil {
			dest := strings.Trim(m[1], `"`)
			if strings.HasPrefix(dest, ".") || filepath.IsAbs(dest) {
				if !filepath.IsAbs(dest) {
					dest = filepath.Join(root, dest)
				}
				in.tree(dest, goFile)
			}
		}
	}
	m := goModuleLine.FindSubmatch(gomod)
	if m == nil {
		return nil
	}
	// The module's own packages the plugin imports, transitively.
	module := string(m[1])
	queue := []string{abs}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		for _, imp := range goImports(pkg) {
			if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
				d := filepath.Join(root, filepath.FromSlash(rest))
				if !in.seen[d] {
					in.walk(d, goFile, false) // a package is one directory
					queue = append(queue, d)
				}
			}
		}
	}
	return nil
}

// goFile reports a file the go command compiles or reads for a package
// of another directory than the plugin's (whose files are all taken, for
// go:embed).
func goFile(name string) bool {
	switch filepath.Ext(name) {
	case ".go", ".s", ".c", ".h":
		return true
	}
	return name == "go.mod" || name == "go.sum"
}

// goImports returns the import paths of the non-test .go files in dir.
func goImports(dir string) []string {
	var out []string
	fset := token.NewFileSet()
	for _, name := range glob(dir, "*.go") {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := readSource(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		f, err := parser.ParseFile(fset, name, b, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, imp := range f.Imports {
			if p, err := strconv.Unquote(imp.Path.Value); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

var cargoPath = regexp.MustCompile(`\bpath\s*=\s*"([^"]+)"`)

// rustInputs records the crate and the crates of its path dependencies,
// transitively.
func (in *inputSet) rustInputs(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if in.seen[abs] {
		return nil
	}
	if err := in.tree(abs, nil); err != nil {
		return err
	}
	manifest, err := readSource(filepath.Join(abs, "Cargo.toml"))
	if err != nil {
		return nil
	}
	for _, m := range cargoPath.FindAllSubmatch(manifest, -1) {
		dep := string(m[1])
		if !filepath.IsAbs(dep) {
			dep = filepath.Join(abs, dep)
		}
		// [lib] path = "src/lib.rs" names a file of this crate, not a crate.
		if st, err := os.Stat(dep); err == nil && st.IsDir() && fileExists(filepath.Join(dep, "Cargo.toml")) {
			in.rustInputs(dep)
		}
	}
	return nil
}

// cInputs records the C files' directory and the headers of every include
// directory the build passes.
func (in *inputSet) cInputs(s *source) error {
	if err := in.tree(s.dir, nil); err != nil {
		return err
	}
	header := func(name string) bool { return strings.HasSuffix(name, ".h") }
	if inc := findUp(s.dir, filepath.Join("sdk", "c", "trellis.h")); inc != "" {
		in.tree(filepath.Dir(inc), header)
	}
	flags, err := cFlags(filepath.Join(s.dir, CFlagsFile))
	if err != nil {
		return err
	}
	for _, f := range flags {
		if d, ok := strings.CutPrefix(f, "-I"); ok && d != "" {
			if !filepath.IsAbs(d) {
				d = filepath.Join(s.dir, d)
			}
			in.tree(d, header)
		}
	}
	return nil
}

// asInputs records the package, its file: dependencies and the compiler
// version it resolves.
func (in *inputSet) asInputs(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := in.tree(abs, nil); err != nil {
		return err
	}
	pkg, _, _ := readPackage(abs)
	for _, deps := range []map[string]string{pkg.Dependencies, pkg.DevDependencies} {
		for _, spec := range deps {
			if p, ok := strings.CutPrefix(spec, "file:"); ok {
				if !filepath.IsAbs(p) {
					p = filepath.Join(abs, p)
				}
				in.tree(p, nil)
			}
		}
	}
	if p := findUp(abs, filepath.Join("node_modules", "assemblyscript", "package.json")); p != "" {
		if b, err := readSource(p); err == nil {
			var v struct {
				Version string `json:"version"`
			}
			if json.Unmarshal(b, &v) == nil {
				in.entries["tool:asc"] = v.Version
			}
		}
	}
	return nil
}

// fileSum is the content hash of a file, "" if it cannot be read.
func fileSum(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
