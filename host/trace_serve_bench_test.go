package host

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
)

// BenchmarkServePathTracing is BenchmarkServePath (a request through the
// allow policy to the WAT echo, the host's own part of the path) with
// tracing off, on with a sampler that keeps nothing, and on keeping every
// trace (spans handed to the SDK's batching processor, whose exporter
// discards them), each in its own host in one run: what tracing adds to
// the host's work per message, without NATS's.
//
//	go test -run '^$' -bench ServePathTracing -benchmem ./host/
func BenchmarkServePathTracing(b *testing.B) {
	wasm, err := watEcho()
	if err != nil {
		b.Skip(err)
	}
	allow, err := watAllow()
	if err != nil {
		b.Skip(err)
	}
	sdk := func(s sdktrace.Sampler) trace.TracerProvider {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(s))
		b.Cleanup(func() { tp.Shutdown(context.Background()) })
		return tp
	}
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
	}{
		{"off", nil},
		{"unsampled", sdk(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))},
		{"sampled", sdk(sdktrace.ParentBased(sdktrace.AlwaysSample()))},
	} {
		b.Run(c.name, func(b *testing.B) {
			h, err := New(context.Background(), Options{Bus: bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true},
				Logger: hclog.NewNullLogger(), TracerProvider: c.tp})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			if err := h.Load(context.Background(), Spec{Name: "allow", Wasm: allow, Policy: true}); err != nil {
				b.Fatal(err)
			}
			if err := h.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Subjects: []string{"bench.serve"},
				Policies: []PolicyRef{{Name: "allow"}}}); err != nil {
				b.Fatal(err)
			}
			h.mu.Lock()
			bd := h.bindings["echo"]
			h.mu.Unlock()
			w := new(worker)
			data := bytes.Repeat([]byte("x"), 100)
			b.ReportAllocs()
			// The subscription's subject's metrics, as subscriber.onMsg has them.
			sj := bd.metrics.Subject("bench.serve")
			b.ResetTimer()
			for range b.N {
				// A new message each time, as from NATS: tracing writes
				// its traceparent into the message's headers.
				m := &nats.Msg{Subject: "bench.serve", Reply: "_INBOX.nobody", Data: data}
				now := deadline.Now()
				bd.serve(arrival{m: m, at: now, sj: sj}, w, now)
			}
		})
	}
}
