package host

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
)

func TestDirectGate(t *testing.T) {
	d := newDirect()
	now := deadline.Now()
	if d.allowed(now, 0) {
		t.Fatal("a new gate is open before any message was served")
	}
	// Fast messages open it, for as many queued behind as fit the budget.
	for i := 0; i < 40; i++ {
		d.served(now, now+2*time.Microsecond)
	}
	if !d.allowed(now, 0) || !d.allowed(now, 10) {
		t.Fatalf("closed after 40 messages of 2µs (average %s)", time.Duration(d.avg.Load()))
	}
	if d.allowed(now, 1000) {
		t.Fatalf("open with 1,000 queued behind messages of 2µs: they would wait %s", 1000*time.Duration(d.avg.Load()))
	}
	// One call held up (2ms, short of a stall) leaves it open for as many
	// as before: the average does not take the outlier at its face value.
	d.served(now, now+2*time.Millisecond)
	if !d.allowed(now, 10) {
		t.Fatalf("closed for 10 behind by one 2ms call among 2µs ones (average %s)", time.Duration(d.avg.Load()))
	}
	// A handler that turns slow for good closes it within a few dozen.
	turned := newDirect()
	for i := 0; i < 40; i++ {
		turned.served(now, now+2*time.Microsecond)
	}
	n := 0
	for ; n < 1000 && turned.allowed(now, 0); n++ {
		turned.served(now, now+200*time.Microsecond)
	}
	if n > 30 {
		t.Fatalf("still open after %d calls of 200µs (average %s)", n, time.Duration(turned.avg.Load()))
	}
	// Calls that take time close it by the average alone.
	slow := newDirect()
	for i := 0; i < 20; i++ {
		slow.served(now, now+5*time.Millisecond)
	}
	if slow.allowed(now, 0) || slow.offUntil.Load() != 0 {
		t.Fatal("open for a handler whose calls take 5ms")
	}
	// One stall closes it for directOff, whatever the average says.
	d.served(now, now+directStall+time.Millisecond)
	for i := 0; i < 50; i++ {
		d.served(now, now+2*time.Microsecond)
	}
	end := now + directStall + time.Millisecond
	if d.allowed(end+directOff-time.Second, 0) {
		t.Fatal("open within directOff of a stall")
	}
	if !d.allowed(end+directOff, 0) {
		t.Fatal("still closed directOff after the stall")
	}
	// A new version starts closed again.
	d.reset()
	if d.allowed(end+directOff, 0) {
		t.Fatal("open after reset")
	}
	// No overflow with a huge backlog and a huge average.
	d.avg.Store(int64(24 * time.Hour))
	if d.allowed(end+directOff, 1<<20) {
		t.Fatal("open with an average of a day")
	}
}

// TestDirectDispatchHoldsUpAtMostOneSlowCall drives a real host: a handler
// fast enough to be served directly turns slow (it spins until its
// deadline). The message sent right behind the first slow one may wait for
// it; from then on direct dispatch is off, and a message sent behind the
// second slow one is answered by another instance while the slow one
// still runs.
func TestDirectDispatchHoldsUpAtMostOneSlowCall(t *testing.T) {
	wasm := watFixture(t, "spinon")
	h := plainHost(t)
	const spinFor = 2 * time.Second
	if err := h.Load(context.Background(), Spec{Name: "spinon", Wasm: wasm, Subjects: []string{"spinon"}, PoolSize: 2, Timeout: spinFor}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	bd := h.bindings["spinon"]
	h.mu.Unlock()
	nc, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	fast := func() {
		t.Helper()
		if m, err := nc.Request("spinon", []byte("hi"), 5*time.Second); err != nil || string(m.Data) != "hi" {
			t.Fatalf("fast request: %v", err)
		}
	}
	if bd.direct.allowed(deadline.Now(), 0) {
		t.Fatal("direct dispatch open before the handler served anything")
	}
	// Fast messages open the gate (TestDirectGate checks how). On a
	// machine loaded enough to make this echo's serving average over
	// 100µs, or to stall one over 10ms, open it by hand: what follows
	// is about what a direct call holds up.
	for i := 0; i < 200 && !bd.direct.allowed(deadline.Now(), 0); i++ {
		fast()
	}
	if !bd.direct.allowed(deadline.Now(), 0) {
		t.Logf("direct dispatch still closed after 200 fast messages (average %s, off until %s): opened by hand",
			time.Duration(bd.direct.avg.Load()), time.Duration(bd.direct.offUntil.Load()))
		bd.direct.avg.Store(0)
		bd.direct.offUntil.Store(0)
	}

	// A slow call and a fast one behind it: which answer comes first.
	order := func() (first string, fastTook time.Duration) {
		t.Helper()
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.PublishRequest("spinon", inbox, nil); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		start := time.Now()
		if err := nc.PublishRequest("spinon", inbox, []byte("behind")); err != nil {
			t.Fatal(err)
		}
		var answers []string
		for len(answers) < 2 {
			m, err := sub.NextMsg(spinFor + 5*time.Second)
			if err != nil {
				t.Fatalf("answers so far %q: %v", answers, err)
			}
			a := string(m.Data)
			if m.Header.Get("Trellis-Error") != "" || len(m.Data) == 0 {
				a = "spin failed"
			} else {
				fastTook = time.Since(start)
			}
			answers = append(answers, a)
		}
		return answers[0], fastTook
	}
	first, took := order()
	t.Logf("behind the first slow call: %q answered first, the fast one after %s", first, took)
	if bd.direct.allowed(deadline.Now(), 0) {
		t.Fatal("direct dispatch still open after a call that ran to its deadline")
	}
	first, took = order()
	t.Logf("behind the second slow call: %q answered first, the fast one after %s", first, took)
	if first != "behind" {
		t.Fatalf("behind the second slow call the fast message waited for it (answered after %s)", took)
	}

	// A new version starts with direct dispatch closed.
	for i := 0; i < 50; i++ {
		fast()
	}
	bd.direct.offUntil.Store(0)
	if err := h.Load(context.Background(), Spec{Name: "spinon", Wasm: wasm, Subjects: []string{"spinon"}, PoolSize: 2, Timeout: spinFor, Config: map[string]string{"v": "2"}}); err != nil {
		t.Fatal(err)
	}
	if bd.direct.allowed(deadline.Now(), 0) {
		t.Fatal("direct dispatch open for a new version that served nothing")
	}
	fast()
}

// plainHost starts a host without JetStream, closed when the test ends.
func plainHost(tb testing.TB) *Host {
	tb.Helper()
	h, err := New(context.Background(), Options{Bus: bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true}, Logger: hclog.NewNullLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close(context.Background()) })
	return h
}

// watFixture builds testdata/name.wat with wat2wasm.
func watFixture(t *testing.T, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	if b, err := exec.Command("wat2wasm", filepath.Join("testdata", name+".wat"), "-o", out).CombinedOutput(); err != nil {
		if os.Getenv("TRELLIS_REQUIRE_TOOLCHAINS") == "" {
			t.Skipf("wat2wasm (apt install wabt): %v %s", err, b)
		}
		t.Fatalf("wat2wasm: %v %s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// TestARequestToTheSameSubscriptionIsNotStuckBehindItsCaller: a handler of
// "self.>" that asks "self.echo" while serving "self.ask" gets its answer
// from another instance. Served directly, the request would wait behind
// the call that sent it until that call's deadline; a handler with a
// request grant is therefore never served directly.
func TestARequestToTheSameSubscriptionIsNotStuckBehindItsCaller(t *testing.T) {
	wasm := watFixture(t, "selfask")
	h := plainHost(t)
	spec := Spec{Name: "selfask", Wasm: wasm, Subjects: []string{"self.>"}, PoolSize: 2, Timeout: 3 * time.Second,
		Grants: Grants{Subscribe: []string{"self.>"}, Request: []string{"self.echo"}}}
	if err := h.Load(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Enough fast echoes to open direct dispatch, were it allowed.
	for i := 0; i < 50; i++ {
		if _, err := nc.Request("self.echo", []byte("warm"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		start := time.Now()
		m, err := nc.Request("self.ask", []byte("hello"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != "hello" || m.Header.Get("Nats-Service-Error-Code") != "" {
			t.Fatalf("self.ask %d answered %q %v after %s", i, m.Data, m.Header, time.Since(start))
		}
	}
}

// TestWhatMayWaitIsNeverServedDirectly: a handler with a request grant, or
// retried with backoff, or behind a policy with a request grant, is kept on
// the workers; the same handler without any of them is not.
func TestWhatMayWaitIsNeverServedDirectly(t *testing.T) {
	wasm := watFixture(t, "spinon")
	h := plainHost(t)
	allow := watFixture(t, "allow")
	if err := h.Load(context.Background(), Spec{Name: "plainpolicy", Wasm: allow, Policy: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.Load(context.Background(), Spec{Name: "asker", Wasm: allow, Policy: true, Grants: Grants{Request: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		spec func(*Spec)
		want bool
	}{
		{"plain", func(*Spec) {}, false},
		{"request grant", func(s *Spec) { s.Grants = Grants{Subscribe: []string{"w.>"}, Request: []string{"other"}} }, true},
		{"retried", func(s *Spec) { s.Resilience = Resilience{Idempotent: true, Retries: 2} }, true},
		{"retries without idempotent", func(s *Spec) { s.Resilience = Resilience{Retries: 2} }, false},
		{"behind a plain policy", func(s *Spec) { s.Policies = []PolicyRef{{Name: "plainpolicy"}} }, false},
		{"behind a policy with a request grant", func(s *Spec) { s.Policies = []PolicyRef{{Name: "asker"}} }, true},
	} {
		spec := Spec{Name: "w", Wasm: wasm, Subjects: []string{"w.x"}}
		c.spec(&spec)
		if err := h.Load(context.Background(), spec); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		h.mu.Lock()
		got := h.bindings["w"].snap.Load().mayWait
		h.mu.Unlock()
		if got != c.want {
			t.Errorf("%s: kept off direct dispatch %v, want %v", c.name, got, c.want)
		}
	}
}
