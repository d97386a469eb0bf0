//go:build unix

package interrupt_test

import (
	"syscall"
	"testing"

	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/interrupt"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/limits"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// loadPathModules are a Go module (2.7 MB, the largest the repository
// builds) and a C one (a few KB, the common size).
var loadPathModules = []struct{ name, src string }{
	{"go-echo", "../../../../../examples/echo"},
	{"c-echo", "../../../../../examples/echo-c"},
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
			cpu := cpuTime()
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
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process has used, in ns: on a machine
// shared with other work, a steadier measure than the wall clock.
func cpuTime() int64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return u.Utime.Nano() + u.Stime.Nano()
}
