package host

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/tracing"
)

// This file is the host's OpenTelemetry tracing (Options.TracerProvider).
// A message's hops each get a span, named and labelled by OpenTelemetry's
// semantic conventions for HTTP and messaging:
//
//	POST /orders                 server    the HTTP ingress request
//	├─ policy auth               internal  each policy call
//	└─ request orders.create     client    the ingress's request on the bus
//	   └─ process orders.create  consumer  a handler's binding serving it
//	      ├─ policy ratelimit    internal
//	      └─ handle orders       internal  each handler call (each retry)
//	         ├─ publish orders.created  producer  a plugin's publish
//	         │  └─ process orders.created ...     the next handler
//	         ├─ request prices.get      client    a plugin's request
//	         └─ kv get                  client    a plugin's KV call
//
// Trace context crosses the bus in the W3C headers (abi.HeaderTraceparent,
// abi.HeaderTracestate): read from what arrives (a client's HTTP request,
// a NATS message), written on what the host sends, so a chain of handlers
// is one trace, across hosts. Plugins see traceparent naming the span of
// their hop, and their log lines carry its trace id.
//
// With tracing off (no provider, or a no-op one) the host holds a nil
// *tracer, and a message's path costs one nil check per hook.

// tracerName is the instrumentation scope of the host's spans.
const tracerName = "github.com/trellis-mesh/trellis/host"

// natsSystem is messaging.system for NATS (not an enum member of the
// conventions yet, which allow other values).
var natsSystem = semconv.MessagingSystemKey.String("nats")

// Attributes of the host's own, outside the conventions.
const (
	attrPlugin         = attribute.Key("trellis.plugin")
	attrPluginVersion  = attribute.Key("trellis.plugin.version")
	attrPolicy         = attribute.Key("trellis.policy")
	attrPolicyDecision = attribute.Key("trellis.policy.decision")
	attrStatus         = attribute.Key("trellis.status")
	attrFault          = attribute.Key("trellis.fault")
	attrKVNamespace    = attribute.Key("trellis.kv.namespace")
)

// tracer makes the host's spans; a nil *tracer traces nothing.
type tracer struct {
	t trace.Tracer
}

// newTracer returns the tracer of tp, or nil when tp traces nothing: nil
// or OpenTelemetry's no-op provider.
func newTracer(tp trace.TracerProvider) *tracer {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return &tracer{t: tp.Tracer(tracerName)}
}

// spanContext is a context carrying a span that keeps its parent's
// AfterFunc. The parent may be a message's reusable deadline (package
// deadline) or a plugin call's context: contexts derived from them follow
// them through AfterFunc rather than a goroutine that would read them after
// the message has moved on, and a plain context.WithValue would hide it.
type spanContext struct {
	context.Context // parent with the span (what the tracer's Start returns)
	parent          context.Context
}

// AfterFunc runs f when the context ends, as the parent arranges it.
func (c *spanContext) AfterFunc(f func()) (stop func() bool) { return context.AfterFunc(c.parent, f) }

// start begins a span named name, child of ctx's span, and returns ctx
// with it. Attributes are the caller's to add when span.IsRecording(),
// so that an unsampled message pays for no attribute.
//
// Under a span of this host's that is not sampled, start makes no span: it
// returns ctx as it is and a span that records nothing, so the trace
// context passed on names the unsampled ancestor. A child of a span not
// sampled is not sampled either under the samplers the host configures
// (parent-based; see package tracing), and no one sees the span IDs of an
// unsampled trace, so what is skipped is only its cost: the span, its ID,
// two contexts. A remote parent (a message's traceparent) always gets its
// span, which is where the host's sampler decides.
func (t *tracer) start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	sctx, span, made := t.span(ctx, name, kind)
	if !made {
		return ctx, span
	}
	return &spanContext{Context: sctx, parent: ctx}, span
}

// span is start for a caller that passes no context on (a KV call's
// span): the tracer's context as it returns it, without the wrapper that
// keeps the parent's AfterFunc; made is false when no span was made.
func (t *tracer) span(ctx context.Context, name string, kind trace.SpanKind) (_ context.Context, _ trace.Span, made bool) {
	if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
		if sc := parent.SpanContext(); sc.IsValid() && !sc.IsRemote() && !sc.IsSampled() {
			return ctx, unrecorded, false
		}
	}
	sctx, span := t.t.Start(ctx, name, kindOptions[kind]...)
	return sctx, span, true
}

// unrecorded is the span start returns in place of a child of a span not
// sampled: it records nothing and its End does nothing.
var unrecorded trace.Span = noop.Span{}

// kindOptions holds, for each span kind, the options that start a span of
// that kind: made once, where a call with trace.WithSpanKind would make
// them per span.
var kindOptions = func() (o [trace.SpanKindConsumer + 1][]trace.SpanStartOption) {
	for k := range o {
		o[k] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKind(k))}
	}
	return o
}()

// withTrace returns hdr (made if nil) with the trace context of ctx's span
// in place of any it had.
func withTrace(ctx context.Context, hdr map[string][]string) map[string][]string {
	if hdr == nil {
		hdr = make(map[string][]string, 2)
	}
	tracing.Inject(ctx, hdr)
	return hdr
}

// startProcess begins the consumer span of a handler's binding serving m,
// continuing the trace m's headers carry (or starting one).
func (t *tracer) startProcess(parent context.Context, b *binding, snap *snapshot, m *nats.Msg) (context.Context, trace.Span) {
	ctx := tracing.Extract(parent, m.Header)
	pattern := subscriptionOf(m, snap)
	ctx, span := t.start(ctx, "process", trace.SpanKindConsumer)
	if span.IsRecording() {
		span.SetName("process " + pattern)
		span.SetAttributes(natsSystem,
			semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(m.Subject), semconv.MessagingDestinationTemplate(pattern),
			semconv.MessagingConsumerGroupName(snap.queue), semconv.MessagingMessageBodySize(len(m.Data)),
			attrPlugin.String(b.name), attrPluginVersion.String(snap.version))
	}
	return ctx, span
}

// subscriptionOf is the subscription m arrived through: its subject (a
// pattern), or for a stored event the first of snap's subjects it matches.
func subscriptionOf(m *nats.Msg, snap *snapshot) string {
	if m.Sub != nil {
		return m.Sub.Subject
	}
	for _, s := range snap.subjects {
		if abi.SubjectMatches(s, m.Subject) {
			return s
		}
	}
	return m.Subject
}

// endOutcome ends span with how a message's handling ended: an error
// status for a failure (500 and up, or a fault), the status and fault
// kind as attributes.
func endOutcome(span trace.Span, out outcome) {
	if span.IsRecording() {
		if out.status != 0 {
			span.SetAttributes(attrStatus.Int(out.status), semconv.ErrorTypeKey.String(strconv.Itoa(out.status)))
		}
		if out.fault != 0 {
			span.SetAttributes(attrFault.String(plugin.FaultKind(out.fault - 1).String()))
		}
		if out.status >= 500 {
			span.SetStatus(codes.Error, out.text())
		}
	}
	span.End()
}

// startPolicy begins the span of one policy call (phase "" or "response").
func (t *tracer) startPolicy(ctx context.Context, name, version, subject, phase string) (context.Context, trace.Span) {
	ctx, span := t.start(ctx, "policy", trace.SpanKindInternal)
	if span.IsRecording() {
		if phase != "" {
			span.SetName("policy " + name + " " + phase)
		} else {
			span.SetName("policy " + name)
		}
		span.SetAttributes(attrPolicy.String(name), attrPluginVersion.String(version), semconv.MessagingDestinationName(subject))
	}
	return ctx, span
}

// endPolicy ends a policy's span with what it decided.
func endPolicy(span trace.Span, decision string, err error) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		span.SetAttributes(attrPolicyDecision.String(decision))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// policySpan starts a policy call's span when the host traces; else it
// returns ctx and nil, for endPolicy to ignore.
func (h *Host) policySpan(ctx context.Context, name string, p *plugin.Plugin, subject, phase string) (context.Context, trace.Span) {
	if h.tracer == nil {
		return ctx, nil
	}
	return h.tracer.startPolicy(ctx, name, p.VersionHash(), subject, phase)
}

// handle runs m through the binding (see serveMsg), in a consumer span
// when the host traces.
func (b *binding) handle(a arrival, snap *snapshot, m *nats.Msg, durable bool, w *worker) (outcome, map[string][]string, bool) {
	t := b.h.tracer
	if t == nil {
		return b.serveMsg(b.h.life, a, snap, m, durable, w)
	}
	ctx, span := t.startProcess(b.h.life, b, snap, m)
	out, resp, failed := b.serveMsg(ctx, a, snap, m, durable, w)
	endOutcome(span, out)
	return out, resp, failed
}

// call runs the handler version p once (see callOnce) in a span, for a
// host that traces. It reads the clock for the call's start: the span's
// start comes between the message's and the call's.
func (b *binding) call(ctx context.Context, p *plugin.Plugin, msg *plugin.Message) (outcome, bool) {
	ctx, span := b.h.tracer.start(ctx, "handle", trace.SpanKindInternal)
	if span.IsRecording() {
		span.SetName("handle " + b.name)
		span.SetAttributes(attrPlugin.String(b.name), attrPluginVersion.String(p.VersionHash()),
			semconv.MessagingDestinationName(msg.Subject))
	}
	out, failed := b.callOnce(ctx, p, msg, 0)
	endOutcome(span, out)
	return out, failed
}

// startSend begins the span of a message the host sends on the bus: a
// producer span "publish SUBJECT" for an event, a client span "request
// SUBJECT" for a request, whose answer it waits for.
func (t *tracer) startSend(ctx context.Context, plugin, subject string, request bool, size int) (context.Context, trace.Span) {
	op, kind := "publish", trace.SpanKindProducer
	if request {
		op, kind = "request", trace.SpanKindClient
	}
	ctx, span := t.start(ctx, op, kind)
	if span.IsRecording() {
		span.SetName(op + " " + subject)
		span.SetAttributes(natsSystem, semconv.MessagingOperationName(op), semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(subject), semconv.MessagingMessageBodySize(size))
		if plugin != "" {
			span.SetAttributes(attrPlugin.String(plugin))
		}
	}
	return ctx, span
}

// endErr ends span, with an error status if err is not nil.
func endErr(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// forward sends msg on to subject (see sendOn), in a span whose trace
// context msg carries, when the host traces.
func (h *Host) forward(ctx context.Context, subject string, msg *plugin.Message, expectReply bool) outcome {
	if h.tracer == nil {
		return h.sendOn(ctx, subject, msg, expectReply)
	}
	sctx, span := h.tracer.startSend(ctx, "", subject, expectReply, len(msg.Data))
	// Before the identity seal, which covers every header.
	msg.Header = withTrace(sctx, msg.Header)
	out := h.sendOn(ctx, subject, msg, expectReply)
	endOutcome(span, out)
	return out
}

// publishSpan starts the span of an event the ingress publishes and
// writes its trace context into msg's headers; the function it returns
// ends it. Without tracing both do nothing.
func (h *Host) publishSpan(ctx context.Context, msg *plugin.Message) func(error) {
	if h.tracer == nil {
		return endNothing
	}
	sctx, span := h.tracer.startSend(ctx, "", msg.Subject, false, len(msg.Data))
	msg.Header = withTrace(sctx, msg.Header)
	return func(err error) { endErr(span, err) }
}

func endNothing(error) {}

// traceIngress begins the server span of an HTTP request on route pattern,
// continuing the trace its headers carry; it returns the writer and
// request to serve with (the request's context holds the span) and what
// ends the span. Without tracing it returns w and r as they are.
func (h *Host) traceIngress(w http.ResponseWriter, r *http.Request, pattern string) (http.ResponseWriter, *http.Request, func()) {
	if h.tracer == nil {
		return w, r, endIngressNothing
	}
	ctx := tracing.Extract(r.Context(), r.Header)
	method, route, hasMethod := strings.Cut(pattern, " ")
	if !hasMethod {
		route = pattern
		method = r.Method
	}
	ctx, span := h.tracer.start(ctx, "HTTP", trace.SpanKindServer)
	if span.IsRecording() {
		span.SetName(method + " " + route)
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(route),
			semconv.URLPath(r.URL.Path), semconv.NetworkPeerAddress(r.RemoteAddr))
		if r.TLS != nil {
			span.SetAttributes(semconv.URLScheme("https"))
		} else {
			span.SetAttributes(semconv.URLScheme("http"))
		}
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	return sw, r.WithContext(ctx), func() {
		if span.IsRecording() {
			span.SetAttributes(semconv.HTTPResponseStatusCode(sw.code))
			if sw.code >= 500 {
				span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(sw.code)))
				span.SetStatus(codes.Error, http.StatusText(sw.code))
			}
		}
		span.End()
	}
}

func endIngressNothing() {}

// traceRequest replaces the trace context of an HTTP request's message
// with that of the ingress's span, so that its policies, and the handler
// the ingress sends it to, see this hop as their parent.
func (h *Host) traceRequest(ctx context.Context, msg *plugin.Message) {
	if h.tracer != nil {
		msg.Header = withTrace(ctx, msg.Header)
	}
}

// logTrace appends the trace id of ctx's span, when it has one, to a log
// line's key-value pairs: a host line about a message then finds its
// trace, as a plugin's own lines do.
func logTrace(ctx context.Context, kv ...any) []any {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return append(kv, "trace_id", sc.TraceID().String())
	}
	return kv
}
