package conformance_test

import (
	"bytes"
	"context"
	"sort"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// The benchmarks compare the languages on their echo plugin (the WAT
// reference for a language without examples):
//
//	BenchmarkLoad      ns/op: plugin.Load with the compiled code cached, that is
//	                   decoding, ABI checks and the first instance (_initialize,
//	                   trellis_init); plus wasm-bytes, the module's size, and
//	                   compile-ms, a cold wazero compile (the median of three,
//	                   measured once, since a Go module takes too long to
//	                   compile b.N times)
//	BenchmarkDispatch  ns/msg: one message in, its echo out, through the plugin
//	                   (no NATS), for a 100-byte and a 64 KiB payload; "native"
//	                   is the same copy done in Go, the floor
//
//	go test -run '^$' -bench . -benchtime 2000x ./host/internal/conformance/

// echoSource returns a language's echo plugin, or "".
func echoSource(l language) string {
	if l.echo != "" {
		return l.echo
	}
	if l.echoOnly {
		return l.conformance
	}
	return ""
}

// echoGrants lets an echo plugin subscribe to the subject it declares, as
// the operator's config must.
var echoGrants = plugin.Grants{Subscribe: []string{"echo"}}

// discard is an Outbox that counts and drops what it is given.
type discard struct{ n int }

func (d *discard) Publish(_ context.Context, _ string, _ map[string][]string, data []byte) error {
	d.n += len(data)
	return nil
}

func (d *discard) Request(context.Context, string, map[string][]string, []byte, time.Duration) (*plugin.Message, error) {
	return nil, plugin.ErrNoResponders
}

// compileTime is the median of three cold compiles of wasm, each in a
// fresh runtime configured as the host configures one (deadlines on).
func compileTime(b *testing.B, wasm []byte) time.Duration {
	ctx := context.Background()
	var times []time.Duration
	for i := 0; i < 3; i++ {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
		start := time.Now()
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		rt.Close(ctx)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times[1]
}

func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	for _, lang := range languages {
		src := echoSource(lang)
		if src == "" {
			continue
		}
		b.Run(lang.name, func(b *testing.B) {
			wasm := trellistest.WasmBytes(b, src)
			compile := compileTime(b, wasm)
			cache := wazero.NewCompilationCache()
			defer cache.Close(ctx)
			opts := plugin.Options{Name: "bench", Outbox: &discard{}, PoolSize: 1, Cache: cache, Grants: echoGrants}
			warm, err := plugin.Load(ctx, wasm, opts)
			if err != nil {
				b.Fatal(err)
			}
			warm.Close(ctx)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := plugin.Load(ctx, wasm, opts)
				if err != nil {
					b.Fatal(err)
				}
				p.Close(ctx)
			}
			b.ReportMetric(float64(len(wasm)), "wasm-bytes")
			b.ReportMetric(float64(compile.Microseconds())/1000, "compile-ms")
		})
	}
}

func BenchmarkDispatch(b *testing.B) {
	ctx := context.Background()
	sizes := []struct {
		name string
		n    int
	}{{"100B", 100}, {"64KiB", 64 << 10}}
	for _, size := range sizes {
		data := bytes.Repeat([]byte("x"), size.n)
		b.Run("native/"+size.name, func(b *testing.B) {
			out := &discard{}
			mem := make([]byte, len(data)) // the guest's memory, reused from message to message
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				copy(mem, data) // what every echo does: read the payload into its memory
				if err := out.Publish(ctx, "_INBOX.x", nil, mem); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
		})
	}
	for _, lang := range languages {
		src := echoSource(lang)
		if src == "" {
			continue
		}
		for _, size := range sizes {
			data := bytes.Repeat([]byte("x"), size.n)
			b.Run(lang.name+"/"+size.name, func(b *testing.B) {
				out := &discard{}
				p, err := plugin.Load(ctx, trellistest.WasmBytes(b, src),
					plugin.Options{Name: "bench", Outbox: out, PoolSize: 1, Grants: echoGrants})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close(ctx)
				msg := &plugin.Message{Subject: "echo", Reply: "_INBOX.x", Data: data}
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if res, err := p.Handle(ctx, msg); err != nil || !res.Replied {
						b.Fatal(res, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
				if out.n != b.N*size.n {
					b.Fatalf("replies carried %d bytes, want %d", out.n, b.N*size.n)
				}
			})
		}
	}
}

// BenchmarkDispatchInterleaved is BenchmarkDispatch for every language at
// once: each round sends a burst of 100 messages of 100 bytes to each
// language's echo in turn, so that the machine's drift, which on a shared
// machine is larger than the differences measured, falls on all of them
// alike. It reports each language's median burst, per message, and its
// ratio to the C echo's.
//
//	go test -run '^$' -bench DispatchInterleaved -benchtime 20000x ./host/conformance/
func BenchmarkDispatchInterleaved(b *testing.B) {
	ctx := context.Background()
	const burst = 100
	type guest struct {
		name   string
		p      *plugin.Plugin
		bursts []time.Duration
	}
	var guests []*guest
	for _, lang := range languages {
		src := echoSource(lang)
		if src == "" {
			continue
		}
		p, err := plugin.Load(ctx, trellistest.WasmBytes(b, src),
			plugin.Options{Name: "bench", Outbox: &discard{}, PoolSize: 1, Grants: echoGrants})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		guests = append(guests, &guest{name: lang.name, p: p, bursts: make([]time.Duration, 0, b.N/burst+1)})
	}
	msg := &plugin.Message{Subject: "echo", Reply: "_INBOX.x", Data: bytes.Repeat([]byte("x"), 100)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += burst {
		for _, g := range guests {
			start := time.Now()
			for j := 0; j < burst; j++ {
				if res, err := g.p.Handle(ctx, msg); err != nil || !res.Replied {
					b.Fatal(res, err)
				}
			}
			g.bursts = append(g.bursts, time.Since(start))
		}
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Nanoseconds()) / burst
	}
	var c float64
	for _, g := range guests {
		if g.name == "c" {
			c = median(g.bursts)
		}
	}
	for _, g := range guests {
		m := median(g.bursts)
		b.ReportMetric(m, g.name+"-ns/msg")
		if c > 0 && g.name != "c" {
			b.ReportMetric(m/c, g.name+"/c")
		}
	}
}
