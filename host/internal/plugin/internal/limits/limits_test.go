package limits_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/limits"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/wasmbin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func leb(v uint64) []byte { return wasmbin.AppendULEB(nil, v) }

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func sec(id byte, payload ...[]byte) []byte {
	p := cat(payload...)
	return cat([]byte{id}, leb(uint64(len(p))), p)
}

func code(body ...[]byte) []byte {
	b := cat(body...)
	return sec(10, []byte{1}, leb(uint64(len(b))), b)
}

var (
	header = []byte("\x00asm\x01\x00\x00\x00")
	typ    = sec(1, []byte{1, 0x60, 0, 0}) // one type: [] -> []
	fn     = sec(3, []byte{1, 0})          // one function of type 0
	huge   = leb(0x0FFFFFFF)
)

// bombs are modules of a few bytes each that declare far more than they
// hold. Without Check, wazero asks for hundreds of megabytes to gigabytes
// for each, and for "locals" the process dies.
var bombs = []struct {
	name, says string
	wasm       []byte
}{
	{"imports", "imports, more than the limit of 100000", cat(header, sec(2, huge))},
	{"imports in few bytes", "imports cannot fit", cat(header, sec(2, leb(99_999), []byte{0}))},
	{"exports", "more than the limit of 100000", cat(header, sec(7, huge, []byte{0}))},
	{"globals", "globals cannot fit", cat(header, sec(6, leb(999_999), []byte{0x7F, 0, 0x41, 0, 0x0B}))},
	{"tables", "more than the limit", cat(header, sec(4, huge, []byte{0x70, 0, 1}))},
	{"function bodies", "more than the limit", cat(header, sec(10, huge, []byte{0}))},
	{"data segments", "more than the limit", cat(header, sec(11, huge, []byte{0}))},
	{"element segments", "element segments cannot fit", cat(header, sec(9, leb(9_999_999), []byte{0}))},
	{"parameters", "more than the limit of 1000", cat(header, sec(1, []byte{1, 0x60}, huge, []byte{0x7F}))},
	{"results", "results cannot fit", cat(header, sec(1, []byte{1, 0x60, 0}, leb(999), []byte{0x7F}))},
	{"locals", "more than the limit of 50000", cat(header, typ, fn, code([]byte{1}, leb(0xFFFFFFFF), []byte{0x7F, 0x0B}))},
	{"locals summed", "more than the limit of 50000", cat(header, typ, fn,
		code([]byte{2}, leb(30_000), []byte{0x7F}, leb(30_000), []byte{0x7F, 0x0B}))},
	{"body size", "function body size", cat(header, typ, fn, sec(10, []byte{1}, huge, []byte{0}))},
	{"data bytes", "data segment size", cat(header, sec(5, []byte{1, 0, 1}), sec(11, []byte{1, 0, 0x41, 0, 0x0B}, huge, []byte{1}))},
	{"element indexes", "element function indexes cannot fit", cat(header, sec(4, []byte{1, 0x70, 0, 1}),
		sec(9, []byte{1, 0, 0x41, 0, 0x0B}, leb(9_999_999), []byte{0}))},
	{"custom name", "custom section name length", cat(header, sec(0, huge, []byte{'a'}))},
	{"import name", "module name length", cat(header, sec(2, []byte{1}, huge))},
	{"export name", "export name length", cat(header, sec(7, []byte{1}, huge))},
	{"function names", "name subsection 1", cat(header, typ, fn, code([]byte{0, 0x0B}),
		sec(0, []byte{4, 'n', 'a', 'm', 'e'}, sec(1, huge)))},
	{"local names", "name subsection 2", cat(header, typ, fn, code([]byte{0, 0x0B}),
		sec(0, []byte{4, 'n', 'a', 'm', 'e'}, sec(2, []byte{1, 0}, huge)))},
	{"table size", "table of 134217728 elements", cat(header, sec(4, []byte{1, 0x70, 0}, leb(1<<27)))},
	{"tables in all", "tables of 10000002 elements or more in all", cat(header, sec(4, []byte{3},
		[]byte{0x70, 0}, leb(5_000_001), []byte{0x70, 0}, leb(5_000_001), []byte{0x70, 0, 1}))},
	{"section size", "type section at offset 8 declares 268435455 bytes, but the file ends 4 bytes later", cat(header, []byte{1}, huge, []byte{1, 2, 3, 4})},
	{"section id", "unknown section id 14", cat(header, sec(14))},
	{"trailing bytes", "1 bytes after the last entry", cat(header, sec(3, []byte{1, 0, 0}))},
}

func TestCheckRefusesBombs(t *testing.T) {
	for _, c := range bombs {
		t.Run(c.name, func(t *testing.T) {
			err := limits.Check(c.wasm)
			if !errors.Is(err, limits.ErrLimit) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Check = %v, want an error saying %q", err, c.says)
			}
		})
	}
}

// TestCheckAcceptsRealModules runs Check on modules built from this
// repository's WAT sources: each test plugin and fixture of the host.
func TestCheckAcceptsRealModules(t *testing.T) {
	var srcs []string
	for _, pattern := range []string{"../../testdata/*.wat", "../../../../testdata/*.wat", "../../../../../abi/*.wat"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, m...)
	}
	if len(srcs) < 15 {
		t.Fatalf("found only %d WAT sources", len(srcs))
	}
	rt := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(context.Background())
	for _, src := range srcs {
		wasm := trellistest.WasmBytes(t, src)
		if err := limits.Check(wasm); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// TestCheckAcceptsGoModule runs Check on a module of the Go toolchain,
// the largest kind: the echo example.
func TestCheckAcceptsGoModule(t *testing.T) {
	wasm := trellistest.WasmBytes(t, "../../../../../examples/echo")
	if err := limits.Check(wasm); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheck holds Check to its purpose: a module it lets through cannot
// make wazero's decoder allocate much more than the module's own size.
func FuzzCheck(f *testing.F) {
	for _, c := range bombs {
		f.Add(c.wasm)
	}
	if b, err := os.ReadFile(trellistest.Wasm(f, "../../../../../abi/echo.wat")); err == nil {
		f.Add(b)
	}
	rt := wazero.NewRuntimeWithConfig(context.Background(),
		wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2).WithMemoryLimitPages(16))
	f.Cleanup(func() { rt.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if len(wasm) < 8 || string(wasm[:8]) != string(header) || limits.Check(wasm) != nil {
			return
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		compiles(rt, wasm)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20+uint64(len(wasm))*512 {
			t.Fatalf("a %d-byte module passed Check and made the decoder allocate %d MiB", len(wasm), grew>>20)
		}
		// A module that compiles still compiles with its tables capped.
		capped, err := limits.CapTables(wasm)
		if err == nil && compiles(rt, wasm) && !compiles(rt, capped) {
			t.Fatal("the module compiles, but not with its tables capped")
		}
	})
}

func TestCapTables(t *testing.T) {
	table := func(n byte, tables ...[]byte) []byte {
		return cat(header, sec(4, []byte{n}, cat(tables...)), sec(3, []byte{0}))
	}
	ref := func(b ...byte) []byte { return append([]byte{0x70}, b...) }
	for _, c := range []struct {
		name    string
		in, out []byte
	}{
		{"no table", cat(header, typ, fn), cat(header, typ, fn)},
		{"no maximum", table(1, ref(0, 1)), table(1, ref(1, 1), leb(1+limits.TableGrowth))},
		{"maximum kept", table(1, ref(1, 1, 10)), table(1, ref(1, 1, 10))},
		{"maximum lowered", table(1, ref(1, 1), leb(1<<27)), table(1, ref(1, 1), leb(1+limits.TableGrowth))},
		{"shared by two", table(2, ref(0, 0), ref(0, 5)),
			table(2, ref(1, 0), leb(limits.TableGrowth/2), ref(1, 5), leb(5+limits.TableGrowth/2))},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := limits.CapTables(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(c.out) {
				t.Fatalf("CapTables = % x\nwant        % x", got, c.out)
			}
		})
	}
}

func compiles(rt wazero.Runtime, wasm []byte) (ok bool) {
	defer func() {
		if recover() != nil { // wazero panics on some malformed modules
			ok = false
		}
	}()
	m, err := rt.CompileModule(context.Background(), wasm)
	if err != nil {
		return false
	}
	m.Close(context.Background())
	return true
}

// BenchmarkCheck is the cost of Check on a Go module, the largest kind
// (2.7 MB); it runs once per load.
func BenchmarkCheck(b *testing.B) {
	wasm := trellistest.WasmBytes(b, "../../../../../examples/echo")
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if err := limits.Check(wasm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCapTables is the cost of CapTables on the Go echo, whose table
// has no maximum: one copy of the module.
func BenchmarkCapTables(b *testing.B) {
	wasm := trellistest.WasmBytes(b, "../../../../../examples/echo")
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := limits.CapTables(wasm); err != nil {
			b.Fatal(err)
		}
	}
}
