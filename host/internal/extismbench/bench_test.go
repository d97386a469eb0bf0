package extismbench_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// Where the two echoes' sources are, relative to this directory.
const (
	extismSource  = "echo.wat"
	trellisSource = "../../../abi/echo.wat"
)

var (
	buildOnce sync.Once
	built     map[string][]byte
	buildErr  error
)

// wasm returns the module built from the .wat file src, building both
// echoes once per test binary; it skips the test when wat2wasm is missing
// (and TRELLIS_REQUIRE_TOOLCHAINS is not set).
func wasm(tb testing.TB, src string) []byte {
	tb.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		trellistest.SkipWithoutToolchain(tb, "wat2wasm not found (apt-get install wabt)")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "extismbench")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		built = map[string][]byte{}
		for i, s := range []string{extismSource, trellisSource} {
			out := filepath.Join(dir, fmt.Sprintf("%d.wasm", i))
			if b, err := exec.Command(tool, s, "-o", out).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("wat2wasm %s: %v\n%s", s, err, b)
				return
			}
			if built[s], err = os.ReadFile(out); err != nil {
				buildErr = err
				return
			}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return built[src]
}

// echo is one engine's echo: call returns the reply to data.
type echo struct {
	call  func(data []byte) []byte
	close func()
}

// extismEcho instantiates the Extism echo, with a deadline per call of an
// hour (which makes Extism watch each call's context) or none.
func extismEcho(tb testing.TB, deadline bool) echo {
	ctx := context.Background()
	m := extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm(tb, extismSource)}}}
	if deadline {
		m.Timeout = uint64(time.Hour.Milliseconds())
	}
	compiled, err := extism.NewCompiledPlugin(ctx, m, extism.PluginConfig{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := compiled.Instance(ctx, extism.PluginInstanceConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return echo{
		call: func(data []byte) []byte {
			rc, out, err := p.Call("echo", data)
			if err != nil || rc != 0 {
				tb.Fatalf("extism echo: %d, %v", rc, err)
			}
			return out
		},
		close: func() { p.Close(ctx); compiled.Close(ctx) },
	}
}

// capture is a plugin.Outbox that keeps the last reply.
type capture struct{ last []byte }

func (c *capture) Publish(_ context.Context, _ string, _ map[string][]string, data []byte) error {
	c.last = data
	return nil
}

func (c *capture) Request(context.Context, string, map[string][]string, []byte, time.Duration) (*plugin.Message, error) {
	return nil, plugin.ErrNoResponders
}

// trellisEcho loads the Trellis echo in the host's plugin package, with its
// default deadline per call or none.
func trellisEcho(tb testing.TB, deadline bool) echo {
	ctx := context.Background()
	out := &capture{}
	opts := plugin.Options{Name: "echo", Outbox: out, PoolSize: 1,
		Grants: plugin.Grants{Subscribe: []string{"echo"}}}
	if !deadline {
		opts.Timeout = -1
	}
	p, err := plugin.Load(ctx, wasm(tb, trellisSource), opts)
	if err != nil {
		tb.Fatal(err)
	}
	msg := &plugin.Message{Subject: "echo", Reply: "_INBOX.bench"}
	return echo{
		call: func(data []byte) []byte {
			msg.Data = data
			if res, err := p.Handle(ctx, msg); err != nil || !res.Replied {
				tb.Fatalf("trellis echo: %+v, %v", res, err)
			}
			return out.last
		},
		close: func() { p.Close(ctx) },
	}
}

var engines = []struct {
	name string
	load func(testing.TB, bool) echo
}{{"extism", extismEcho}, {"trellis", trellisEcho}}

var sizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"64KiB", 64 << 10}}

func TestBothEchoTheirInput(t *testing.T) {
	for _, e := range engines {
		for _, deadline := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/deadline=%v", e.name, deadline), func(t *testing.T) {
				ec := e.load(t, deadline)
				defer ec.close()
				for _, n := range []int{0, 1, 7, 8, 100, 64 << 10} {
					in := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
					if out := ec.call(in); !bytes.Equal(out, in) {
						t.Fatalf("%d bytes in, %d out", n, len(out))
					}
				}
			})
		}
	}
}

// BenchmarkEcho calls each engine's echo with 100 B and 64 KiB, deadlines
// on and off: ns/op, B/op and allocs/op are one call's, host side included
// (Extism's Call copies the output out; Trellis hands the reply to its
// outbox). Sub-benchmark ratio alternates bursts of 10 calls to each and
// reports extism/trellis, the ratio of their median bursts.
func BenchmarkEcho(b *testing.B) {
	for _, deadline := range []bool{true, false} {
		for _, size := range sizes {
			data := bytes.Repeat([]byte("x"), size.n)
			suffix := fmt.Sprintf("deadline=%s/%s", map[bool]string{true: "on", false: "off"}[deadline], size.name)
			for _, e := range engines {
				b.Run(e.name+"/"+suffix, func(b *testing.B) {
					ec := e.load(b, deadline)
					defer ec.close()
					ec.call(data)
					b.SetBytes(int64(size.n))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						ec.call(data)
					}
				})
			}
			b.Run("ratio/"+suffix, func(b *testing.B) {
				ex, tr := extismEcho(b, deadline), trellisEcho(b, deadline)
				defer ex.close()
				defer tr.close()
				const burst = 10
				var te, tt []time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i += burst {
					start := time.Now()
					for j := 0; j < burst; j++ {
						ex.call(data)
					}
					mid := time.Now()
					for j := 0; j < burst; j++ {
						tr.call(data)
					}
					te, tt = append(te, mid.Sub(start)), append(tt, time.Since(mid))
				}
				b.StopTimer()
				b.ReportMetric(median(te)/burst, "extism-ns/op")
				b.ReportMetric(median(tt)/burst, "trellis-ns/op")
				b.ReportMetric(median(te)/median(tt), "extism/trellis")
			})
		}
	}
}

// median returns the median of d, in nanoseconds.
func median(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Nanoseconds())
}
