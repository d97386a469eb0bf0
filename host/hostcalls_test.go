package host_test

import (
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// Each host call that leaves a plugin is timed by plugin and call, and each
// KV operation counted by its result: relay.wat reads a key that is not
// there (not_found) and publishes once per message.
func TestHostCallMetrics(t *testing.T) {
	h := trellistest.NewHost(t)
	loadRelay(t, h)
	for range 3 {
		if m := h.Request("trace.relay", []byte("x"), 5*time.Second); string(m.Data) != "x" {
			t.Fatalf("reply %q", m.Data)
		}
	}
	m := h.Scrape()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"trellis_host_call_duration_seconds", []string{"plugin", "relay", "call", "publish"}, 3},
		{"trellis_host_call_duration_seconds", []string{"plugin", "relay", "call", "kv_get"}, 3},
		{"trellis_host_call_duration_seconds", []string{"plugin", "relay", "call", "request"}, 0},
		{"trellis_kv_operations_total", []string{"plugin", "relay", "op", "get", "result", "not_found"}, 3},
		{"trellis_kv_operations_total", []string{"plugin", "relay", "op", "get", "result", "ok"}, 0},
		{"trellis_kv_operations_total", []string{"plugin", "relay", "op", "set", "result", "error"}, 0},
	} {
		if v, ok := m.Value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	// A reply is not a publish.
	if v, _ := m.Value("trellis_host_call_duration_seconds", "plugin", "echo", "call", "publish"); v != 0 {
		t.Errorf("echo's replies timed as %v publishes", v)
	}
}

// A canary's publishes and KV calls are timed and counted under its
// plugin's name, as the stable's are.
func TestHostCallMetricsOfACanary(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) { s.Grants.Publish = []string{"greet.audit"} })
	v, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetSameSrc)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StartRollout("greet", v, host.Rollout{Steps: []float64{1}, StepDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// The rollout sets its first share from its own goroutine.
	trellistest.WaitFor(t, 10*time.Second, "the canary at 100%", func() bool {
		cs := h.Candidates("greet")
		return len(cs) == 1 && cs[0].Share == 1
	})
	for range 3 {
		if m := h.Request("greet", []byte("Ada"), 5*time.Second); string(m.Data) != "Hello, Ada!" {
			t.Fatalf("reply %q", m.Data)
		}
	}
	var m trellistest.Metrics
	trellistest.WaitFor(t, 10*time.Second, "the canary's 3 messages counted", func() bool {
		m = h.Scrape()
		n, _ := m.Value("trellis_version_messages_total", "plugin", "greet", "version", v, "track", "canary")
		return n == 3
	})
	for _, c := range [][]string{
		{"trellis_host_call_duration_seconds", "plugin", "greet", "call", "publish"},
		{"trellis_kv_operations_total", "plugin", "greet", "op", "incr", "result", "ok"},
	} {
		if got, _ := m.Value(c[0], c[1:]...); got != 3 {
			t.Errorf("%s%v = %v, want 3", c[0], c[1:], got)
		}
	}
}
