package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkSDKSpan is the baseline of the host's tracing cost: one span
// recorded by the OpenTelemetry SDK alone, started, named, given seven
// attributes (as the host's process span has) and ended into the batching
// processor, whose exporter discards it.
//
//	go test -run '^$' -bench SDKSpan -benchmem ./host/tracing/
func BenchmarkSDKSpan(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("bench")
	attrs := []attribute.KeyValue{attribute.String("a", "b"), attribute.String("c", "d"), attribute.Int("e", 1),
		attribute.String("f", "g"), attribute.String("h", "i"), attribute.String("j", "k"), attribute.String("l", "m")}
	b.ReportAllocs()
	for range b.N {
		_, s := tr.Start(context.Background(), "process")
		s.SetName("process bench")
		s.SetAttributes(attrs...)
		s.End()
	}
}
