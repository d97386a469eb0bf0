package tracing

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/abi"
)

// FuzzExtract: trace context from a client, however malformed, is either
// a valid remote span context within the limits or ignored, and writing
// it back gives one traceparent of the W3C form.
//
//	go test -run '^$' -fuzz FuzzExtract ./host/tracing/
func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=b,c=d")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "=")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", strings.Repeat("k=v,", 40))
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"+strings.Repeat("0", 300), "x")
	f.Fuzz(func(t *testing.T, parent, state string) {
		hdr := map[string][]string{"Traceparent": {parent}, "tracestate": {state}}
		ctx := Extract(context.Background(), hdr)
		sc := trace.SpanContextFromContext(ctx)
		if sc.IsValid() {
			if len(parent) > abi.MaxTraceparentLen || !sc.IsRemote() {
				t.Fatalf("followed %q: %v", parent, sc)
			}
			if len(state) > abi.MaxTracestateLen && sc.TraceState().Len() > 0 {
				t.Fatalf("kept a tracestate of %d bytes", len(state))
			}
		}
		out := map[string][]string{"TRACEPARENT": {"stale"}}
		Inject(ctx, out)
		if _, stale := out["TRACEPARENT"]; stale {
			t.Fatal("a stale spelling survived Inject")
		}
		if vs := out[abi.HeaderTraceparent]; sc.IsValid() != (len(vs) == 1) || (len(vs) == 1 && len(vs[0]) != 55) {
			t.Fatalf("injected %q from %v", vs, sc)
		}
	})
}
