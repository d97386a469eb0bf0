// Package scaffold writes a new plugin that builds and runs as it is: the
// smallest useful handler in one language, with its build files and a
// README, for `trellis new --lang LANG DIR`.
//
// The plugin subscribes to a subject named after it and answers each
// request with "Hello from NAME: <payload>". It uses the Trellis SDK of a
// Trellis source tree: the one that holds the new directory (by a relative
// path, so the tree can move), or else the one that holds the working
// directory (by an absolute path). Without either, the files name the SDK
// with a placeholder and the README says how to point it at the SDK.
//
// A Go plugin outside the tree has a go.mod that requires the SDK module and,
// through it, the abi module, with replace directives to the tree's sdk/go
// and abi: its module graph holds those two and nothing of the host
// (nats-server, wazero, HCL), and it needs no newer Go than the SDK's.
package scaffold

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/trellis-mesh/trellis/host/dev/build"
)

// Langs are the languages Write knows, by the names it takes.
var Langs = []build.Lang{build.Go, build.Rust, build.C, build.AssemblyScript}

// ErrExists is wrapped by Write's error for a directory that is not empty.
var ErrExists = errors.New("directory exists and is not empty")

//go:embed templates
var templates embed.FS

// module is the Go module path of the Trellis source tree.
const module = "github.com/trellis-mesh/trellis"

// The Go modules a Go plugin requires: the SDK, and the ABI constants the
// SDK imports. Each is a module of its own inside the source tree.
const (
	sdkModule = module + "/sdk/go"
	abiModule = module + "/abi"
)

// sdkGoVersion is the go line of a plugin's go.mod when no source tree says
// otherwise: the oldest Go that builds a wasip1 reactor with
// //go:wasmexport, which is the SDK's own go line.
const sdkGoVersion = "1.24"

// defaultASVersion is the AssemblyScript compiler a plugin asks for when no
// source tree says which.
const defaultASVersion = "^0.28.20"

var validName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)

// data is what the templates see.
type data struct {
	// Name is the plugin's name and its subject.
	Name string
	// Package is Name as an npm package name; Crate as cargo names the
	// library's output file.
	Package, Crate string
	// Root is the Trellis source tree in slash form: relative to the new
	// directory when it is inside the tree, absolute otherwise, "" unknown.
	Root string
	// Inside says that the new directory is inside the tree (so a Go plugin
	// belongs to the tree's module and needs no go.mod).
	Inside bool
	// GoVersion is the go line of a go.mod; ASVersion the assemblyscript
	// version range of a package.json.
	GoVersion, ASVersion string
	// SDKModule and ABIModule are the Go modules a Go plugin requires.
	SDKModule, ABIModule string
}

// Write writes a plugin named name in lang (one of Langs: "go", "rust", "c",
// "as"; "assemblyscript" is taken too) into dir, creating dir. name is the
// plugin's subject and its package name, so it is letters, digits, '-' and
// '_', starting with a letter; `trellis new DIR` passes filepath.Base(DIR).
// Write refuses a dir that exists and is not empty (ErrExists). It writes a
// handful of small files and runs nothing; the plugin builds with
// build.Build(ctx, dir, out).
func Write(dir, lang, name string) error {
	l, err := parseLang(lang)
	if err != nil {
		return err
	}
	if !validName.MatchString(name) {
		return fmt.Errorf("plugin name %q: use letters, digits, '-' and '_', starting with a letter (it is the subject and the package name)", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(abs); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s: %w", dir, ErrExists)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d := data{
		Name:      name,
		Package:   strings.ToLower(name),
		Crate:     strings.ReplaceAll(name, "-", "_"),
		GoVersion: sdkGoVersion,
		ASVersion: defaultASVersion,
		SDKModule: sdkModule,
		ABIModule: abiModule,
	}
	if root := findRoot(abs); root != "" {
		d.Inside = true
		rel, err := filepath.Rel(abs, root)
		if err != nil {
			return err
		}
		d.Root = filepath.ToSlash(rel)
		d.fromTree(root)
	} else if wd, err := os.Getwd(); err == nil {
		if root := findRoot(wd); root != "" {
			d.Root = filepath.ToSlash(root)
			d.fromTree(root)
		}
	}
	return render(abs, string(l), d)
}

func parseLang(lang string) (build.Lang, error) {
	if strings.EqualFold(lang, "assemblyscript") {
		return build.AssemblyScript, nil
	}
	var names []string
	for _, l := range Langs {
		if strings.EqualFold(lang, string(l)) {
			return l, nil
		}
		names = append(names, string(l))
	}
	return "", fmt.Errorf("language %q: want one of %s", lang, strings.Join(names, ", "))
}

// render executes the templates of lang into dir. A template that renders to
// nothing but space is not written (go.mod inside the tree).
func render(dir, lang string, d data) error {
	base := path.Join("templates", lang)
	type file struct {
		path string
		body []byte
	}
	var files []file
	err := fs.WalkDir(templates, base, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		src, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(p).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := t.Execute(&out, d); err != nil {
			return err
		}
		if len(bytes.TrimSpace(out.Bytes())) == 0 {
			return nil
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, base+"/"), ".tmpl")
		relDir, name := path.Split(rel)
		switch name {
		case "gitignore":
			name = ".gitignore"
		case "NAME.c":
			name = d.Name + ".c"
		}
		files = append(files, file{filepath.FromSlash(relDir + name), out.Bytes()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("scaffold templates: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// findRoot walks up from dir to a Trellis source tree: a directory whose
// go.mod declares the Trellis module and that holds sdk/. "" if none.
func findRoot(dir string) string {
	for {
		if isTree(dir) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

var moduleLine = regexp.MustCompile(`(?m)^module\s+"?` + regexp.QuoteMeta(module) + `"?\s*$`)

func isTree(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !moduleLine.Match(b) {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "sdk"))
	return err == nil && st.IsDir()
}

// fromTree takes the versions the tree's own SDKs need: the Go SDK's go line
// (a module that requires the SDK must not ask for an older Go) and the
// AssemblyScript compiler.
func (d *data) fromTree(root string) {
	if b, err := os.ReadFile(filepath.Join(root, "sdk", "go", "go.mod")); err == nil {
		if m := regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`).FindSubmatch(b); m != nil {
			d.GoVersion = string(m[1])
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "sdk", "assemblyscript", "package.json")); err == nil {
		var pkg struct {
			DevDependencies map[string]string `json:"devDependencies"`
		}
		if json.Unmarshal(b, &pkg) == nil && pkg.DevDependencies["assemblyscript"] != "" {
			d.ASVersion = pkg.DevDependencies["assemblyscript"]
		}
	}
}
