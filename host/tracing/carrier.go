package tracing

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/trellis-mesh/trellis/abi"
)

// HeaderCarrier carries W3C trace context in a NATS or HTTP header map
// (nats.Header and http.Header are both map[string][]string). NATS
// header names are case-sensitive and HTTP's canonical, so Get finds
// traceparent in any case, and Set writes the lower-case names of
// abi.HeaderTraceparent and abi.HeaderTracestate after removing every
// other spelling, so a message never carries two. Get ignores a value
// over its abi limit (MaxTraceparentLen, MaxTracestateLen).
type HeaderCarrier map[string][]string

// Get returns the first value of key, in any case.
func (c HeaderCarrier) Get(key string) string {
	vs, ok := c[key]
	if !ok {
		for k, v := range c {
			if strings.EqualFold(k, key) {
				vs, ok = v, true
				break
			}
		}
	}
	if !ok || len(vs) == 0 {
		return ""
	}
	v := vs[0]
	switch {
	case strings.EqualFold(key, abi.HeaderTraceparent) && len(v) > abi.MaxTraceparentLen,
		strings.EqualFold(key, abi.HeaderTracestate) && len(v) > abi.MaxTracestateLen:
		return ""
	}
	return v
}

// Set replaces every spelling of key with key = value.
func (c HeaderCarrier) Set(key, value string) {
	Remove(c, key)
	c[key] = []string{value}
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Remove deletes every spelling of name from h.
func Remove(h map[string][]string, name string) {
	for k := range h {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

// Propagator is the W3C trace context propagator the host reads and
// writes headers with.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Extract returns ctx with the remote span context hdr carries, if any.
func Extract(ctx context.Context, hdr map[string][]string) context.Context {
	if len(hdr) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, HeaderCarrier(hdr))
}

// Inject writes the span context of ctx into hdr, replacing what trace
// context hdr had; when ctx has no valid span it only removes that.
// hdr must not be nil.
func Inject(ctx context.Context, hdr map[string][]string) {
	Remove(hdr, abi.HeaderTraceparent)
	Remove(hdr, abi.HeaderTracestate)
	Propagator.Inject(ctx, HeaderCarrier(hdr))
}
