package interrupt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/interrupt"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/limits"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// wat builds a fixture with the tail-call proposal on, which the host's
// default build of .wat files leaves off.
func wat(t testing.TB, name string) []byte {
	t.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		trellistest.SkipWithoutToolchain(t, "wat2wasm not found (apt-get install wabt)")
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	if b, err := exec.Command(tool, "--enable-tail-call", "--debug-names", filepath.Join("testdata", name+".wat"), "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errStopped = errors.New("stopped by the test")

// guest is an instantiated module and the host side of its check import.
type guest struct {
	api.Module
	stop   atomic.Bool  // the check traps once it is set
	checks atomic.Int64 // calls of the check
}

// newRuntime is a runtime with no context watching at all: only the check
// import can stop a guest.
func newRuntime(t testing.TB) (wazero.Runtime, *guest) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesTailCall))
	t.Cleanup(func() { rt.Close(ctx) })
	g := &guest{}
	_, err := rt.NewHostModuleBuilder(interrupt.ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
			g.checks.Add(1)
			if g.stop.Load() {
				panic(errStopped)
			}
			stack[0] = interrupt.Interval
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(interrupt.ImportName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rt, g
}

func instantiate(t *testing.T, wasm []byte) *guest {
	t.Helper()
	ctx := context.Background()
	rt, g := newRuntime(t)
	if _, err := rt.InstantiateWithConfig(ctx, wat(t, "env"), wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	g.Module = mod
	return g
}

// start calls fn on a goroutine of its own; the channel gets its error.
func (g *guest) start(fn string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := g.ExportedFunction(fn).Call(context.Background())
		done <- err
	}()
	return done
}

func call(t *testing.T, mod api.Module, fn string, args ...uint64) uint64 {
	t.Helper()
	res, err := mod.ExportedFunction(fn).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s%v: %v", fn, args, err)
	}
	return res[0]
}

func TestInstrumentKeepsResults(t *testing.T) {
	orig := wat(t, "loops")
	out, err := interrupt.Instrument(orig)
	if err != nil {
		t.Fatal(err)
	}
	plain, inst := instantiate(t, orig), instantiate(t, out)
	for _, c := range []struct {
		fn  string
		arg uint64
	}{{"sum", 0}, {"sum", 1000}, {"fib", 1}, {"fib", 30}, {"grid", 1}, {"grid", 50}, {"fill", 1}, {"fill", 3000}, {"indirect", 7}} {
		want, got := call(t, plain.Module, c.fn, c.arg), call(t, inst.Module, c.fn, c.arg)
		if got != want {
			t.Errorf("%s(%d) = %d instrumented, %d as written", c.fn, c.arg, got, want)
		}
	}
	// The module's own global and the imported one keep their indexes.
	if got := call(t, inst.Module, "calls"); got != 2 {
		t.Errorf("calls = %d, want 2", got)
	}
	if got := call(t, inst.Module, "sum", 3); got != 106 {
		t.Errorf("sum(3) = %d, want 106 (base 100 + 6)", got)
	}
	// The loops above ran about 5,000 iterations in all: the check ran
	// about once per Interval of them.
	if n := inst.checks.Load(); n < 3 || n > 10 {
		t.Errorf("the check ran %d times, want about 5", n)
	}
	if n := plain.checks.Load(); n != 0 {
		t.Errorf("the module as written called the check %d times", n)
	}
}

func TestInstrumentKeepsNames(t *testing.T) {
	out, err := interrupt.Instrument(wat(t, "loops"))
	if err != nil {
		t.Fatal(err)
	}
	g := instantiate(t, out)
	g.stop.Store(true)
	_, err = g.ExportedFunction("spin").Call(context.Background())
	// The trap's stack trace names the function by its name-section name,
	// which must still be the right function after renumbering.
	if err == nil || !strings.Contains(err.Error(), ".spin_forever()") {
		t.Fatalf("trap %v, want a stack trace naming spin_forever", err)
	}
}

func TestInterruptStopsGuest(t *testing.T) {
	out, err := interrupt.Instrument(wat(t, "loops"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"spin", "tailspin"} {
		t.Run(fn, func(t *testing.T) {
			g := instantiate(t, out)
			done := g.start(fn)
			select {
			case err := <-done:
				t.Fatalf("%s returned before the interrupt: %v", fn, err)
			case <-time.After(50 * time.Millisecond):
			}
			g.stop.Store(true)
			select {
			case err := <-done:
				if !errors.Is(err, errStopped) {
					t.Fatalf("%s ended with %v, want the check's error", fn, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s still running 10 s after the interrupt", fn)
			}
		})
	}
}

// A guest in an endless loop still lets the Go runtime stop the world: a
// garbage collection finishes while it spins.
func TestSpinningGuestLetsGCRun(t *testing.T) {
	out, err := interrupt.Instrument(wat(t, "loops"))
	if err != nil {
		t.Fatal(err)
	}
	g := instantiate(t, out)
	done := g.start("spin")
	defer func() {
		g.stop.Store(true)
		<-done
	}()
	time.Sleep(20 * time.Millisecond)
	gc := make(chan struct{})
	go func() {
		runtimeGC()
		close(gc)
	}()
	select {
	case <-gc:
	case <-time.After(10 * time.Second):
		t.Fatal("a garbage collection did not finish in 10 s while the guest spun")
	}
}

// Modules without an import, a global or an export section get what they
// need, in the order the binary format requires.
func TestInstrumentAddsSections(t *testing.T) {
	// (module (func (export "f") (loop))) with type, function, export and code sections.
	mod := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type: () -> ()
		3, 2, 1, 0, // function 0 has type 0
		7, 5, 1, 1, 'f', 0, 0, // export "f" = function 0
		10, 7, 1, 5, 0, 0x03, 0x40, 0x0B, 0x0B, // code: (loop) end
	}
	out, err := interrupt.Instrument(mod)
	if err != nil {
		t.Fatal(err)
	}
	rt, g := newRuntime(t)
	m, err := rt.Instantiate(context.Background(), out)
	if err != nil {
		t.Fatalf("instrumented module does not load: %v", err)
	}
	if _, err := m.ExportedFunction("f").Call(context.Background()); err != nil {
		t.Fatalf("f: %v", err)
	}
	if g.checks.Load() != 0 {
		t.Fatal("one loop iteration called the check")
	}
}

func TestInstrumentRefuses(t *testing.T) {
	clash := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0,
		2, byte(len(interrupt.ImportModule) + 6), 1, byte(len(interrupt.ImportModule))}
	clash = append(clash, interrupt.ImportModule...)
	clash = append(clash, 1, 'x', 0, 0, 3, 2, 1, 0, 10, 4, 1, 2, 0, 0x0B)
	for _, c := range []struct {
		name        string
		wasm        []byte
		unsupported bool
	}{
		{"not wasm", []byte("hello, world"), false},
		{"truncated", wat(t, "loops")[:200], false},
		{"import clash", clash, true},
		// global.set 0 in a module with no globals: invalid as written, but
		// it would write the budget once instrumented.
		{"global out of range", []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
			1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, 8, 1, 6, 0, 0x41, 0, 0x24, 0, 0x0B}, false},
		// (block (type 1)) with one type: the check's type once instrumented.
		{"type out of range", []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
			1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, 7, 1, 5, 0, 0x02, 0x01, 0x0B, 0x0B}, false},
		{"unknown opcode", []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
			1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, 5, 1, 3, 0, 0xF0, 0x0B}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := interrupt.Instrument(c.wasm)
			if err == nil {
				t.Fatal("instrumented; want an error")
			}
			if got := errors.Is(err, interrupt.ErrUnsupported); got != c.unsupported {
				t.Fatalf("error %q: unsupported = %v, want %v", err, got, c.unsupported)
			}
		})
	}
}

// Every module the repository builds, in every language, can be instrumented
// and still compiles.
func TestInstrumentRealModules(t *testing.T) {
	for _, src := range []string{
		"../../../../../abi/echo.wat",
		"../../../../../examples/echo",
		"../../../../../examples/echo-c",
		"../../../../../examples/echo-rust",
		"../../../../../examples/echo-as",
	} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			orig := trellistest.WasmBytes(t, src)
			out, err := interrupt.Instrument(orig)
			if err != nil {
				t.Fatal(err)
			}
			rt, _ := newRuntime(t)
			cm, err := rt.CompileModule(context.Background(), out)
			if err != nil {
				t.Fatalf("instrumented module does not compile: %v", err)
			}
			if _, ok := cm.ExportedFunctions()["trellis_handle"]; !ok {
				t.Fatal("trellis_handle lost")
			}
		})
	}
}

func FuzzInstrument(f *testing.F) {
	f.Add(wat(f, "loops"))
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, 7, 1, 5, 0, 0x03, 0x40, 0x0B, 0x0B})
	f.Fuzz(func(t *testing.T, wasm []byte) {
		// The host refuses these before anything else sees them; wazero
		// would try to allocate what they declare (see package limits).
		if limits.Check(wasm) != nil {
			return
		}
		out, err := interrupt.Instrument(wasm)
		if err != nil {
			return
		}
		// What wazero accepts as written it must accept instrumented, and
		// what it refuses as written it must refuse instrumented: the
		// indexes the rewrite adds must not make a bad module good.
		rt, _ := newRuntime(t)
		before, after := compile(rt, wasm), compile(rt, out)
		switch {
		case before == nil && after != nil:
			t.Fatalf("the module compiles as written but not instrumented: %v", after)
		case before != nil && after == nil:
			t.Fatalf("the module compiles instrumented but not as written: %v", before)
		}
	})
}

// compile is CompileModule with wazero's panics on some malformed modules
// turned into errors.
func compile(rt wazero.Runtime, wasm []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wazero panicked: %v", r)
		}
	}()
	_, err = rt.CompileModule(context.Background(), wasm)
	return err
}

func runtimeGC() { runtime.GC() }

// BenchmarkTightLoop is the cost of making a loop stoppable: sum(1..1e6) in
// a tight loop, as written (no way to stop it), with the interrupt checks,
// and with wazero's own WithCloseOnContextDone and a deadline. Sub-benchmark
// "interleaved" calls the loop as written and instrumented in turn, b.N
// times each, and reports both and their ratio: on a shared machine whose
// speed drifts, that ratio is steadier than one of two separate runs.
func BenchmarkTightLoop(b *testing.B) {
	orig := wat(b, "loops")
	inst, err := interrupt.Instrument(orig)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1_000_000
	for _, c := range []struct {
		name       string
		wasm       []byte
		closeOnCtx bool
	}{
		{"as-written", orig, false},
		{"interrupt-checks", inst, false},
		{"wazero-close-on-done", orig, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			sum := loopFunc(b, c.wasm, c.closeOnCtx)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sum(n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/iteration")
		})
	}
	b.Run("interleaved", func(b *testing.B) {
		plain, checked := loopFunc(b, orig, false), loopFunc(b, inst, false)
		var tp, tc time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			plain(n)
			mid := time.Now()
			checked(n)
			tp, tc = tp+mid.Sub(start), tc+time.Since(mid)
		}
		b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N)/n, "as-written-ns/iteration")
		b.ReportMetric(float64(tc.Nanoseconds())/float64(b.N)/n, "checked-ns/iteration")
		b.ReportMetric(float64(tc)/float64(tp), "ratio")
	})
}

// loopFunc instantiates the loops fixture wasm (as written or instrumented)
// in a runtime of its own and returns its sum function, called with a
// deadline an hour away.
func loopFunc(b *testing.B, wasm []byte, closeOnCtx bool) func(n uint64) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesTailCall).
		WithCloseOnContextDone(closeOnCtx))
	b.Cleanup(func() { rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder(interrupt.ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
			if err := ctx.Err(); err != nil {
				panic(err)
			}
			stack[0] = interrupt.Interval
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(interrupt.ImportName).Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rt.InstantiateWithConfig(ctx, wat(b, "env"), wazero.NewModuleConfig().WithName("env")); err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		b.Fatal(err)
	}
	callCtx, cancel := context.WithTimeout(ctx, time.Hour)
	b.Cleanup(cancel)
	fn := mod.ExportedFunction("sum")
	stack := []uint64{0}
	return func(n uint64) {
		stack[0] = n
		if err := fn.CallWithStack(callCtx, stack); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstrument is the load-time cost of the rewrite, for the Go echo
// (2.7 MB, the largest module the repository builds).
func BenchmarkInstrument(b *testing.B) {
	wasm := trellistest.WasmBytes(b, "../../../../../examples/echo")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := interrupt.Instrument(wasm); err != nil {
			b.Fatal(err)
		}
	}
}
