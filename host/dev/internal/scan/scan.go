// Package scan finds the plugins under a directory for `trellis dev`: built
// .wasm files, and source directories in any language package build knows
// (Go, Rust, C, AssemblyScript, WAT).
package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/trellis-mesh/trellis/host/dev/build"
)

// Plugin is a plugin found under the scanned directory.
type Plugin struct {
	// Name is the file name without .wasm, or the source directory's name.
	Name string
	// Wasm is the path of a built module; empty for a source plugin.
	Wasm string
	// Source is the source directory (or .wat file) to build; empty for a
	// built module.
	Source string
	// Lang is the source's language.
	Lang build.Lang
}

// Skipped is something that looked like a plugin but is not used, and why.
type Skipped struct {
	Path   string
	Reason string
}

// skipDirs are never entered: build outputs, dependencies, fixtures.
var skipDirs = map[string]bool{"node_modules": true, "target": true, "testdata": true, "vendor": true}

// Dir walks root. A directory whose contents build.Detect recognises is a
// source plugin and is not entered further; a .wasm file anywhere else is a
// built plugin. Hidden directories, those starting with "_", and
// node_modules, target, testdata and vendor are not entered. A directory of
// sources that is not set up as a plugin (a Rust crate that is not a
// cdylib, say) is reported in Skipped with the reason, and entered. Two
// plugins with one name are an error in the second's Skipped entry; the
// first found (in lexical order) wins.
func Dir(root string) ([]Plugin, []Skipped, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory", root)
	}
	var found []Plugin
	var skipped []Skipped
	names := map[string]string{}
	add := func(p Plugin, path string) {
		if prev, dup := names[p.Name]; dup {
			skipped = append(skipped, Skipped{Path: path, Reason: fmt.Sprintf("another plugin named %q is at %s", p.Name, prev)})
			return
		}
		names[p.Name] = path
		found = append(found, p)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || skipDirs[name]) {
				return filepath.SkipDir
			}
			lang, err := build.Detect(path)
			var np *build.NotPluginError
			switch {
			case err == nil:
				pname := filepath.Base(path)
				if path == root {
					abs, _ := filepath.Abs(path)
					pname = filepath.Base(abs)
				}
				add(Plugin{Name: pname, Source: path, Lang: lang}, path)
				return filepath.SkipDir
			case errors.As(err, &np):
				skipped = append(skipped, Skipped{Path: path, Reason: np.Reason})
			}
			return nil
		}
		if strings.HasSuffix(name, ".wasm") {
			add(Plugin{Name: strings.TrimSuffix(name, ".wasm"), Wasm: path}, path)
		}
		return nil
	})
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, skipped, err
}
