package host_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// observedHost serves the conformance handler on conf.> (behind
// testpolicy on the HTTP route POST /echo, to conf.echo).
func observedHost(t *testing.T) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{
			{Pattern: "POST /echo", Subject: "conf.echo", Policies: []host.PolicyRef{{Name: "testpolicy"}}},
		}}
	})
	h.Load("testpolicy", trellistest.Wasm(t, "testdata/testpolicy"), func(s *host.Spec) { s.Policy = true })
	h.Load("conformance", trellistest.Wasm(t, "../sdk/go/conformance"), func(s *host.Spec) {
		s.Grants.Publish = []string{"published.>"}
	})
	return h
}

func TestMetricsCountMessagesByOutcome(t *testing.T) {
	h := observedHost(t)
	for range 5 {
		h.Request("conf.echo", []byte("x"), 5*time.Second)
	}
	for range 2 {
		h.Request("conf.error", []byte("x"), 5*time.Second)
	}
	h.Request("conf.trap", nil, 5*time.Second)
	for range 3 {
		h.Request("conf.publish", []byte("p"), 5*time.Second)
	}
	base := "http://" + h.HTTPAddr()
	for range 4 {
		if resp, body := trellistest.HTTP(t, nil, "POST", base+"/echo", "hi"); resp.StatusCode != 200 {
			t.Fatalf("POST /echo: %d %s", resp.StatusCode, body)
		}
	}
	if resp, _ := trellistest.HTTP(t, nil, "POST", base+"/echo", "hi", "X-Policy", "reject"); resp.StatusCode != 403 {
		t.Fatalf("rejected POST /echo: %d", resp.StatusCode)
	}

	// A message is counted once its answer is sent, just after the
	// requester may have read it: wait for the last one.
	var m trellistest.Metrics
	trellistest.WaitFor(t, 5*time.Second, "15 messages counted", func() bool {
		m = h.Scrape()
		v, _ := m.Value("trellis_message_duration_seconds", "plugin", "conformance")
		return v == 15
	})
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"trellis_messages_total", []string{"plugin", "conformance", "subject", "conf.>", "status", "2xx", "fault", "none"}, 12},
		{"trellis_messages_total", []string{"plugin", "conformance", "status", "4xx"}, 2},
		{"trellis_messages_total", []string{"plugin", "conformance", "status", "5xx", "fault", "trap"}, 1},
		{"trellis_handler_duration_seconds", []string{"plugin", "conformance"}, 15},
		{"trellis_publishes_total", []string{"plugin", "conformance", "subject", "published.conf", "kind", "publish"}, 3},
		{"trellis_http_requests_total", []string{"route", "POST /echo", "code", "200"}, 4},
		{"trellis_http_requests_total", []string{"route", "POST /echo", "code", "403"}, 1},
		{"trellis_http_request_duration_seconds", []string{"route", "POST /echo"}, 5},
		{"trellis_policy_decisions_total", []string{"policy", "testpolicy", "decision", "allow"}, 4},
		{"trellis_policy_decisions_total", []string{"policy", "testpolicy", "decision", "reject"}, 1},
		{"trellis_policy_duration_seconds", []string{"policy", "testpolicy"}, 5},
		{"trellis_reloads_total", []string{"plugin", "conformance", "result", "loaded"}, 1},
		{"trellis_load_duration_seconds", []string{"plugin", "conformance"}, 1},
		{"trellis_calls_in_flight", []string{"plugin", "conformance"}, 0},
		{"trellis_plugin_info", []string{"plugin", "testpolicy", "role", "policy"}, 1},
	}
	for _, w := range want {
		if v, ok := m.Value(w.name, w.labels...); !ok || v != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}
	// Read at scrape time: the pool, the inbox, the embedded server.
	for _, name := range []string{"trellis_pool_size", "trellis_queue_capacity", "trellis_nats_connections", "trellis_nats_in_messages_total", "trellis_nats_subscriptions"} {
		if v, ok := m.Value(name); !ok || v <= 0 {
			t.Errorf("%s = %v (found %v), want > 0", name, v, ok)
		}
	}
	// One trap discarded one instance; the next call made another.
	if v, _ := m.Value("trellis_instances_discarded_total", "plugin", "conformance"); v != 1 {
		t.Errorf("instances discarded = %v, want 1 (one trap)", v)
	}
	if v, _ := m.Value("trellis_instances_created_total", "plugin", "conformance"); v < 2 {
		t.Errorf("instances created = %v, want at least 2 (the first, and one after the trap)", v)
	}
	live, _ := m.Value("trellis_pool_instances", "plugin", "conformance")
	if v, _ := m.Value("trellis_instance_memory_bytes", "plugin", "conformance"); v < live*65536 || int64(v)%65536 != 0 {
		t.Errorf("instance memory = %v bytes for %v live instances: want whole 64 KiB pages, at least one each", v, live)
	}
	var fault bool
	for _, e := range h.Events() {
		fault = fault || (e.Kind == host.EventFault && e.Plugin == "conformance" && e.Subject == "conf.trap")
	}
	if !fault {
		t.Errorf("no fault event for conf.trap in %+v", h.Events())
	}
}

func TestMetricsCountRefusedReloads(t *testing.T) {
	h := observedHost(t)
	bad := t.TempDir() + "/bad.wasm"
	if err := os.WriteFile(bad, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Host.Load(t.Context(), host.Spec{Name: "conformance", Path: bad}); err == nil {
		t.Fatal("a corrupt module was loaded")
	}
	m := h.Scrape()
	if v, _ := m.Value("trellis_reloads_total", "plugin", "conformance", "result", "refused"); v != 1 {
		t.Errorf("refused reloads = %v, want 1", v)
	}
	e, ok := h.LastReload("conformance")
	if !ok || e.Kind != host.EventRefused || e.Detail == "" {
		t.Errorf("last reload = %+v, %v; want a refusal with its reason", e, ok)
	}
}

func TestMetricsOff(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) { o.DisableMetrics = true })
	h.Load("echo", trellistest.Wasm(t, "../abi/echo.wat"))
	if h.Metrics() != nil {
		t.Fatal("Metrics() is not nil with DisableMetrics")
	}
	if m := h.Request("echo", []byte("hi"), 5*time.Second); string(m.Data) != "hi" {
		t.Fatalf("echo without metrics: %q", m.Data)
	}
}

// TestServicesAnswerMicroVerbs asks for the plugins as NATS services the
// way `nats micro` does, with $SRV requests, and checks that STATS are
// the metrics' figures.
func TestServicesAnswerMicroVerbs(t *testing.T) {
	h := observedHost(t)
	for range 3 {
		h.Request("conf.echo", nil, 5*time.Second)
	}
	h.Request("conf.error", nil, 5*time.Second)
	nc := h.Client()

	m, err := nc.Request("$SRV.INFO.conformance", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	conf := pluginInfo(t, h, "conformance")
	if info.Type != micro.InfoResponseType || info.Name != "conformance" || info.Version != "0.0.0+"+conf.Version ||
		len(info.Endpoints) != 1 || info.Endpoints[0].Subject != "conf.>" || info.Endpoints[0].QueueGroup != "conformance" {
		t.Fatalf("info: %+v", info)
	}

	// PING to every service: one answer per handler, none for a policy.
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.PING", inbox, nil); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ping micro.Ping
	if err := json.Unmarshal(msg.Data, &ping); err != nil || ping.Name != "conformance" || ping.ID != info.ID {
		t.Fatalf("ping: %+v, %v", ping, err)
	}
	if extra, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a second PING answer (the policy?): %s", extra.Data)
	}

	trellistest.WaitFor(t, 5*time.Second, "4 requests in STATS", func() bool {
		m, err := nc.Request("$SRV.STATS.conformance."+info.ID, nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var st micro.Stats
		if err := json.Unmarshal(m.Data, &st); err != nil || len(st.Endpoints) != 1 {
			t.Fatalf("stats: %s, %v", m.Data, err)
		}
		e := st.Endpoints[0]
		if e.NumRequests == 4 && (e.NumErrors != 1 || e.ProcessingTime <= 0 || e.AverageProcessingTime <= 0) {
			t.Fatalf("stats: %+v", e)
		}
		return e.NumRequests == 4
	})
}

func pluginInfo(t *testing.T, h *trellistest.Host, name string) host.Info {
	t.Helper()
	for _, p := range h.Plugins() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("plugin %s not loaded", name)
	return host.Info{}
}

// A stored event (a durable handler's) is counted under the handler's
// subject, as a subscription's message is.
func TestMetricsCountStoredEvents(t *testing.T) {
	h := trellistest.NewHost(t)
	watchLedger(t, h)
	loadLedger(h, t, func(s *host.Spec) { s.Subjects = []string{"ledger.in.>"} })
	for range 3 {
		publishStored(t, h.Client(), "ledger.in.a", "x")
	}
	trellistest.WaitFor(t, 10*time.Second, "3 stored events counted under ledger.in.>", func() bool {
		v, _ := h.Scrape().Value("trellis_messages_total", "plugin", "ledger", "subject", "ledger.in.>", "status", "2xx")
		return v == 3
	})
}
