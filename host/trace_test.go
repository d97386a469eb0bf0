package host_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/tracing"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// The client's trace the tests continue: its trace id, and the span id of
// the client's span, the parent of the host's first.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// tracedHost is a host tracing into an in-memory exporter (the SDK's
// own, synchronous, so a span is there once it has ended), serving the
// relay chain: HTTP POST /relay, through the allow policy, to relay.wat
// on trace.relay, which publishes to trace.next, served by echo.wat.
func tracedHost(t *testing.T, sampler sdktrace.Sampler) (*trellistest.Host, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.TracerProvider = tp
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{
			{Pattern: "POST /relay", Subject: "trace.relay", Policies: []host.PolicyRef{{Name: "allow"}}},
		}}
	})
	loadRelay(t, h)
	return h, exp
}

func loadRelay(t *testing.T, h *trellistest.Host) {
	t.Helper()
	h.Load("allow", trellistest.Wasm(t, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
	h.Load("relay", trellistest.Wasm(t, "testdata/relay.wat"), func(s *host.Spec) {
		s.Subjects = []string{"trace.relay"}
		s.Grants.Publish = []string{"trace.next"}
	})
	h.Load("echo", trellistest.Wasm(t, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"trace.next"} })
}

// spansOf waits for a span of each name given and returns the spans ended
// by then, by name (the last of each name). Spans of one request end in no
// fixed order across the bus (a publish's receiver may finish before its
// sender), so a test names every span it reads.
func spansOf(t *testing.T, exp *tracetest.InMemoryExporter, names ...string) map[string]tracetest.SpanStub {
	t.Helper()
	byName := map[string]tracetest.SpanStub{}
	trellistest.WaitFor(t, 10*time.Second, fmt.Sprintf("spans %q", names), func() bool {
		for _, s := range exp.GetSpans() {
			byName[s.Name] = s
		}
		for _, n := range names {
			if _, ok := byName[n]; !ok {
				return false
			}
		}
		return true
	})
	return byName
}

// parentOf checks that child's parent is parent, in one trace.
func parentOf(t *testing.T, spans map[string]tracetest.SpanStub, child, parent string) {
	t.Helper()
	c, ok := spans[child]
	if !ok {
		t.Fatalf("no span %q among %v", child, names(spans))
	}
	p, ok := spans[parent]
	if !ok {
		t.Fatalf("no span %q among %v", parent, names(spans))
	}
	if c.Parent.SpanID() != p.SpanContext.SpanID() || c.SpanContext.TraceID() != p.SpanContext.TraceID() {
		t.Errorf("span %q has parent %s in trace %s; want %q (%s in %s)", child, c.Parent.SpanID(), c.SpanContext.TraceID(),
			parent, p.SpanContext.SpanID(), p.SpanContext.TraceID())
	}
}

func names(spans map[string]tracetest.SpanStub) []string {
	var out []string
	for n := range spans {
		out = append(out, n)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// One HTTP request with a client's traceparent is one trace: the ingress
// continues the client's span, its policy and its request on the bus are
// its children, the handler's binding, call, KV read and publish follow,
// and the next handler's work hangs under that publish. The plugin's log
// line names the trace.
func TestTraceFollowsOneRequestThroughTheChain(t *testing.T) {
	h, exp := tracedHost(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	resp, body := trellistest.HTTP(t, nil, "POST", "http://"+h.HTTPAddr()+"/relay", "hello", "Traceparent", clientParent)
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("POST /relay: %d %q", resp.StatusCode, body)
	}
	spans := spansOf(t, exp, "POST /relay", "policy allow", "request trace.relay", "process trace.relay", "handle relay",
		"kv get", "publish trace.next", "process trace.next", "handle echo")
	ingress := spans["POST /relay"]
	if ingress.SpanKind != trace.SpanKindServer || ingress.Parent.SpanID().String() != clientSpanID ||
		ingress.SpanContext.TraceID().String() != clientTraceID || !ingress.Parent.IsRemote() {
		t.Fatalf("ingress span %+v: want a server span, child of the client's", ingress)
	}
	if attr(ingress, "http.route") != "/relay" || attr(ingress, "http.response.status_code") != "200" {
		t.Errorf("ingress attributes %v", ingress.Attributes)
	}
	parentOf(t, spans, "policy allow", "POST /relay")
	parentOf(t, spans, "request trace.relay", "POST /relay")
	parentOf(t, spans, "process trace.relay", "request trace.relay")
	parentOf(t, spans, "handle relay", "process trace.relay")
	parentOf(t, spans, "kv get", "handle relay")
	parentOf(t, spans, "publish trace.next", "handle relay")
	parentOf(t, spans, "process trace.next", "publish trace.next")
	parentOf(t, spans, "handle echo", "process trace.next")
	pub := spans["publish trace.next"]
	if pub.SpanKind != trace.SpanKindProducer || attr(pub, "messaging.system") != "nats" ||
		attr(pub, "messaging.destination.name") != "trace.next" || attr(pub, "trellis.plugin") != "relay" {
		t.Errorf("publish span: kind %v, attributes %v", pub.SpanKind, pub.Attributes)
	}
	proc := spans["process trace.next"]
	if proc.SpanKind != trace.SpanKindConsumer || attr(proc, "messaging.consumer.group.name") != "echo" {
		t.Errorf("process span: kind %v, attributes %v", proc.SpanKind, proc.Attributes)
	}
	if kv := spans["kv get"]; kv.Status.Code != 0 || attr(kv, "db.operation.name") != "get" {
		t.Errorf("kv span (a key not found is an answer, not an error): %+v", kv)
	}
	if !h.WaitLog(5*time.Second, "relaying", "trace_id="+clientTraceID) {
		t.Fatalf("the plugin's log line does not carry the trace id:\n%s", h.Logs())
	}
}

// relayTraced sends a request to the relay chain over NATS, carrying
// traceparent and a tracestate, and returns what relay published on.
func relayTraced(t *testing.T, h *trellistest.Host, traceparent string) *nats.Msg {
	t.Helper()
	nc := h.Client()
	next, err := nc.SubscribeSync("trace.next")
	if err != nil {
		t.Fatal(err)
	}
	defer next.Unsubscribe()
	nc.Flush()
	m := nats.NewMsg("trace.relay")
	m.Header.Set(abi.HeaderTraceparent, traceparent)
	m.Header.Set(abi.HeaderTracestate, "vendor=value")
	m.Data = []byte("hi")
	if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := next.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A NATS message that carries a traceparent continues that trace; what the
// handler publishes carries the trace on, naming the publish's span, so a
// plain NATS subscriber can follow it too.
func TestTraceContinuesFromNATSHeaders(t *testing.T) {
	h, exp := tracedHost(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	got := relayTraced(t, h, clientParent)
	spans := spansOf(t, exp, "process trace.relay", "publish trace.next")
	proc := spans["process trace.relay"]
	if proc.SpanContext.TraceID().String() != clientTraceID || proc.Parent.SpanID().String() != clientSpanID {
		t.Fatalf("process span in trace %s under %s; want the sender's %s under %s",
			proc.SpanContext.TraceID(), proc.Parent.SpanID(), clientTraceID, clientSpanID)
	}
	pub := spans["publish trace.next"]
	want := "00-" + clientTraceID + "-" + pub.SpanContext.SpanID().String() + "-01"
	if tp := got.Header.Get(abi.HeaderTraceparent); tp != want {
		t.Fatalf("published traceparent %q, want %q (the publish's span)", tp, want)
	}
	if ts := got.Header.Get(abi.HeaderTracestate); ts != "vendor=value" {
		t.Fatalf("tracestate %q was not passed on", ts)
	}
}

// Trace context past its limits is not trusted: a traceparent over
// abi.MaxTraceparentLen starts a new trace, a tracestate over
// abi.MaxTracestateLen is dropped; neither breaks the message.
func TestTraceContextOverLimitsIgnored(t *testing.T) {
	h, exp := tracedHost(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	nc := h.Client()
	next, _ := nc.SubscribeSync("trace.next")
	nc.Flush()
	m := nats.NewMsg("trace.relay")
	m.Header.Set(abi.HeaderTraceparent, clientParent+strings.Repeat("-0", abi.MaxTraceparentLen))
	m.Data = []byte("long parent")
	if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	spans := spansOf(t, exp, "process trace.relay")
	if proc := spans["process trace.relay"]; proc.SpanContext.TraceID().String() == clientTraceID || proc.Parent.IsValid() {
		t.Fatalf("an oversized traceparent was followed: %+v", proc)
	}
	next.NextMsg(5 * time.Second)

	m = nats.NewMsg("trace.relay")
	m.Header.Set(abi.HeaderTraceparent, clientParent)
	m.Header.Set(abi.HeaderTracestate, "k="+strings.Repeat("v", abi.MaxTracestateLen))
	m.Data = []byte("long state")
	if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := next.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Header.Get(abi.HeaderTraceparent), clientTraceID) || got.Header.Get(abi.HeaderTracestate) != "" {
		t.Fatalf("headers %v: want the trace followed and the oversized tracestate dropped", got.Header)
	}
}

// An unsampled trace exports nothing, yet its context still travels, so
// that the next hop does not start a trace of its own.
func TestTraceUnsampledStillPropagates(t *testing.T) {
	h, exp := tracedHost(t, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))
	nc := h.Client()
	next, _ := nc.SubscribeSync("trace.next")
	nc.Flush()
	if _, err := nc.Request("trace.relay", []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := next.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tp := got.Header.Get(abi.HeaderTraceparent)
	if len(tp) != 55 || !strings.HasSuffix(tp, "-00") {
		t.Fatalf("traceparent %q: want one with the sampled flag off", tp)
	}
	h.Request("trace.relay", []byte("y"), 5*time.Second)
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans exported from unsampled traces", n)
	}
}

// countingSampler is a sampler that counts the spans it is asked about.
type countingSampler struct {
	sdktrace.Sampler
	n atomic.Int64
}

func (c *countingSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	c.n.Add(1)
	return c.Sampler.ShouldSample(p)
}

// A trace that is not sampled costs one span per hop: the one where the
// host's sampler decides (a message's process span). Its children (the
// handler's call, a plugin's publish) would not be sampled either, so the
// host makes none, and the trace context it passes on is the hop's, in
// the sender's trace, with the sampled flag still off.
func TestTraceUnsampledMakesOneSpanPerHop(t *testing.T) {
	s := &countingSampler{Sampler: sdktrace.ParentBased(sdktrace.AlwaysSample())}
	h, exp := tracedHost(t, s)
	got := relayTraced(t, h, "00-"+clientTraceID+"-"+clientSpanID+"-00")
	tp := got.Header.Get(abi.HeaderTraceparent)
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != clientTraceID || parts[2] == clientSpanID || parts[3] != "00" {
		t.Fatalf("published traceparent %q: want the sender's trace %s, a span of the host's, not sampled", tp, clientTraceID)
	}
	if ts := got.Header.Get(abi.HeaderTracestate); ts != "vendor=value" {
		t.Fatalf("tracestate %q was not passed on", ts)
	}
	// relay's process span, then echo's (for trace.next) once it is served.
	for end := time.Now().Add(5 * time.Second); s.n.Load() < 2 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for any span too many
	if n := s.n.Load(); n != 2 {
		t.Fatalf("the sampler was asked about %d spans for two hops of an unsampled trace, want 2", n)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans exported from an unsampled trace", n)
	}
}

// Without a tracer provider, or with the no-op one package tracing gives
// when nothing is configured, the host adds no trace context: a plugin's
// publishes carry only what the plugin sets.
func TestTraceOffAddsNothing(t *testing.T) {
	off, err := tracing.New(context.Background(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tp := range map[string]trace.TracerProvider{"nil": nil, "no-op": off.TracerProvider()} {
		t.Run(name, func(t *testing.T) {
			h := trellistest.NewHost(t, func(o *host.Options) { o.TracerProvider = tp })
			loadRelay(t, h)
			nc := h.Client()
			next, _ := nc.SubscribeSync("trace.next")
			nc.Flush()
			if _, err := nc.Request("trace.relay", []byte("x"), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			got, err := next.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got.Header.Get(abi.HeaderTraceparent) != "" {
				t.Fatalf("headers %v: a host without tracing added trace context", got.Header)
			}
			m := nats.NewMsg("trace.relay")
			m.Header.Set(abi.HeaderTraceparent, clientParent)
			if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if got, err = next.NextMsg(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if got.Header.Get(abi.HeaderTraceparent) != "" {
				t.Fatalf("headers %v: a host without tracing passed trace context to a publish", got.Header)
			}
			if h.WaitLog(time.Second, "trace_id=") {
				t.Fatal("a log line names a trace with tracing off")
			}
		})
	}
}

// A chain that crosses hosts is one trace: host A (embedding the bus)
// takes the HTTP request and runs relay, whose publish to trace.next is
// served by echo on host B (attached by URL), which exports to its own
// exporter. B's spans continue A's trace under A's publish span, as two
// processes exporting to one backend would show it.
func TestTraceCrossesHosts(t *testing.T) {
	sampled := sdktrace.ParentBased(sdktrace.AlwaysSample())
	expA, expB := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSyncer(expA), sdktrace.WithSampler(sampled))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithSyncer(expB), sdktrace.WithSampler(sampled))
	t.Cleanup(func() { tpA.Shutdown(context.Background()); tpB.Shutdown(context.Background()) })
	a := trellistest.NewHost(t, func(o *host.Options) {
		o.TracerProvider = tpA
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{
			{Pattern: "POST /relay", Subject: "trace.relay", Policies: []host.PolicyRef{{Name: "allow"}}},
		}}
	})
	b := trellistest.NewHost(t, func(o *host.Options) {
		o.TracerProvider = tpB
		o.Bus = bus.Options{URL: a.ClientURL()}
	})
	a.Load("allow", trellistest.Wasm(t, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
	a.Load("relay", trellistest.Wasm(t, "testdata/relay.wat"), func(s *host.Spec) {
		s.Subjects = []string{"trace.relay"}
		s.Grants.Publish = []string{"trace.next"}
	})
	b.Load("echo", trellistest.Wasm(t, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"trace.next"} })

	resp, body := trellistest.HTTP(t, nil, "POST", "http://"+a.HTTPAddr()+"/relay", "across", "Traceparent", clientParent)
	if resp.StatusCode != 200 || body != "across" {
		t.Fatalf("POST /relay: %d %q", resp.StatusCode, body)
	}
	onA := spansOf(t, expA, "publish trace.next")
	onB := spansOf(t, expB, "process trace.next", "handle echo")
	if _, ok := onA["handle echo"]; ok {
		t.Fatal("host A exported echo's span: echo runs on host B only")
	}
	pub, proc := onA["publish trace.next"], onB["process trace.next"]
	if proc.SpanContext.TraceID().String() != clientTraceID || pub.SpanContext.TraceID().String() != clientTraceID {
		t.Fatalf("traces %s (A's publish) and %s (B's process), want both %s", pub.SpanContext.TraceID(), proc.SpanContext.TraceID(), clientTraceID)
	}
	if proc.Parent.SpanID() != pub.SpanContext.SpanID() || !proc.Parent.IsRemote() {
		t.Fatalf("B's process span under %s (remote %v), want A's publish span %s", proc.Parent.SpanID(), proc.Parent.IsRemote(), pub.SpanContext.SpanID())
	}
	parentOf(t, onB, "handle echo", "process trace.next")
}

// The host's own line about a message that failed names the message's
// trace, as the plugin's lines do.
func TestTraceIDOnTheHostsLineAboutAFailure(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	h := trellistest.NewHost(t, func(o *host.Options) { o.TracerProvider = tp })
	h.Load("greet", trellistest.Wasm(t, greetWorseSrc), func(s *host.Spec) { s.Config = map[string]string{"fail_every": "1"} })
	m := nats.NewMsg("greet")
	m.Header.Set(abi.HeaderTraceparent, clientParent)
	m.Data = []byte("Ada")
	if r, err := h.Client().RequestMsg(m, 5*time.Second); err != nil || r.Header.Get(abi.HeaderError) == "" {
		t.Fatalf("request: %v %+v, want an error reply", err, r)
	}
	if !h.WaitLog(5*time.Second, "handler failed", "plugin=greet", "trace_id="+clientTraceID) {
		t.Fatalf("no handler failed line with the trace id:\n%s", h.Logs())
	}
}
