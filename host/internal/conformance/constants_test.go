package conformance_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/abi"
)

// The SDKs spell the ABI's numbers and names by hand, each in its own
// language (package abi is the Go spelling, ABI.md the specification). The
// behaviours above catch most slips, but not a status code no behaviour
// returns or a field no conformance plugin reads; so this test reads each
// SDK's source and compares every status, field, level, host function,
// export and the version with package abi.
//
// Why a check rather than generated files: each SDK is idiomatic code a
// newcomer reads (a C enum with comments, a Rust enum with match arms, an
// AssemblyScript namespace), the constants are few and change only with the
// ABI, and a generator would have to write four languages' syntax and the
// doc comments beside each value. A check keeps the sources as they are and
// names the file, the constant and both values when they differ.

// contract is what one SDK's source says: kind -> name -> value. The kinds:
// "status" (name -> code; Rust has it twice, from_code and code), "status
// text" (name -> description), "field", "level" (name -> number), "import"
// (host function -> import module), "export" (name -> ""), "version", and
// "header" (the header names a plugin reads or sets: name -> header name).
type contract map[string]map[string]string

func (c contract) set(kind, name, value string) {
	if c[kind] == nil {
		c[kind] = map[string]string{}
	}
	c[kind][name] = value
}

// sdkSource is one SDK: the files it is read from (relative to the
// repository root) and how to read the contract out of them.
type sdkSource struct {
	name    string
	files   []string
	extract func(src map[string]string) (contract, error)
	// want returns package abi's contract, as this SDK spells its names.
	want func() contract
	// wrong is a deliberate mistake in one of files (old -> new): the
	// check must catch it, or it is not reading what it claims to.
	wrong [3]string // file, old, new
}

var sdkSources = []sdkSource{
	{
		name:    "c",
		files:   []string{"sdk/c/trellis.h"},
		extract: extractC,
		want: func() contract {
			return abiContract(true, func(kind, name string) string { return name })
		},
		wrong: [3]string{"sdk/c/trellis.h", "TRELLIS_CONFLICT = 12", "TRELLIS_CONFLICT = 13"},
	},
	{
		name:    "rust",
		files:   []string{"sdk/rust/src/lib.rs", "sdk/rust/src/sys.rs"},
		extract: extractRust,
		want: func() contract {
			c := abiContract(false, func(kind, name string) string {
				if kind == "field" {
					return name
				}
				return camel(name)
			})
			c["status code()"] = c["status"]
			return c
		},
		wrong: [3]string{"sdk/rust/src/sys.rs", "pub const QUERY: i32 = 8;", "pub const QUERY: i32 = 9;"},
	},
	{
		name:    "as",
		files:   []string{"sdk/assemblyscript/assembly/index.ts", "sdk/assemblyscript/assembly/sys.ts"},
		extract: extractAS,
		want: func() contract {
			return abiContract(true, func(kind, name string) string { return name })
		},
		wrong: [3]string{"sdk/assemblyscript/assembly/index.ts", `HEADER_HTTP_STATUS: string = "Trellis-Http-Status"`, `HEADER_HTTP_STATUS: string = "Trellis-HTTP-Status"`},
	},
	{
		// The Go SDK takes every number from package abi, so only the names
		// in its //go:wasmimport and //go:wasmexport directives are copies.
		name:    "go",
		files:   []string{"sdk/go/imports_wasip1.go"},
		extract: extractGo,
		want: func() contract {
			c := abiContract(true, func(kind, name string) string { return name })
			// Header names too come from package abi.
			return contract{"import": c["import"], "export": c["export"]}
		},
		wrong: [3]string{"sdk/go/imports_wasip1.go", "//go:wasmimport trellis kv_cas", "//go:wasmimport trellis kv_compare_and_swap"},
	},
}

// abiContract is package abi's contract, with names as an SDK spells them:
// spell gets the kind and ABI.md's name ("NOT_FOUND", "RESULT_DATA",
// "WARN"). withOK says whether the SDK has a constant for status 0.
func abiContract(withOK bool, spell func(kind, name string) string) contract {
	c := contract{}
	for s := abi.Status(0); s.Valid(); s++ {
		if s == abi.StatusOK && !withOK {
			continue
		}
		c.set("status", spell("status", s.Name()), strconv.Itoa(int(s)))
		c.set("status text", spell("status", s.Name()), s.String())
	}
	for f := abi.Field(0); f.Valid(); f++ {
		c.set("field", spell("field", f.Name()), strconv.Itoa(int(f)))
	}
	for l := abi.LevelTrace; l.Valid(); l++ {
		c.set("level", spell("level", l.Name()), strconv.Itoa(int(l)))
	}
	for _, name := range abi.HostFuncs() {
		c.set("import", name, abi.ImportModule)
	}
	for _, name := range abi.GuestExports() {
		c.set("export", name, "")
	}
	c.set("version", "version", strconv.Itoa(abi.Version))
	for name, h := range map[string]string{"ERROR_CODE": abi.HeaderErrorCode, "ERROR": abi.HeaderError,
		"HTTP_STATUS": abi.HeaderHTTPStatus, "PARAM_PREFIX": abi.HeaderParamPrefix} {
		c.set("header", name, h)
	}
	return c
}

// camel turns ABI.md's NOT_FOUND into Rust's NotFound.
func camel(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "_") {
		if part != "" {
			b.WriteString(part[:1] + strings.ToLower(part[1:]))
		}
	}
	return b.String()
}

// block returns the text between the braces that follow the first marker
// in src, matching nested braces.
func block(src, marker string) (string, error) {
	i := strings.Index(src, marker)
	if i < 0 {
		return "", fmt.Errorf("%q not found", marker)
	}
	open := strings.IndexByte(src[i:], '{')
	if open < 0 {
		return "", fmt.Errorf("no { after %q", marker)
	}
	start := i + open + 1
	depth := 1
	for j := start; j < len(src); j++ {
		switch src[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return src[start:j], nil
			}
		}
	}
	return "", fmt.Errorf("no closing } after %q", marker)
}

// pairs adds every match of re in text to kind: the name is submatch
// nameAt, the value submatch valueAt (0 for "").
func (c contract) pairs(kind, text string, re *regexp.Regexp, nameAt, valueAt int) {
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		v := ""
		if valueAt > 0 {
			v = m[valueAt]
		}
		c.set(kind, m[nameAt], v)
	}
}

// within runs pairs on the block after marker, or records why it cannot.
func (c contract) within(errs *[]string, src, marker, kind string, re *regexp.Regexp, nameAt, valueAt int) {
	b, err := block(src, marker)
	if err != nil {
		*errs = append(*errs, kind+": "+err.Error())
		return
	}
	c.pairs(kind, b, re, nameAt, valueAt)
}

func joinErrs(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(errs, "; "))
}

func extractC(src map[string]string) (contract, error) {
	h := src["sdk/c/trellis.h"]
	c, errs := contract{}, []string(nil)
	c.within(&errs, h, "typedef enum trellis_status", "status", regexp.MustCompile(`\bTRELLIS_([A-Z_]+)\s*=\s*(-?\d+)`), 1, 2)
	c.within(&errs, h, "typedef enum trellis_field", "field", regexp.MustCompile(`\bTRELLIS_FIELD_([A-Z_]+)\s*=\s*(-?\d+)`), 1, 2)
	c.within(&errs, h, "typedef enum trellis_level", "level", regexp.MustCompile(`\bTRELLIS_LOG_([A-Z_]+)\s*=\s*(-?\d+)`), 1, 2)
	if names, err := block(h, "trellis_status_name(int32_t status)"); err != nil {
		errs = append(errs, "status text: "+err.Error())
	} else if arr, err := block(names, "names[] ="); err != nil {
		errs = append(errs, "status text: "+err.Error())
	} else {
		for i, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(arr, -1) {
			c.set("status text", abi.Status(i).Name(), m[1])
		}
	}
	module := regexp.MustCompile(`#define TRELLIS_IMPORT_\(name\) __attribute__\(\(import_module\("(\w+)"\)`).FindStringSubmatch(h)
	if module == nil {
		errs = append(errs, "import: no TRELLIS_IMPORT_ definition")
	} else {
		c.pairs("import", h, regexp.MustCompile(`TRELLIS_IMPORT_\("(\w+)"\)`), 1, 0)
		for name := range c["import"] {
			c["import"][name] = module[1]
		}
	}
	c.pairs("export", h, regexp.MustCompile(`TRELLIS_EXPORT\("(\w+)"\)`), 1, 0)
	c.pairs("version", h, regexp.MustCompile(`(?m)^#define TRELLIS_ABI_(VERSION) (\d+)`), 1, 2)
	c.pairs("header", h, regexp.MustCompile(`(?m)^#define TRELLIS_HEADER_([A-Z_]+) "([^"]*)"`), 1, 2)
	c.renameVersion()
	return c, joinErrs(errs)
}

func extractRust(src map[string]string) (contract, error) {
	lib, sys := src["sdk/rust/src/lib.rs"], src["sdk/rust/src/sys.rs"]
	c, errs := contract{}, []string(nil)
	c.within(&errs, lib, "pub fn from_code(", "status", regexp.MustCompile(`(\d+) => Status::(\w+)`), 2, 1)
	c.within(&errs, lib, "pub fn code(self)", "status code()", regexp.MustCompile(`Status::(\w+) => (\d+)`), 1, 2)
	c.within(&errs, lib, "pub fn name(self)", "status text", regexp.MustCompile(`Status::(\w+) => "([^"]*)"`), 1, 2)
	c.within(&errs, lib, "pub enum Level", "level", regexp.MustCompile(`(\w+) = (\d+),`), 1, 2)
	c.within(&errs, sys, "pub mod field", "field", regexp.MustCompile(`pub const ([A-Z_]+): i32 = (-?\d+);`), 1, 2)
	link := regexp.MustCompile(`#\[link\(wasm_import_module = "(\w+)"\)\]`).FindStringSubmatchIndex(sys)
	if link == nil {
		errs = append(errs, "import: no #[link(wasm_import_module)] block")
	} else {
		module := sys[link[2]:link[3]]
		b, err := block(sys[link[0]:], `extern "C"`)
		if err != nil {
			errs = append(errs, "import: "+err.Error())
		}
		for _, m := range regexp.MustCompile(`pub fn (\w+)\(`).FindAllStringSubmatch(b, -1) {
			c.set("import", m[1], module)
		}
	}
	c.pairs("export", lib, regexp.MustCompile(`pub extern "C" fn (trellis_\w+)\(`), 1, 0)
	c.pairs("version", lib, regexp.MustCompile(`pub const ABI_(VERSION): u32 = (\d+);`), 1, 2)
	c.pairs("header", lib, regexp.MustCompile(`(?m)^pub const HEADER_([A-Z_]+): &str = "([^"]*)";`), 1, 2)
	c.renameVersion()
	return c, joinErrs(errs)
}

func extractAS(src map[string]string) (contract, error) {
	index, sys := src["sdk/assemblyscript/assembly/index.ts"], src["sdk/assemblyscript/assembly/sys.ts"]
	c, errs := contract{}, []string(nil)
	c.within(&errs, index, "export enum Status", "status", regexp.MustCompile(`([A-Z_]+) = (-?\d+),`), 1, 2)
	c.within(&errs, index, "export function statusName(", "status text", regexp.MustCompile(`case Status\.([A-Z_]+): return "([^"]*)"`), 1, 2)
	c.within(&errs, index, "export enum Level", "level", regexp.MustCompile(`([A-Z_]+) = (-?\d+),`), 1, 2)
	c.within(&errs, sys, "export namespace field", "field", regexp.MustCompile(`export const ([A-Z_]+): i32 = (-?\d+);`), 1, 2)
	for _, m := range regexp.MustCompile(`@external\("(\w+)", "(\w+)"\)`).FindAllStringSubmatch(sys, -1) {
		c.set("import", m[2], m[1])
	}
	c.pairs("export", index, regexp.MustCompile(`(?m)^export function (trellis_\w+)\(`), 1, 0)
	c.pairs("version", index, regexp.MustCompile(`export const ABI_(VERSION): i32 = (\d+);`), 1, 2)
	c.pairs("header", index, regexp.MustCompile(`(?m)^export const HEADER_([A-Z_]+): string = "([^"]*)";`), 1, 2)
	c.renameVersion()
	return c, joinErrs(errs)
}

func extractGo(src map[string]string) (contract, error) {
	f := src["sdk/go/imports_wasip1.go"]
	c := contract{}
	for _, m := range regexp.MustCompile(`(?m)^//go:wasmimport (\w+) (\w+)$`).FindAllStringSubmatch(f, -1) {
		c.set("import", m[2], m[1])
	}
	c.pairs("export", f, regexp.MustCompile(`(?m)^//go:wasmexport (\w+)$`), 1, 0)
	return c, nil
}

// renameVersion files the version under the name abiContract uses.
func (c contract) renameVersion() {
	if v, ok := c["version"]["VERSION"]; ok {
		c["version"] = map[string]string{"version": v}
	}
}

// compare lists every difference between an SDK's contract and abi's.
func compare(got, want contract) []string {
	var diffs []string
	kinds := map[string]bool{}
	for k := range got {
		kinds[k] = true
	}
	for k := range want {
		kinds[k] = true
	}
	for kind := range kinds {
		g, w := got[kind], want[kind]
		for name, wv := range w {
			gv, ok := g[name]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s %s: missing (abi: %q)", kind, name, wv))
			case gv != wv:
				diffs = append(diffs, fmt.Sprintf("%s %s: %q, abi says %q", kind, name, gv, wv))
			}
		}
		for name, gv := range g {
			if _, ok := w[name]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s %s: %q is not in abi", kind, name, gv))
			}
		}
	}
	sort.Strings(diffs)
	return diffs
}

// readSDK reads an SDK's files from the repository.
func readSDK(t *testing.T, s sdkSource) map[string]string {
	t.Helper()
	src := map[string]string{}
	for _, f := range s.files {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		src[f] = string(b)
	}
	return src
}

// TestSDKConstantsMatchABI: every status code, status text, message field,
// log level, host function (and its import module), export, header name and
// the ABI version that an SDK spells by hand equals package abi's, and no
// SDK has one that abi lacks.
func TestSDKConstantsMatchABI(t *testing.T) {
	for _, s := range sdkSources {
		t.Run(s.name, func(t *testing.T) {
			got, err := s.extract(readSDK(t, s))
			if err != nil {
				t.Fatalf("reading %s: %v", strings.Join(s.files, ", "), err)
			}
			for _, d := range compare(got, s.want()) {
				t.Errorf("%s: %s", strings.Join(s.files, ", "), d)
			}
		})
	}
}

// TestSDKConstantsCheckCatchesAWrongValue: with one constant of each SDK
// made wrong, the check above reports it, so it reads what it says it does.
func TestSDKConstantsCheckCatchesAWrongValue(t *testing.T) {
	for _, s := range sdkSources {
		t.Run(s.name, func(t *testing.T) {
			src := readSDK(t, s)
			file, old, wrong := s.wrong[0], s.wrong[1], s.wrong[2]
			if strings.Count(src[file], old) != 1 {
				t.Fatalf("%s does not hold %q once", file, old)
			}
			src[file] = strings.Replace(src[file], old, wrong, 1)
			got, err := s.extract(src)
			if err != nil {
				t.Fatal(err)
			}
			if diffs := compare(got, s.want()); len(diffs) == 0 {
				t.Fatalf("%q in place of %q in %s went unnoticed", wrong, old, file)
			} else {
				t.Logf("caught: %s", strings.Join(diffs, "; "))
			}
		})
	}
}
