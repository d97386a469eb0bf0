// Package sdk carries the guest SDKs' sources inside the trellis binary, so
// that `trellis new` can give a plugin written anywhere the SDK it builds
// with: no clone of this repository, no published package, no network.
//
// The files are those a plugin's build reads (and each SDK's README), by
// the slash path they have in this repository: "sdk/c/trellis.h",
// "sdk/rust/src/lib.rs", "sdk/assemblyscript/index.ts", "sdk/go/trellis.go",
// "abi/abi.go". A plugin that copies them keeps the tree's layout, so
// relative references between them (sdk/go's go.mod to ../../abi) still hold.
//
// Why this package sits here, one level above the SDKs: go:embed reaches only
// files inside the embedding package's directory and module. The C, Rust and
// AssemblyScript SDKs are plain directories of the main module under sdk/,
// so they are embedded as they are. The Go SDK and abi are modules of their
// own (so that a Go plugin's module graph holds nothing of the host); neither
// go:embed nor a module zip takes files across a module boundary, so their
// files travel as one generated text archive, gomod.txtar, which
// TestGoArchiveIsCurrent keeps equal to the sources (`go generate ./sdk`
// rewrites it).
package sdk

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"golang.org/x/tools/txtar"
)

//go:generate go test . -run TestGoArchiveIsCurrent -update

//go:embed c/*.h c/README.md
//go:embed rust/Cargo.toml rust/README.md rust/src
//go:embed assemblyscript/package.json assemblyscript/index.ts assemblyscript/assembly assemblyscript/README.md
//go:embed gomod.txtar
var embedded embed.FS

// GoArchive is the name of the archive holding the Go SDK's and abi's
// files, in this package's directory.
const GoArchive = "gomod.txtar"

// roots are the directories of each language's SDK, as paths in the tree.
var roots = map[string][]string{
	"go":   {"sdk/go", "abi"},
	"rust": {"sdk/rust"},
	"c":    {"sdk/c"},
	"as":   {"sdk/assemblyscript"},
}

// Langs are the languages Files knows: "go", "rust", "c", "as".
func Langs() []string {
	out := make([]string, 0, len(roots))
	for l := range roots {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// Dirs returns the directories Files(lang) fills, by slash path in the tree
// ("sdk/rust"; for Go "sdk/go" and "abi"), or nil for an unknown lang.
func Dirs(lang string) []string { return roots[lang] }

// Files returns the files of lang's SDK (one of Langs) by slash path in the
// tree. It copies nothing out of the binary but the map: the byte slices are
// the embedded files' own and must not be changed. It fails only for an
// unknown lang, or a damaged archive, which TestFiles rules out.
func Files(lang string) (map[string][]byte, error) {
	dirs, ok := roots[lang]
	if !ok {
		return nil, fmt.Errorf("no SDK for language %q (want one of %s)", lang, strings.Join(Langs(), ", "))
	}
	out := map[string][]byte{}
	if lang == "go" {
		b, err := embedded.ReadFile(GoArchive)
		if err != nil {
			return nil, err
		}
		for _, f := range txtar.Parse(b).Files {
			out[f.Name] = f.Data
		}
		return out, nil
	}
	for _, dir := range dirs {
		sub := strings.TrimPrefix(dir, "sdk/")
		err := fs.WalkDir(embedded, sub, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := embedded.ReadFile(p)
			if err != nil {
				return err
			}
			out[path.Join("sdk", p)] = b
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
