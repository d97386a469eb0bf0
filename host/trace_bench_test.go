package host_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// BenchmarkTracingOverhead measures what tracing costs a request: three
// hosts serve the same WAT echo, alone and behind the allow.wat policy:
// one without tracing, one tracing with a sampler that keeps no trace (the
// spans are made, not recorded; trace context still travels), and one
// that keeps every trace (each request's spans recorded and handed to the
// SDK's batching processor, whose exporter discards them: OTLP's encoding
// and network are left out). Bursts of requests alternate between them so
// that all three see the same machine; it reports each one's rate, its
// percentage of the untraced one's, and heap allocations per request.
//
//	go test -run '^$' -bench TracingOverhead -benchtime 20000x ./host/
func BenchmarkTracingOverhead(b *testing.B) {
	mk := func(tp trace.TracerProvider) *nats.Conn {
		h := trellistest.NewHost(b, func(o *host.Options) { o.TracerProvider = tp })
		h.Load("allow", trellistest.Wasm(b, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
		h.Load("echo", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"bench.echo"} })
		h.Load("chained", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) {
			s.Subjects = []string{"bench.chain"}
			s.Policies = []host.PolicyRef{{Name: "allow"}}
		})
		return h.Client()
	}
	sdk := func(s sdktrace.Sampler) trace.TracerProvider {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(s))
		b.Cleanup(func() { tp.Shutdown(context.Background()) })
		return tp
	}
	sides := []struct {
		name string
		nc   *nats.Conn
	}{
		{"off", mk(nil)},
		{"unsampled", mk(sdk(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))},
		{"sampled", mk(sdk(sdktrace.ParentBased(sdktrace.AlwaysSample())))},
	}
	payload := bytes.Repeat([]byte("x"), 100)
	var failed atomic.Int64
	run := func(nc *nats.Conn, subject string, n, g int) (time.Duration, uint64) {
		return countedBurst(nc, subject, payload, n, g, &failed)
	}
	for _, c := range []struct {
		name, subject string
		goroutines    int
	}{
		{"echo/seq", "bench.echo", 1},
		{"policy1/seq", "bench.chain", 1},
		{"echo/par16", "bench.echo", 16},
	} {
		b.Run(c.name, func(b *testing.B) {
			burst := 200 * c.goroutines
			for _, s := range sides {
				run(s.nc, c.subject, burst, c.goroutines) // warm up
			}
			took := make([]time.Duration, len(sides))
			allocs := make([]uint64, len(sides))
			b.ResetTimer()
			for done, i := 0, 0; done < b.N; done, i = done+burst, i+1 {
				n := min(burst, b.N-done)
				// Which goes first rotates, so that none always runs
				// after another's garbage.
				for j := range sides {
					k := (i + j) % len(sides)
					t, a := run(sides[k].nc, c.subject, n, c.goroutines)
					took[k] += t
					allocs[k] += a
				}
			}
			for k, s := range sides {
				b.ReportMetric(float64(b.N)/took[k].Seconds(), s.name+"-msgs/s")
				b.ReportMetric(float64(allocs[k])/float64(b.N), s.name+"-allocs/req")
				if k > 0 {
					b.ReportMetric(100*took[0].Seconds()/took[k].Seconds(), fmt.Sprintf("%s-%%-of-off", s.name))
				}
			}
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
		})
	}
}
