package host_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const seen = " [seen on the way back]"

func policyHost(t *testing.T, ref host.PolicyRef, configure ...func(*host.Spec)) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t)
	h.Load("testpolicy", trellistest.Wasm(t, "testdata/testpolicy"), func(s *host.Spec) {
		s.Policy = true
		s.Timeout = 300 * time.Millisecond
		s.Grants.Request = []string{"greet"}
		s.Grants.Publish = []string{"mirror.copy"}
		for _, c := range configure {
			c(s)
		}
	})
	h.Load("echo", trellistest.Wasm(t, echoSrc), func(s *host.Spec) { s.Policies = []host.PolicyRef{ref} })
	return h
}

func ask(t *testing.T, h *trellistest.Host, subject, action, data string) *nats.Msg {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Header.Set("X-Policy", action)
	m.Data = []byte(data)
	reply, err := h.Client().RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", subject, action, err)
	}
	return reply
}

func wantError(t *testing.T, m *nats.Msg, code, text string) {
	t.Helper()
	if m.Header.Get(abi.HeaderErrorCode) != code || !strings.Contains(m.Header.Get(abi.HeaderError), text) {
		t.Fatalf("reply %q headers %v, want error %s %q", m.Data, m.Header, code, text)
	}
}

func TestPolicyDecisions(t *testing.T) {
	h := policyHost(t, host.PolicyRef{Name: "testpolicy"})
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	h.Load("conformance", trellistest.Wasm(t, "../sdk/go/conformance"), func(s *host.Spec) {
		s.Policies = []host.PolicyRef{{Name: "testpolicy"}}
	})

	t.Run("allow", func(t *testing.T) {
		if m := ask(t, h, "echo", "allow", "hi"); string(m.Data) != "hi"+seen {
			t.Fatalf("reply %q", m.Data)
		}
	})
	t.Run("reject", func(t *testing.T) {
		wantError(t, ask(t, h, "echo", "reject", "hi"), "403", "rejected by test policy")
	})
	t.Run("reject with response headers", func(t *testing.T) {
		m := ask(t, h, "echo", "limit", "hi")
		wantError(t, m, "429", "slow down")
		if m.Header.Get("Retry-After") != "7" {
			t.Fatalf("Retry-After %q", m.Header.Get("Retry-After"))
		}
	})
	t.Run("answer directly", func(t *testing.T) {
		if m := ask(t, h, "echo", "answer", "hi"); string(m.Data) != "answered by policy" {
			t.Fatalf("reply %q", m.Data)
		}
	})
	t.Run("reroute", func(t *testing.T) {
		if m := ask(t, h, "echo", "route:greet", "Ada"); string(m.Data) != "Hello, Ada!"+seen {
			t.Fatalf("reply %q", m.Data)
		}
	})
	t.Run("reroute without a grant", func(t *testing.T) {
		wantError(t, ask(t, h, "echo", "route:orders.secret", "x"), "500", "permission denied")
	})
	t.Run("mirror", func(t *testing.T) {
		sub, _ := h.Client().SubscribeSync("mirror.copy")
		defer sub.Unsubscribe()
		h.Client().Flush()
		if m := ask(t, h, "echo", "mirror", "copy me"); string(m.Data) != "copy me"+seen {
			t.Fatalf("reply %q", m.Data)
		}
		c, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(c.Data) != "copy me" {
			t.Fatalf("mirror copy %v %v", c, err)
		}
	})
	t.Run("modify headers and data", func(t *testing.T) {
		if m := ask(t, h, "echo", "modify", "loud"); string(m.Data) != "LOUD"+seen {
			t.Fatalf("reply %q", m.Data)
		}
		if m := ask(t, h, "conf.headers", "modify", ""); string(m.Data) != "by-policy"+seen {
			t.Fatalf("the header the policy set did not reach the handler: %q", m.Data)
		}
	})
	t.Run("fail closed on a trap", func(t *testing.T) {
		before := h.Counters().PolicyFailures.Load()
		wantError(t, ask(t, h, "echo", "trap", "x"), "503", "policy testpolicy failed")
		if h.Counters().PolicyFailures.Load() != before+1 {
			t.Fatal("policy failure not counted")
		}
	})
	t.Run("fail closed on a deadline", func(t *testing.T) {
		wantError(t, ask(t, h, "echo", "loop", "x"), "503", "policy testpolicy failed")
	})
	t.Run("still serving after faults", func(t *testing.T) {
		if m := ask(t, h, "echo", "allow", "again"); string(m.Data) != "again"+seen {
			t.Fatalf("reply %q", m.Data)
		}
	})
}

func TestPolicyFailOpen(t *testing.T) {
	h := policyHost(t, host.PolicyRef{Name: "testpolicy", FailOpen: true})
	if m := ask(t, h, "echo", "trap", "through"); string(m.Data) != "through" {
		t.Fatalf("fail-open policy that trapped: reply %q %v", m.Data, m.Header)
	}
}

func TestMissingPolicyFailsClosed(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("echo", trellistest.Wasm(t, echoSrc), func(s *host.Spec) { s.Policies = []host.PolicyRef{{Name: "nope"}} })
	wantError(t, h.Request("echo", []byte("x"), 5*time.Second), "503", "policy nope is not available")
}

func TestAHandlerCannotBeLoadedAsAPolicy(t *testing.T) {
	h := trellistest.NewHost(t)
	err := h.Host.Load(t.Context(), host.Spec{Name: "p", Path: wat(t, "trap"), Policy: true})
	if err == nil || !strings.Contains(err.Error(), "does not export trellis_policy") {
		t.Fatalf("error %v", err)
	}
}

func flakyHost(t *testing.T, failFirst string, res host.Resilience, mode string) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t)
	h.Load("flaky", trellistest.Wasm(t, "testdata/flaky"), func(s *host.Spec) {
		s.Config = map[string]string{"fail_first": failFirst, "mode": mode}
		s.Resilience = res
		s.Timeout = 2 * time.Second
	})
	return h
}

func TestRetriesOnlyWhenIdempotent(t *testing.T) {
	h := flakyHost(t, "2", host.Resilience{Idempotent: true, Retries: 3, Backoff: time.Millisecond}, "status")
	if m := h.Request("flaky", nil, 10*time.Second); string(m.Data) != "ok after 2" {
		t.Fatalf("reply %q %v", m.Data, m.Header)
	}
	if n := h.Counters().Retries.Load(); n != 2 {
		t.Fatalf("%d retries, want 2", n)
	}

	h = flakyHost(t, "1", host.Resilience{Idempotent: false, Retries: 3}, "trap")
	wantError(t, h.Request("flaky", nil, 10*time.Second), "500", "trap")
	if n := h.Counters().Retries.Load(); n != 0 {
		t.Fatalf("%d retries of a handler not marked idempotent", n)
	}
	if m := h.Request("flaky", nil, 10*time.Second); string(m.Data) != "ok after 1" {
		t.Fatalf("reply %q", m.Data)
	}
}

func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	h := flakyHost(t, "5", host.Resilience{BreakerFailures: 3, BreakerCooldown: 200 * time.Millisecond}, "status")
	for i := 1; i <= 3; i++ {
		wantError(t, h.Request("flaky", nil, 5*time.Second), "500", "failing call")
	}
	start := time.Now()
	wantError(t, h.Request("flaky", nil, 5*time.Second), "503", "circuit open")
	if time.Since(start) > time.Second {
		t.Fatal("an open breaker did not answer fast")
	}
	if h.Counters().BreakerRejects.Load() != 1 {
		t.Fatal("breaker rejection not counted")
	}
	// Calls 4 and 5 fail as half-open trials; call 6 succeeds and closes it.
	for call := 4; call <= 6; call++ {
		time.Sleep(250 * time.Millisecond)
		m := h.Request("flaky", nil, 5*time.Second)
		if call < 6 {
			wantError(t, m, "500", "failing call")
			wantError(t, h.Request("flaky", nil, 5*time.Second), "503", "circuit open")
		} else if string(m.Data) != "ok after 5" {
			t.Fatalf("trial call: %q %v", m.Data, m.Header)
		}
	}
	// The trial's reply can reach us a moment before the breaker records
	// its success (the plugin replies during the call): a request in that
	// moment is refused as the trial is still in flight, and touches no
	// plugin, so ask again.
	var m *nats.Msg
	trellistest.WaitFor(t, 5*time.Second, "the breaker to close", func() bool {
		m = h.Request("flaky", nil, 5*time.Second)
		return m.Header.Get(abi.HeaderErrorCode) != "503"
	})
	if string(m.Data) != "ok after 6" {
		t.Fatalf("after closing: %q %v", m.Data, m.Header)
	}
}

func TestFallbackAnswersWhenAllElseFails(t *testing.T) {
	h := flakyHost(t, "100", host.Resilience{Idempotent: true, Retries: 1, Backoff: time.Millisecond, Fallback: []byte("cached answer")}, "status")
	m := h.Request("flaky", nil, 10*time.Second)
	if string(m.Data) != "cached answer" || m.Header.Get("Trellis-Fallback") != "true" || m.Header.Get(abi.HeaderErrorCode) != "" {
		t.Fatalf("reply %q %v", m.Data, m.Header)
	}
}

func TestDeadLetterGetsEventsThatFailedEveryAttempt(t *testing.T) {
	h := flakyHost(t, "100", host.Resilience{Idempotent: true, Retries: 2, Backoff: time.Millisecond, DeadLetter: "dlq.flaky"}, "trap")
	dlq, _ := h.Client().SubscribeSync("dlq.flaky")
	h.Client().Flush()
	ev := nats.NewMsg("flaky")
	ev.Header.Set("Order-Id", "42")
	ev.Data = []byte("the event")
	h.Client().PublishMsg(ev)
	m, err := dlq.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Trellis-Attempts": "3", "Trellis-Error-Code": "500", "Trellis-Subject": "flaky",
		"Trellis-Plugin": "flaky", "Order-Id": "42"}
	for k, v := range want {
		if m.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, m.Header.Get(k), v)
		}
	}
	if !strings.Contains(m.Header.Get("Trellis-Error"), "trap") || string(m.Data) != "the event" {
		t.Fatalf("dead letter %q %v", m.Data, m.Header)
	}
	if h.Counters().DeadLetters.Load() != 1 {
		t.Fatal("dead letter not counted")
	}
}
