package host_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// failing loads a handler that always fails (status 500) with res and the
// given call deadline.
func failing(t *testing.T, res host.Resilience, timeout time.Duration) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t)
	h.Load("flaky", trellistest.Wasm(t, "testdata/flaky"), func(s *host.Spec) {
		s.Config = map[string]string{"fail_first": "1000000", "mode": "status"}
		s.Resilience = res
		s.Timeout = timeout
	})
	return h
}

// A backoff far longer than any test: only a Close or a deadline ends it.
const longBackoff = 10 * time.Hour

func TestCloseCutsARetryBackoffShort(t *testing.T) {
	h := failing(t, host.Resilience{Idempotent: true, Retries: 5, Backoff: longBackoff, MaxBackoff: longBackoff}, 2*longBackoff)
	if err := h.Client().PublishRequest("flaky", nats.NewInbox(), nil); err != nil {
		t.Fatal(err)
	}
	trellistest.WaitFor(t, 10*time.Second, "the first retry's backoff", func() bool { return h.Counters().Retries.Load() >= 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v: it waited out a retry's backoff", d)
	}
	if n := h.Counters().HandlerFailures.Load(); n != 1 {
		t.Fatalf("%d handler failures, want the one whose retries Close cut short", n)
	}
}

func TestARetryDoesNotWaitPastTheMessageDeadline(t *testing.T) {
	h := failing(t, host.Resilience{Idempotent: true, Retries: 5, Backoff: longBackoff, MaxBackoff: longBackoff}, 300*time.Millisecond)
	start := time.Now()
	wantError(t, h.Request("flaky", nil, 10*time.Second), "500", "failing call")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("answered after %v", d)
	}
	if n := h.Counters().Retries.Load(); n != 0 {
		t.Fatalf("%d retries begun whose backoff would outlive the message's deadline", n)
	}
}

func TestARetryNeverStartsPastTheMessageDeadline(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("loop", wat(t, "loop"), func(s *host.Spec) {
		s.Subjects = []string{"loop"}
		s.Timeout = 200 * time.Millisecond
		s.Resilience = host.Resilience{Idempotent: true, Retries: 3, Backoff: time.Millisecond}
	})
	wantError(t, h.Request("loop", nil, 10*time.Second), "504", "")
	if n := h.Counters().Retries.Load(); n != 0 {
		t.Fatalf("%d retries after the message's deadline had passed", n)
	}
	if n := h.Counters().HandlerFailures.Load(); n != 1 {
		t.Fatalf("%d handler failures, want 1", n)
	}
}

// hostGoroutines returns the stacks of goroutines running code of the host
// (not of its tests).
func hostGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "trellis-mesh/trellis/host") && !strings.Contains(g, "host_test.") &&
			!strings.Contains(g, "trellistest.") {
			out = append(out, g)
		}
	}
	return out
}

func TestCloseLeavesNoGoroutineBehind(t *testing.T) {
	h := trellistest.NewHost(t)
	spec := func(s *host.Spec) {
		s.Subjects = []string{"loop"}
		s.PoolSize = 1
		s.Timeout = time.Hour
	}
	h.Load("loop", wat(t, "loop"), spec)
	nc := h.Client()
	if err := nc.PublishRequest("loop", nats.NewInbox(), nil); err != nil {
		t.Fatal(err)
	}
	trellistest.WaitFor(t, 10*time.Second, "the call to begin", func() bool { return h.Plugins()[0].InUse == 1 })
	// The call stays on the version swapped out, which cannot close
	// before the call ends.
	h.Load("loop", wat(t, "loop"), spec)
	nc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); err == nil {
		t.Fatal("Close reported no error though a call outlived its context")
	}
	trellistest.WaitFor(t, 5*time.Second, "the host's goroutines to end", func() bool { return len(hostGoroutines()) == 0 })
}

func TestCloseThatRunsOutOfTimeLeavesNoGoroutineBehind(t *testing.T) {
	// One instance and an inbox of one: with four requests, one runs, one
	// waits in the inbox and one in the subscription's callback, so the
	// route cannot drain before Close gives up.
	h := trellistest.NewHost(t, func(o *host.Options) { o.QueueDepth = 1 })
	h.Load("loop", wat(t, "loop"), func(s *host.Spec) {
		s.Subjects = []string{"loop"}
		s.PoolSize = 1
		s.Timeout = time.Hour
	})
	nc := h.Client()
	for i := 0; i < 4; i++ {
		if err := nc.PublishRequest("loop", nats.NewInbox(), nil); err != nil {
			t.Fatal(err)
		}
	}
	trellistest.WaitFor(t, 10*time.Second, "the first call to begin", func() bool { return h.Plugins()[0].InUse == 1 })
	nc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); err == nil {
		t.Fatal("Close reported no error though the route could not drain in time")
	}
	trellistest.WaitFor(t, 5*time.Second, "the host's goroutines to end", func() bool { return len(hostGoroutines()) == 0 })
}
