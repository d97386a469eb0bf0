package host

import (
	"context"
	"errors"
	"strings"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// The host calls that leave a plugin (publish, request and the kv_*
// functions) are timed (trellis_host_call_duration_seconds), KV
// operations counted by result (trellis_kv_operations_total), and each
// traced as a child of the call that made it, with its trace context in
// the headers of what it sends. A host with neither metrics nor tracing
// gives plugins its outbox and KV store unwrapped.

// hostCallOutbox times and traces one plugin's publishes and requests on
// their way to the host's outbox.
type hostCallOutbox struct {
	next plugin.Outbox
	name string
	m    *metrics.HostCalls
	t    *tracer
}

// instrumentOutbox wraps out, plugin name's outbox, in what times and
// traces its calls; out itself when the host does neither.
func (h *Host) instrumentOutbox(name string, out plugin.Outbox) plugin.Outbox {
	m := h.metrics.HostCalls(name)
	if m == nil && h.tracer == nil {
		return out
	}
	return &hostCallOutbox{next: out, name: name, m: m, t: h.tracer}
}

// isReply reports a publish that is a reply: only a reply reaches an
// inbox, since a plugin may not publish to one. A reply ends its
// requester's span and is neither timed nor traced as a publish.
func isReply(subject string) bool { return strings.HasPrefix(subject, "_INBOX.") }

func (o *hostCallOutbox) Publish(ctx context.Context, subject string, hdr map[string][]string, data []byte) error {
	if isReply(subject) {
		return o.next.Publish(ctx, subject, hdr, data)
	}
	var span trace.Span
	if o.t != nil {
		var sctx context.Context
		sctx, span = o.t.startSend(ctx, o.name, subject, false, len(data))
		hdr = withTrace(sctx, hdr)
	}
	start := deadline.Now()
	err := o.next.Publish(ctx, subject, hdr, data)
	o.m.Done(metrics.CallPublish, deadline.Now()-start)
	endErr(span, err)
	return err
}

func (o *hostCallOutbox) Request(ctx context.Context, subject string, hdr map[string][]string, data []byte, timeout time.Duration) (*plugin.Message, error) {
	var span trace.Span
	if o.t != nil {
		var sctx context.Context
		sctx, span = o.t.startSend(ctx, o.name, subject, true, len(data))
		hdr = withTrace(sctx, hdr)
	}
	start := deadline.Now()
	resp, err := o.next.Request(ctx, subject, hdr, data, timeout)
	o.m.Done(metrics.CallRequest, deadline.Now()-start)
	endErr(span, err)
	return resp, err
}

// hostCallKV times, counts and traces one plugin's KV operations.
type hostCallKV struct {
	next plugin.KV
	name string
	ns   string
	m    *metrics.HostCalls
	t    *tracer
}

// instrumentKV wraps kv, plugin name's view of KV namespace ns, in what
// times, counts and traces its operations; kv itself when the host does
// neither.
func (h *Host) instrumentKV(name, ns string, kv plugin.KV) plugin.KV {
	m := h.metrics.HostCalls(name)
	if m == nil && h.tracer == nil {
		return kv
	}
	return &hostCallKV{next: kv, name: name, ns: ns, m: m, t: h.tracer}
}

// begin starts call c's span, if the host traces, and its clock.
func (k *hostCallKV) begin(ctx context.Context, c metrics.HostCall) (trace.Span, time.Duration) {
	var span trace.Span
	if k.t != nil {
		op := c.KVOp()
		_, span, _ = k.t.span(ctx, "kv", trace.SpanKindClient)
		if span.IsRecording() {
			span.SetName("kv " + op)
			span.SetAttributes(natsSystem, semconv.DBOperationName(op), attrKVNamespace.String(k.ns),
				attrPlugin.String(k.name))
		}
	}
	return span, deadline.Now()
}

// end counts call c, begun at start, by how err ends it, and ends its span.
func (k *hostCallKV) end(c metrics.HostCall, span trace.Span, start time.Duration, err error) {
	r := kvResult(err)
	k.m.KV(c, r, deadline.Now()-start)
	if r == metrics.KVNotFound || r == metrics.KVConflict {
		// An answer, not a failure of the store.
		err = nil
	}
	endErr(span, err)
}

// kvResult classifies a KV operation's error.
func kvResult(err error) metrics.KVResult {
	switch {
	case err == nil:
		return metrics.KVOK
	case errors.Is(err, plugin.ErrKVNotFound):
		return metrics.KVNotFound
	case errors.Is(err, plugin.ErrKVConflict):
		return metrics.KVConflict
	}
	return metrics.KVError
}

func (k *hostCallKV) Get(ctx context.Context, key string) ([]byte, error) {
	span, start := k.begin(ctx, metrics.CallKVGet)
	v, err := k.next.Get(ctx, key)
	k.end(metrics.CallKVGet, span, start, err)
	return v, err
}

func (k *hostCallKV) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	span, start := k.begin(ctx, metrics.CallKVSet)
	err := k.next.Set(ctx, key, value, ttl)
	k.end(metrics.CallKVSet, span, start, err)
	return err
}

func (k *hostCallKV) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	span, start := k.begin(ctx, metrics.CallKVIncr)
	v, err := k.next.Incr(ctx, key, delta, ttl)
	k.end(metrics.CallKVIncr, span, start, err)
	return v, err
}

func (k *hostCallKV) Delete(ctx context.Context, key string) error {
	span, start := k.begin(ctx, metrics.CallKVDelete)
	err := k.next.Delete(ctx, key)
	k.end(metrics.CallKVDelete, span, start, err)
	return err
}

func (k *hostCallKV) CAS(ctx context.Context, key string, expected, value []byte, ttl time.Duration) error {
	span, start := k.begin(ctx, metrics.CallKVCAS)
	err := k.next.CAS(ctx, key, expected, value, ttl)
	k.end(metrics.CallKVCAS, span, start, err)
	return err
}
