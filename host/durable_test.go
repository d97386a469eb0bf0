package host_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const ledgerSrc = "testdata/ledger"

// ledger collects what the ledger plugin reports on ledger.seen: for each
// event's data, the deliveries it saw.
type ledger struct {
	mu   sync.Mutex
	seen map[string][]string
}

func watchLedger(t *testing.T, h *trellistest.Host) *ledger {
	l := &ledger{seen: map[string][]string{}}
	sub, err := h.Client().Subscribe("ledger.seen", func(m *nats.Msg) {
		data, delivery, _ := strings.Cut(string(m.Data), " ")
		l.mu.Lock()
		l.seen[data] = append(l.seen[data], delivery)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Client().Flush()
	t.Cleanup(func() { sub.Unsubscribe() })
	return l
}

func (l *ledger) deliveries(data string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen[data]...)
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

func loadLedger(h *trellistest.Host, t *testing.T, configure ...func(*host.Spec)) {
	h.Load("ledger", trellistest.Wasm(t, ledgerSrc), append([]func(*host.Spec){func(s *host.Spec) {
		s.Subjects = []string{"ledger.in"}
		s.Grants.Publish = []string{"ledger.seen"}
		s.Durable = &host.Durable{MaxDeliver: 3, Backoff: []time.Duration{50 * time.Millisecond}}
		s.Resilience.DeadLetter = "ledger.dead"
	}}, configure...)...)
}

func publishStored(t *testing.T, nc *nats.Conn, subject, data string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
		t.Fatalf("publish %s: %v", data, err)
	}
}

// Events published while a durable handler is not loaded are stored and
// handled, each once, when it comes back.
func TestDurableHandlerGetsEventsPublishedWhileItWasAway(t *testing.T) {
	h := trellistest.NewHost(t)
	l := watchLedger(t, h)
	loadLedger(h, t)
	publishStored(t, h.Client(), "ledger.in", "first")
	trellistest.WaitFor(t, 10*time.Second, "the first event", func() bool { return len(l.deliveries("first")) == 1 })

	if err := h.Unload(t.Context(), "ledger"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		publishStored(t, h.Client(), "ledger.in", fmt.Sprintf("away-%d", i))
	}
	loadLedger(h, t)
	trellistest.WaitFor(t, 20*time.Second, "the events published while away", func() bool { return l.count() == 21 })
	time.Sleep(200 * time.Millisecond) // let a duplicate, if any, arrive
	for i := range 20 {
		if d := l.deliveries(fmt.Sprintf("away-%d", i)); len(d) != 1 || d[0] != "1" {
			t.Fatalf("away-%d: deliveries %v, want one, the first", i, d)
		}
	}
}

// A failing event is delivered MaxDeliver times, the plugin seeing which
// delivery each is, and then dead-lettered with why.
func TestDurableFailuresAreRedeliveredThenDeadLettered(t *testing.T) {
	h := trellistest.NewHost(t)
	l := watchLedger(t, h)
	dead := make(chan *nats.Msg, 4)
	sub, err := h.Client().ChanSubscribe("ledger.dead", dead)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	loadLedger(h, t)
	publishStored(t, h.Client(), "ledger.in", "fail-once-more")
	var m *nats.Msg
	select {
	case m = <-dead:
	case <-time.After(20 * time.Second):
		t.Fatalf("nothing dead-lettered; deliveries %v\n%s", l.deliveries("fail-once-more"), h.Logs())
	}
	// The plugin's reports travel apart from the dead letter.
	trellistest.WaitFor(t, 5*time.Second, "deliveries 1,2,3", func() bool {
		return strings.Join(l.deliveries("fail-once-more"), ",") == "1,2,3"
	})
	time.Sleep(300 * time.Millisecond) // no fourth delivery comes
	if got := strings.Join(l.deliveries("fail-once-more"), ","); got != "1,2,3" {
		t.Fatalf("deliveries %q, want 1,2,3", got)
	}
	if string(m.Data) != "fail-once-more" || m.Header.Get(abi.HeaderDeadLetterAttempts) != "3" ||
		m.Header.Get(abi.HeaderDeadLetterPlugin) != "ledger" || !strings.Contains(m.Header.Get(abi.HeaderDeadLetterError), "failing") {
		t.Fatalf("dead letter %q %v", m.Data, m.Header)
	}
	if n := h.Counters().DeadLetters.Load(); n != 1 {
		t.Fatalf("%d dead letters counted", n)
	}
}

// Reloading a durable handler under a stream of events loses none and
// handles none twice.
func TestDurableReloadUnderLoadLosesNothing(t *testing.T) {
	h := trellistest.NewHost(t)
	l := watchLedger(t, h)
	loadLedger(h, t)
	const events = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		js, _ := jetstream.New(h.Client())
		for i := range events {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := js.Publish(ctx, "ledger.in", []byte(fmt.Sprintf("e%d", i))); err != nil {
				t.Errorf("publish: %v", err)
			}
			cancel()
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			// A config change makes a new version.
			loadLedger(h, t, func(s *host.Spec) { s.Config = map[string]string{"round": fmt.Sprint(i)} })
			continue
		}
		break
	}
	trellistest.WaitFor(t, 30*time.Second, "every event", func() bool { return l.count() == events })
	time.Sleep(200 * time.Millisecond)
	for i := range events {
		if d := l.deliveries(fmt.Sprintf("e%d", i)); len(d) != 1 {
			t.Fatalf("e%d: deliveries %v, want exactly one", i, d)
		}
	}
	if !h.WaitLog(time.Second, "plugin reloaded", "plugin=ledger") {
		t.Fatal("no reload happened during the test")
	}
}

// An HTTP event route to a durable subject answers 202 only once the event
// is stored; when it cannot be stored, 503 with Retry-After.
func TestHTTPEventToADurableSubjectIsAcceptedOnlyWhenStored(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) { o.HTTP.Listen = "127.0.0.1:0" })
	l := watchLedger(t, h)
	loadLedger(h, t)
	if err := h.SetHTTPRoutes([]host.HTTPRoute{{Pattern: "POST /ledger", Subject: "ledger.in", Event: true}}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + h.HTTPAddr() + "/ledger"
	if resp, body := trellistest.HTTP(t, nil, "POST", url, "by-http"); resp.StatusCode != 202 {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	trellistest.WaitFor(t, 10*time.Second, "the event posted", func() bool { return len(l.deliveries("by-http")) == 1 })

	// The stream goes away behind the host's back: nothing can be stored.
	js, _ := jetstream.New(h.Client())
	if err := js.DeleteStream(t.Context(), "TRELLIS_LEDGER"); err != nil {
		t.Fatal(err)
	}
	resp, body := trellistest.HTTP(t, nil, "POST", url, "lost")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("POST without a stream: %d %q, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// Events stored before a host stops are handled once after it starts
// again on the same store: accepted means delivered, across a restart.
func TestDurableEventsSurviveARestart(t *testing.T) {
	store := t.TempDir()
	onStore := func(o *host.Options) { o.Bus.StoreDir = store }
	first := trellistest.NewHost(t, onStore)
	loadLedger(first, t)
	if err := first.Unload(t.Context(), "ledger"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		publishStored(t, first.Client(), "ledger.in", fmt.Sprintf("before-restart-%d", i))
	}
	first.Client().Close()
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	second := trellistest.NewHost(t, onStore)
	l := watchLedger(t, second)
	loadLedger(second, t)
	trellistest.WaitFor(t, 20*time.Second, "the events stored before the restart", func() bool { return l.count() == 10 })
	time.Sleep(200 * time.Millisecond)
	for i := range 10 {
		if d := l.deliveries(fmt.Sprintf("before-restart-%d", i)); len(d) != 1 {
			t.Fatalf("before-restart-%d: deliveries %v, want one", i, d)
		}
	}
}

// A durable stream JetStream can never place (three replicas on a lone
// server, not clustered) is refused at once, naming the plugin, the
// stream and why: it is not the wait-for-the-cluster kind of failure
// (ErrJetStreamUnavailable) that `trellis run` waits out. The plugin is
// listed as not ready, with that reason.
func TestDurableStreamThatCannotBePlacedIsRefusedAtOnce(t *testing.T) {
	h := trellistest.NewHost(t)
	wasm := trellistest.Wasm(t, ledgerSrc)
	start := time.Now()
	err := h.Host.Load(context.Background(), host.Spec{Name: "ledger", Path: wasm,
		Subjects: []string{"ledger.in"}, Grants: host.Grants{Publish: []string{"ledger.seen"}},
		Durable: &host.Durable{Stream: "THREE", Replicas: 3}})
	if err == nil {
		t.Fatal("a stream of three replicas was made on one server")
	}
	if errors.Is(err, host.ErrJetStreamUnavailable) {
		t.Errorf("a placement that cannot ever succeed is marked as worth waiting for: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `plugin "ledger"`) || !strings.Contains(msg, "THREE") || !strings.Contains(msg, "replicas") {
		t.Errorf("error does not name the plugin, stream and cause: %v", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("refused after %s; want at once", took)
	}
	rd := h.Readiness()
	if len(rd.Plugins) != 1 || rd.Plugins[0].Plugin != "ledger" || rd.Plugins[0].State != host.StateRefused ||
		!strings.Contains(rd.Plugins[0].Reason, "THREE") {
		t.Errorf("readiness: %+v", rd.Plugins)
	}
}
