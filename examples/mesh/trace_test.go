package mesh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/tracing"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// JaegerEnv names the Jaeger all-in-one binary (github.com/jaegertracing/
// jaeger/cmd/jaeger v1.75.0) the tracing tests export to; .ci/run builds
// it and sets it. Without it they skip, unless TRELLIS_REQUIRE_TOOLCHAINS=1.
const JaegerEnv = "TRELLIS_JAEGER"

// TraceHTMLEnv, if set, names a file the walk-through's trace is drawn
// into as an HTML page: how docs/trace.png is made.
const TraceHTMLEnv = "TRELLIS_TRACE_HTML"

// jaeger is one Jaeger all-in-one process, started once per test binary
// with an in-memory store, every port a free one of 127.0.0.1.
type jaeger struct {
	cmd        *exec.Cmd
	dir        string
	otlpGRPC   string // host:port
	otlpHTTP   string
	query      string // http://host:port
	stderr     *trellistest.SyncBuffer
	exited     chan struct{}
	startError error
}

var (
	jaegerOnce sync.Once
	jaegerProc *jaeger
)

// startJaeger returns the test binary's Jaeger, starting it the first time.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := os.Getenv(JaegerEnv)
	if bin == "" {
		trellistest.SkipWithoutToolchain(t, JaegerEnv+" is not set: build the Jaeger all-in-one (go build github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0, as .ci/run does) and set it to the binary")
	}
	if _, err := os.Stat(bin); err != nil {
		trellistest.SkipWithoutToolchain(t, fmt.Sprintf("%s=%s: %v", JaegerEnv, bin, err))
	}
	jaegerOnce.Do(func() { jaegerProc = launchJaeger(bin) })
	if jaegerProc.startError != nil {
		t.Fatalf("jaeger: %v\n%s", jaegerProc.startError, jaegerProc.stderr)
	}
	return jaegerProc
}

// freePorts returns n distinct free ports of 127.0.0.1.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// jaegerConfig is the all-in-one configuration the tests run: OTLP in,
// the in-memory store, the query API; no metrics endpoint of its own.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %s
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

func launchJaeger(bin string) *jaeger {
	j := &jaeger{stderr: &trellistest.SyncBuffer{}, exited: make(chan struct{})}
	fail := func(err error) *jaeger { j.startError = err; return j }
	ports, err := freePorts(5)
	if err != nil {
		return fail(err)
	}
	health, query, queryGRPC := ports[0], ports[1], ports[2]
	j.otlpGRPC, j.otlpHTTP, j.query = ports[3], ports[4], "http://"+query
	if j.dir, err = os.MkdirTemp("", "trellis-jaeger-"); err != nil {
		return fail(err)
	}
	cfg := filepath.Join(j.dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, health, query, queryGRPC, j.otlpGRPC, j.otlpHTTP), 0o644); err != nil {
		return fail(err)
	}
	j.cmd = exec.Command(bin, "--config=file:"+cfg)
	j.cmd.Dir = j.dir
	j.cmd.Stdout = j.stderr
	j.cmd.Stderr = j.stderr
	if err := j.cmd.Start(); err != nil {
		return fail(err)
	}
	go func() { j.cmd.Wait(); close(j.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-j.exited:
			return fail(fmt.Errorf("exited at start"))
		default:
		}
		if resp, err := http.Get("http://" + health + "/status"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return j
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fail(fmt.Errorf("not healthy within 60s"))
}

// stopJaeger ends the test binary's Jaeger, if it started one.
func stopJaeger() {
	j := jaegerProc
	if j == nil || j.cmd == nil || j.cmd.Process == nil {
		return
	}
	j.cmd.Process.Signal(os.Interrupt)
	select {
	case <-j.exited:
	case <-time.After(10 * time.Second):
		j.cmd.Process.Kill()
		<-j.exited
	}
	os.RemoveAll(j.dir)
}

// provider is a tracing.Provider exporting to j by protocol, under
// service, shut down when the test ends (after the host, which the test
// closes first: cleanups run last-registered first).
func (j *jaeger) provider(t *testing.T, protocol, service string) *tracing.Provider {
	t.Helper()
	endpoint := "http://" + j.otlpHTTP
	if protocol == tracing.ProtocolGRPC {
		endpoint = "http://" + j.otlpGRPC
	}
	p, err := tracing.New(context.Background(), tracing.Config{Endpoint: endpoint, Protocol: protocol, ServiceName: service})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

// jaegerSpan is a span as Jaeger's query API returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64 `json:"startTime"` // µs
	Duration  int64 `json:"duration"`  // µs
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
}

// get reads path of the query API into a list of traces.
func (j *jaeger) get(t *testing.T, path string) []jaegerTrace {
	t.Helper()
	resp, err := http.Get(j.query + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode == 404 {
		return nil
	}
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, body)
	}
	return out.Data
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s jaegerSpan) tag(key string) string {
	for _, tg := range s.Tags {
		if tg.Key == key {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}

// links lists, for each span of tr, "name <- parent's name": the shape
// of the trace, to compare with what the test wants.
func links(tr jaegerTrace) map[string]bool {
	byID := map[string]jaegerSpan{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	out := map[string]bool{}
	for _, s := range tr.Spans {
		p, ok := byID[s.parent()]
		if !ok {
			out[s.OperationName+" <- (root)"] = true
			continue
		}
		out[s.OperationName+" <- "+p.OperationName] = true
	}
	return out
}

// An order placed over HTTP is ONE trace in Jaeger: the ingress, its three
// policies, the event it publishes, and every durable handler it reaches
// (orders-enrich, orders-store and orders-notify, the flaky mailer), each
// a child of the publish that sent it the event. The mailer's log line
// names the trace.
func TestMeshOneTraceInJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ten plugins")
	}
	j := startJaeger(t)
	is := startIssuer(t)
	service := "trellis-mesh-" + fmt.Sprint(time.Now().UnixNano())
	p := j.provider(t, tracing.ProtocolGRPC, service)
	h, base := start(t, is, func(o *host.Options) { o.TracerProvider = p.TracerProvider() })
	sent, _ := h.Client().SubscribeSync("mail.sent")
	h.Client().Flush()
	alice := is.mint(t, "--sub", "alice", "--scope", "orders:write")
	if code, _, body := call(t, "POST", base+"/orders", alice, `{"id":"7","item":"book","customer":"ada@example.com"}`); code != 202 {
		t.Fatalf("POST /orders: %d %s", code, body)
	}
	if _, err := sent.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no mail sent: %v", err)
	}
	want := []string{
		"POST /orders <- (root)",
		"policy auth <- POST /orders",
		"policy writers <- POST /orders",
		"policy ratelimit <- POST /orders",
		"publish orders.created <- POST /orders",
		"process orders.created <- publish orders.created",
		"handle orders-enrich <- process orders.created",
		"publish orders.enriched <- handle orders-enrich",
		"process orders.enriched <- publish orders.enriched",
		"handle orders-store <- process orders.enriched",
		"handle orders-notify <- process orders.enriched",
		"publish notifications.email <- handle orders-notify",
		"process notifications.email <- publish notifications.email",
		"handle mailer <- process notifications.email",
		"publish mail.sent <- handle mailer",
	}
	var tr jaegerTrace
	var got map[string]bool
	trellistest.WaitFor(t, 30*time.Second, "the order's trace in Jaeger", func() bool {
		p.ForceFlush(context.Background())
		traces := j.get(t, "/api/traces?service="+service+"&limit=50&lookback=1h")
		for _, c := range traces {
			l := links(c)
			if !l["POST /orders <- (root)"] {
				continue
			}
			tr, got = c, l
			for _, w := range want {
				if !l[w] {
					return false
				}
			}
			return true
		}
		return false
	})
	var missing []string
	for _, w := range want {
		if !got[w] {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the trace lacks %q; it has %v", missing, got)
	}
	for _, s := range tr.Spans {
		if s.OperationName == "publish orders.created" && (s.tag("messaging.system") != "nats" || s.tag("messaging.destination.name") != "orders.created" || s.tag("span.kind") != "producer") {
			t.Errorf("publish span tags %v", s.Tags)
		}
		if s.OperationName == "POST /orders" && (s.tag("http.route") != "/orders" || s.tag("http.response.status_code") != "202" || s.tag("span.kind") != "server") {
			t.Errorf("ingress span tags %v", s.Tags)
		}
	}
	if !h.WaitLog(10*time.Second, "mail sent to ada@example.com", "trace_id="+tr.TraceID) {
		t.Fatalf("the mailer's log line does not carry trace %s:\n%s", tr.TraceID, h.Logs())
	}
	if out := os.Getenv(TraceHTMLEnv); out != "" {
		if err := os.WriteFile(out, traceHTML(tr), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A NATS client's traceparent is continued, by OTLP over HTTP this time:
// the handler's spans join the client's trace under the client's span.
func TestMeshTraceContinuesNATSTraceparent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ten plugins")
	}
	j := startJaeger(t)
	is := startIssuer(t)
	service := "trellis-nats-" + fmt.Sprint(time.Now().UnixNano())
	p := j.provider(t, tracing.ProtocolHTTP, service)
	h, _ := start(t, is, func(o *host.Options) { o.TracerProvider = p.TracerProvider() })
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	m := nats.NewMsg("orders.get.v1")
	m.Header.Set(abi.HeaderTraceparent, "00-"+traceID+"-"+parentID+"-01")
	m.Data = []byte(`{"id":"none"}`)
	if _, err := h.Client().RequestMsg(m, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	trellistest.WaitFor(t, 30*time.Second, "the client's trace in Jaeger", func() bool {
		p.ForceFlush(context.Background())
		got = map[string]string{}
		for _, tr := range j.get(t, "/api/traces/"+traceID) {
			for _, s := range tr.Spans {
				got[s.OperationName] = s.parent()
			}
		}
		return got["process orders.get.v1"] == parentID && got["handle orders-get-v1"] != ""
	})
}

// traceHTML draws tr as a timeline, one bar per span indented under its
// parent: the picture of docs/trace.png, since the Jaeger binary built
// from the module proxy serves no UI.
func traceHTML(tr jaegerTrace) []byte {
	byID := map[string]jaegerSpan{}
	kids := map[string][]jaegerSpan{}
	var roots []jaegerSpan
	start, end := int64(1<<62), int64(0)
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
		start, end = min(start, s.StartTime), max(end, s.StartTime+s.Duration)
	}
	for _, s := range tr.Spans {
		if _, ok := byID[s.parent()]; ok {
			kids[s.parent()] = append(kids[s.parent()], s)
		} else {
			roots = append(roots, s)
		}
	}
	total := float64(max(end-start, 1))
	var b strings.Builder
	fmt.Fprintf(&b, `<!doctype html><meta charset="utf-8"><title>trace %s</title>
<style>body{font:13px system-ui,sans-serif;margin:16px;color:#222}h1{font-size:16px;margin:0 0 4px}
.sub{color:#666;margin-bottom:12px}.row{display:flex;align-items:center;height:22px;border-bottom:1px solid #eee}
.name{width:360px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.lane{position:relative;flex:1;height:14px}
.bar{position:absolute;height:14px;border-radius:2px;min-width:2px}.dur{position:absolute;font-size:11px;color:#444;top:-1px}
.k-server{background:#4e79a7}.k-internal{background:#bab0ac}.k-producer{background:#f28e2b}.k-consumer{background:#59a14f}.k-client{background:#b07aa1}
.legend span{display:inline-block;padding:1px 6px;margin-right:6px;color:#fff;border-radius:2px}</style>
<h1>POST /orders: one trace through the mesh example</h1>
<div class="sub">trace %s · %d spans · %.1f ms · drawn from Jaeger's query API (/api/traces/%s)</div>
<div class="legend"><span class="k-server">server</span><span class="k-internal">internal</span><span class="k-producer">producer</span><span class="k-consumer">consumer</span><span class="k-client">client</span></div>
`, tr.TraceID, tr.TraceID, len(tr.Spans), total/1000, tr.TraceID)
	var walk func(s jaegerSpan, depth int)
	walk = func(s jaegerSpan, depth int) {
		left := float64(s.StartTime-start) / total * 100
		width := float64(s.Duration) / total * 100
		kind := s.tag("span.kind")
		if kind == "" {
			kind = "internal"
		}
		// The duration goes after the bar, or before it near the right edge.
		label := fmt.Sprintf("left:calc(%.3f%% + 4px)", left+width)
		if left+width > 80 {
			label = fmt.Sprintf("right:calc(%.3f%% + 4px)", 100-left)
		}
		fmt.Fprintf(&b, `<div class="row"><div class="name" style="padding-left:%dpx">%s</div><div class="lane"><div class="bar k-%s" style="left:%.3f%%;width:%.3f%%"></div><div class="dur" style="%s">%.2f ms</div></div></div>`+"\n",
			depth*14, html.EscapeString(s.OperationName), html.EscapeString(kind), left, width, label, float64(s.Duration)/1000)
		cs := kids[s.SpanID]
		sort.Slice(cs, func(i, j int) bool { return cs[i].StartTime < cs[j].StartTime })
		for _, c := range cs {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return []byte(b.String())
}
