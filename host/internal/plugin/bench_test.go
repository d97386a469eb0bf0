package plugin_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// discard is an Outbox that drops what it is given, so the dispatch
// benchmark measures the host→guest→host path alone.
type discard struct{ n int }

func (d *discard) Publish(_ context.Context, _ string, _ map[string][]string, data []byte) error {
	d.n += len(data)
	return nil
}

func (d *discard) Request(context.Context, string, map[string][]string, []byte, time.Duration) (*plugin.Message, error) {
	return nil, plugin.ErrNoResponders
}

// BenchmarkWazeroFloor is the floor: one host→guest→host round trip in bare
// wazero, with the fast host function form (api.GoModuleFunc) and
// CallWithStack on a reused stack, as in DESIGN.md.
func BenchmarkWazeroFloor(b *testing.B) {
	ctx := context.Background()
	wasm := trellistest.WasmBytes(b, "testdata/floor.wat")
	for _, deadlines := range []bool{false, true} {
		name := "deadlines=off"
		if deadlines {
			name = "deadlines=on"
		}
		b.Run(name, func(b *testing.B) {
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(deadlines))
			defer rt.Close(ctx)
			var sum uint32
			_, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
				WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
					buf, _ := m.Memory().Read(api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
					sum += uint32(buf[0])
					stack[0] = uint64(len(buf))
				}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
				Export("touch").Instantiate(ctx)
			if err != nil {
				b.Fatal(err)
			}
			mod, err := rt.Instantiate(ctx, wasm)
			if err != nil {
				b.Fatal(err)
			}
			fn := mod.ExportedFunction("run")
			stack := make([]uint64, 1)
			callCtx := ctx
			if deadlines {
				var cancel context.CancelFunc
				callCtx, cancel = context.WithTimeout(ctx, time.Hour)
				defer cancel()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := fn.CallWithStack(callCtx, stack); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
		})
	}
}

// BenchmarkDispatch is the cost of handing one message to a plugin and
// taking its reply: pool acquire, trellis_handle, a read of the payload and
// a reply, pool release. No NATS.
func BenchmarkDispatch(b *testing.B) {
	cases := []struct {
		name, src string
		size      int
	}{
		{"wat-echo/100B", "../../../abi/echo.wat", 100},
		{"wat-echo/64KiB", "../../../abi/echo.wat", 64 << 10},
		{"go-echo/100B", "../../../examples/echo", 100},
		{"go-echo/64KiB", "../../../examples/echo", 64 << 10},
	}
	for _, c := range cases {
		for _, deadlines := range []bool{false, true} {
			name := c.name + "/deadlines=off"
			timeout := time.Duration(-1)
			if deadlines {
				name = c.name + "/deadlines=on"
				timeout = 0 // the default
			}
			b.Run(name, func(b *testing.B) {
				out := &discard{}
				p, err := plugin.Load(context.Background(), trellistest.WasmBytes(b, c.src),
					plugin.Options{Name: "bench", Outbox: out, Timeout: timeout, PoolSize: 1,
						Grants: plugin.Grants{Subscribe: []string{">"}}})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close(context.Background())
				msg := &plugin.Message{Subject: "echo", Reply: "_INBOX.x", Data: bytes.Repeat([]byte("x"), c.size)}
				ctx := context.Background()
				b.SetBytes(int64(c.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if res, err := p.Handle(ctx, msg); err != nil || !res.Replied {
						b.Fatal(res, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
				if out.n != b.N*c.size {
					b.Fatalf("replies carried %d bytes, want %d", out.n, b.N*c.size)
				}
			})
		}
	}
}
