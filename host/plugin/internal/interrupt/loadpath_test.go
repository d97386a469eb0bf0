package interrupt_test

import (
	"testing"

	"github.com/trellis-mesh/trellis/host/plugin/internal/interrupt"
	"github.com/trellis-mesh/trellis/host/plugin/internal/limits"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// loadPathModules are a Go module (2.7 MB, the largest the repository
// builds) and a C one (a few KB, the common size).
var loadPathModules = []struct{ name, src string }{
	{"go-echo", "../../../../examples/echo"},
	{"c-echo", "../../../../examples/echo-c"},
}

// BenchmarkLoadPath is what a load does to a module before compiling it,
// as plugin.Load does it: parse and check it, cap its tables, and write it
// instrumented.
func BenchmarkLoadPath(b *testing.B) {
	for _, c := range loadPathModules {
		b.Run(c.name, func(b *testing.B) {
			wasm := trellistest.WasmBytes(b, c.src)
			b.SetBytes(int64(len(wasm)))
			b.ReportAllocs()
			for b.Loop() {
				m, err := limits.Parse(wasm)
				if err != nil {
					b.Fatal(err)
				}
				if err := limits.CapModuleTables(m); err != nil {
					b.Fatal(err)
				}
				if _, err := interrupt.InstrumentModule(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
