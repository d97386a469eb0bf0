package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const greetSameSrc = "testdata/greetsame"

// recordGreet loads greet recording its subject, sends n requests and
// waits for all n to be stored.
func recordGreet(t *testing.T, h *trellistest.Host, n int, rec host.Record) {
	t.Helper()
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) {
		s.Grants.Publish = []string{"greet.audit"}
		s.Record = &rec
	})
	for i := range n {
		name := fmt.Sprintf("Ada%d", i)
		if m := h.Request("greet", []byte(name), 5*time.Second); string(m.Data) != "Hello, "+name+"!" {
			t.Fatalf("reply %q while recording", m.Data)
		}
	}
	trellistest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d messages recorded", n), func() bool {
		st, err := h.Recording(t.Context(), "greet")
		return err == nil && st.Recorded == uint64(n)
	})
}

func TestRecordThenReplayAgainstSameAndDifferentVersions(t *testing.T) {
	h := trellistest.NewHost(t)
	const n = 20
	recordGreet(t, h, n, host.Record{Subjects: []string{"greet"}, MaxAge: 30 * time.Minute, MaxBytes: 8 << 20})

	// The stream has the limits the record block gave.
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), "TRELLIS_RECORD_greet")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.MaxAge != 30*time.Minute || cfg.MaxBytes != 8<<20 || cfg.Discard != jetstream.DiscardOld ||
		cfg.MaxMsgSize != 2*host.MaxRecordedMessage || s.CachedInfo().State.Msgs != n {
		t.Fatalf("stream %+v, state %+v: want max age 30m, 8 MiB, discard old, %d messages", cfg, s.CachedInfo().State, n)
	}
	if v, _ := h.Scrape().Value("trellis_recorded_messages_total", "plugin", "greet"); v != n {
		t.Fatalf("trellis_recorded_messages_total = %v, want %d", v, n)
	}

	// A version that answers the same, and publishes: no difference, and
	// nothing on the bus.
	audit := make(chan *nats.Msg, 64)
	sub, err := h.Conn().ChanSubscribe("greet.audit", audit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	rep, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: trellistest.Wasm(t, greetSameSrc), Since: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != n || rep.Same != n || rep.Different != 0 || rep.Errors != 0 || len(rep.Diffs) != 0 || rep.Stopped != "" {
		t.Fatalf("replay against the same answers: %+v", rep)
	}
	if rep.SideEffects["publish"] != n || len(rep.Effects) == 0 || rep.Effects[0].Performed {
		t.Fatalf("side effects %v %+v: want %d publishes, recorded and not made", rep.SideEffects, rep.Effects, n)
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 {
		t.Fatalf("latencies p50 %v p99 %v", rep.P50, rep.P99)
	}
	if err := h.Conn().Publish("greet.audit", []byte("sentinel")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-audit:
		if string(m.Data) != "sentinel" {
			t.Fatalf("the replayed version's publish %q reached the bus", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sentinel not received")
	}

	if kv, err := js.KeyValue(t.Context(), host.KVBucket); err == nil {
		if _, err := kv.Get(t.Context(), "greet.greeted"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("the replayed version's KV write was made: get greet.greeted: %v", err)
		}
	}

	// A version that answers differently, as a candidate: every answer
	// differs, and the report shows some.
	v2, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src)})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Version: v2, Subject: "greet", Diffs: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Version != v2 || rep.Replayed != n || rep.Different != n || rep.Same != 0 || len(rep.Diffs) != 4 {
		t.Fatalf("replay against v2: %+v", rep)
	}
	for _, d := range rep.Diffs {
		if d.Stable != "Hello, "+d.Request+"!" || d.Candidate != "Hello, "+d.Request+"." || d.Subject != "greet" {
			t.Fatalf("diff %+v: want the recorded request, the stable's reply and v2's", d)
		}
	}
	var seen bool
	for _, e := range h.Events() {
		seen = seen || (e.Kind == host.EventReplayed && e.Version == v2 && strings.Contains(e.Detail, "20 replayed: 0 same, 20 different"))
	}
	if !seen {
		t.Fatalf("events %+v: no replayed event", h.Events())
	}
	// The candidate itself took no traffic from the replay.
	if c := h.Candidates("greet"); len(c) != 1 || c[0].Messages != 0 {
		t.Fatalf("candidates %+v: the replay ran on a version of its own", c)
	}
	// Limit and a subject that matches nothing.
	if rep, err = h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Limit: 5}); err != nil || rep.Replayed != 5 {
		t.Fatalf("limit 5: %+v %v", rep, err)
	}
	if rep, err = h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Subject: "other.>"}); err != nil || rep.Replayed != 0 {
		t.Fatalf("subject other.>: %+v %v", rep, err)
	}
}

func TestReplayRespectsItsRate(t *testing.T) {
	h := trellistest.NewHost(t)
	recordGreet(t, h, 12, host.Record{})
	start := time.Now()
	rep, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: trellistest.Wasm(t, greetSameSrc), Rate: 40, Limit: 11})
	took := time.Since(start)
	if err != nil || rep.Replayed != 11 || rep.Same != 11 {
		t.Fatalf("replay: %+v %v", rep, err)
	}
	// 11 messages at 40 a second: 10 intervals of 25 ms.
	if took < 240*time.Millisecond || took > 10*time.Second {
		t.Fatalf("11 messages at 40/s took %v, want about 250ms", took)
	}
	fast, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: trellistest.Wasm(t, greetSameSrc), Limit: 11})
	if err != nil || fast.Replayed != 11 {
		t.Fatalf("replay: %+v %v", fast, err)
	}
	t.Logf("11 messages: %.3fs at 40/s, %.3fs as fast as possible", rep.Seconds, fast.Seconds)
	if fast.Seconds >= rep.Seconds {
		t.Fatalf("as fast as possible (%.3fs) not faster than at 40/s (%.3fs)", fast.Seconds, rep.Seconds)
	}
}

func TestRecordingSwitchesAtRunTime(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	if st, err := h.Recording(t.Context(), "greet"); err != nil || st.On {
		t.Fatalf("before: %+v %v", st, err)
	}
	h.Request("greet", []byte("before"), 5*time.Second)
	st, err := h.SetRecording(t.Context(), "greet", true)
	if err != nil || !st.On || len(st.Subjects) != 1 || st.Subjects[0] != "greet" || st.MaxAge != host.DefaultRecordAge {
		t.Fatalf("on: %+v %v: want all its subjects with the defaults", st, err)
	}
	h.Request("greet", []byte("during"), 5*time.Second)
	trellistest.WaitFor(t, 10*time.Second, "one message recorded", func() bool {
		st, err := h.Recording(t.Context(), "greet")
		return err == nil && st.Recorded == 1 && st.Messages == 1
	})
	if st, err = h.SetRecording(t.Context(), "greet", false); err != nil || st.On {
		t.Fatalf("off: %+v %v", st, err)
	}
	h.Request("greet", []byte("after"), 5*time.Second)
	if st, err = h.SetRecording(t.Context(), "greet", true); err != nil || !st.On {
		t.Fatalf("on again: %+v %v", st, err)
	}
	h.Request("greet", []byte("again"), 5*time.Second)
	trellistest.WaitFor(t, 10*time.Second, "two messages recorded", func() bool {
		st, err := h.Recording(t.Context(), "greet")
		return err == nil && st.Recorded == 2 && st.Messages == 2
	})
	// What was recorded is what came while on, in order.
	rep, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: trellistest.Wasm(t, greetV2Src)})
	if err != nil || rep.Replayed != 2 || rep.Different != 2 || len(rep.Diffs) != 2 ||
		rep.Diffs[0].Request != "during" || rep.Diffs[1].Request != "again" {
		t.Fatalf("replay: %+v %v: want during and again", rep, err)
	}
}

func TestRecordAndReplayInputsAreBounded(t *testing.T) {
	h := trellistest.NewHost(t)
	greet := trellistest.Wasm(t, greetSrc)
	many := make([]string, host.MaxRecordSubjects+1)
	for i := range many {
		many[i] = "greet"
	}
	specs := []struct {
		name string
		rec  host.Record
		want string
	}{
		{"too many subjects", host.Record{Subjects: many}, "MaxRecordSubjects"},
		{"outside its subjects", host.Record{Subjects: []string{"orders.>"}}, `record subject "orders.>" is not within its subjects [greet]`},
		{"wider than its subjects", host.Record{Subjects: []string{">"}}, "is not within"},
		{"bad subject", host.Record{Subjects: []string{"a..b"}}, "record subject"},
		{"short max age", host.Record{MaxAge: time.Millisecond}, "record max age 1ms"},
		{"long max age", host.Record{MaxAge: 30 * 24 * time.Hour}, "MaxRecordAge"},
		{"huge max bytes", host.Record{MaxBytes: 1 << 40}, "MaxRecordBytes"},
		{"tiny max bytes", host.Record{MaxBytes: 10}, "record max bytes 10"},
	}
	for _, tc := range specs {
		rec := tc.rec
		err := h.Host.Load(t.Context(), host.Spec{Name: "greet", Path: greet, Record: &rec, Grants: host.Grants{Subscribe: []string{">"}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if err := h.Host.Load(t.Context(), host.Spec{Name: "p", Path: greet, Policy: true, Record: &host.Record{}}); err == nil ||
		!strings.Contains(err.Error(), "not to policies") {
		t.Errorf("a policy that records: %v", err)
	}

	h.Load("greet", greet)
	if _, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: greet}); err == nil || !strings.Contains(err.Error(), "has no recording") {
		t.Errorf("replay without a recording: %v", err)
	}
	opts := []struct {
		name string
		o    host.ReplayOptions
		want string
	}{
		{"no plugin", host.ReplayOptions{Path: greet}, "no plugin"},
		{"not loaded", host.ReplayOptions{Plugin: "nope", Path: greet}, "is not loaded"},
		{"huge limit", host.ReplayOptions{Plugin: "greet", Path: greet, Limit: host.MaxReplayLimit + 1}, "MaxReplayLimit"},
		{"negative limit", host.ReplayOptions{Plugin: "greet", Path: greet, Limit: -1}, "replay limit -1"},
		{"negative since", host.ReplayOptions{Plugin: "greet", Path: greet, Since: -time.Hour}, "replay since -1h0m0s"},
		{"long since", host.ReplayOptions{Plugin: "greet", Path: greet, Since: 365 * 24 * time.Hour}, "MaxRecordAge"},
		{"huge rate", host.ReplayOptions{Plugin: "greet", Path: greet, Rate: 1e9}, "MaxReplayRate"},
		{"bad subject", host.ReplayOptions{Plugin: "greet", Path: greet, Subject: "a b"}, "replay subject"},
		{"two sources", host.ReplayOptions{Plugin: "greet", Path: greet, Version: "abc"}, "not both"},
		{"no candidate", host.ReplayOptions{Plugin: "greet", Version: "abc"}, "no such candidate"},
		{"which version", host.ReplayOptions{Plugin: "greet"}, "which version"},
		{"mask", host.ReplayOptions{Plugin: "greet", Path: greet, IgnoreFields: make([]string, host.MaxMaskFields+1)}, "MaxMaskFields"},
		{"not a module", host.ReplayOptions{Plugin: "greet", Wasm: []byte("nope")}, "replay"},
	}
	for _, tc := range opts {
		if _, err := h.Replay(t.Context(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.SetRecording(ctx, "nope", true); err == nil || !strings.Contains(err.Error(), "is not loaded") {
		t.Errorf("SetRecording of a plugin not loaded: %v", err)
	}
}

func TestRecordingDropsWhatIsTooBig(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) { s.Record = &host.Record{} })
	big := strings.Repeat("x", host.MaxRecordedMessage/2+1) // with its reply, over the cap
	h.Request("greet", []byte(big), 5*time.Second)
	h.Request("greet", []byte("small"), 5*time.Second)
	trellistest.WaitFor(t, 10*time.Second, "the small one recorded", func() bool {
		st, _ := h.Recording(t.Context(), "greet")
		return st.Recorded == 1
	})
	st, _ := h.Recording(t.Context(), "greet")
	if st.Dropped["too_big"] != 1 || st.Messages != 1 {
		t.Fatalf("status %+v: want one dropped as too big, one stored", st)
	}
	if v, _ := h.Scrape().Value("trellis_record_dropped_total", "plugin", "greet", "reason", "too_big"); v != 1 {
		t.Fatalf("trellis_record_dropped_total{too_big} = %v", v)
	}
}

func TestRecordingNeverHoldsUpServing(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) { s.Record = &host.Record{} })
	// The stream goes away under the recording: every store fails.
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "TRELLIS_RECORD_greet"); err != nil {
		t.Fatal(err)
	}
	const n = 200
	start := time.Now()
	for i := range n {
		name := fmt.Sprint("Ada", i)
		if m := h.Request("greet", []byte(name), 5*time.Second); string(m.Data) != "Hello, "+name+"!" {
			t.Fatalf("reply %q", m.Data)
		}
	}
	t.Logf("%d requests answered in %v with every store failing", n, time.Since(start))
	trellistest.WaitFor(t, 10*time.Second, "every message counted dropped", func() bool {
		st, _ := h.Recording(t.Context(), "greet")
		return st.Dropped["failed"]+st.Dropped["queue_full"] == n
	})
	if st, _ := h.Recording(t.Context(), "greet"); st.Recorded != 0 {
		t.Fatalf("status %+v: nothing can have been stored", st)
	}
}

func TestRecordedEventsKeepTheirHeadersAndReplayTheSame(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) { s.Record = &host.Record{} })
	m := nats.NewMsg("greet")
	m.Header.Set("X-Order", "42")
	m.Data = []byte("Ada")
	if err := h.Client().PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	trellistest.WaitFor(t, 10*time.Second, "the event recorded", func() bool {
		st, _ := h.Recording(t.Context(), "greet")
		return st.Recorded == 1
	})
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), "TRELLIS_RECORD_greet")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(t.Context(), "trellis.record.greet.greet")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Subject string              `json:"subject"`
		Header  map[string][]string `json:"header"`
		Data    []byte              `json:"data"`
		Request bool                `json:"request"`
		Known   bool                `json:"known"`
		Version string              `json:"version"`
	}
	if err := json.Unmarshal(raw.Data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Subject != "greet" || rec.Header["X-Order"][0] != "42" || string(rec.Data) != "Ada" || rec.Request || !rec.Known ||
		rec.Version != h.Plugins()[0].Version {
		t.Fatalf("stored %s", raw.Data)
	}
	rep, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: trellistest.Wasm(t, greetV2Src)})
	if err != nil || rep.Replayed != 1 || rep.Same != 1 {
		t.Fatalf("an event, answered by neither version: %+v %v", rep, err)
	}
}

func TestReplaysAreCappedAndStopWithTheirContext(t *testing.T) {
	h := trellistest.NewHost(t)
	recordGreet(t, h, 5, host.Record{})
	same := trellistest.Wasm(t, greetSameSrc)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		rep host.ReplayReport
		err error
	}
	// Two slow replays, one after the other so that neither is refused,
	// each known to run by its log line.
	done := make(chan result, 2)
	for _, limit := range []int{4, 3} {
		go func() {
			rep, err := h.Replay(ctx, host.ReplayOptions{Plugin: "greet", Path: same, Rate: 0.2, Limit: limit})
			done <- result{rep, err}
		}()
		if !h.WaitLog(10*time.Second, "replay started", fmt.Sprintf("messages=%d", limit)) {
			t.Fatalf("the replay of %d did not start", limit)
		}
	}
	if _, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: same, Limit: 1}); err == nil || !strings.Contains(err.Error(), "MaxReplays") {
		t.Fatalf("a third replay while two run: %v, want it refused (MaxReplays)", err)
	}
	cancel()
	for range 2 {
		r := <-done
		// At 0.2 a second the first message runs at once and the second 5 s
		// later: a cancelled replay ends with at most its first (none, when a
		// loaded machine had not read it from the stream yet).
		if r.err != nil || !strings.HasSuffix(r.rep.Stopped, context.Canceled.Error()) || r.rep.Replayed > 1 {
			t.Fatalf("a replay cancelled: %+v %v, want it stopped with at most its first message", r.rep, r.err)
		}
	}
	if rep, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: same}); err != nil || rep.Replayed != 5 {
		t.Fatalf("after: %+v %v", rep, err)
	}
}

// Two hosts on one bus serving greet in one queue group, both recording:
// each records what it served into the one stream, so the stream holds
// every request once, and a replay on either host reads all of them.
func TestTwoHostsRecordIntoOneStream(t *testing.T) {
	a := trellistest.NewHost(t)
	b := trellistest.NewHost(t, func(o *host.Options) { o.Bus = bus.Options{URL: a.ClientURL()} })
	rec := host.Record{Subjects: []string{"greet"}}
	for _, h := range []*trellistest.Host{a, b} {
		h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) {
			s.Grants.Publish = []string{"greet.audit"}
			s.Record = &rec
		})
	}
	const n = 40
	for i := range n {
		name := fmt.Sprintf("Ada%d", i)
		if m := a.Request("greet", []byte(name), 5*time.Second); string(m.Data) != "Hello, "+name+"!" {
			t.Fatalf("reply %q while recording", m.Data)
		}
	}
	var byA, byB uint64
	trellistest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d messages recorded by the two hosts", n), func() bool {
		sa, errA := a.Recording(t.Context(), "greet")
		sb, errB := b.Recording(t.Context(), "greet")
		byA, byB = sa.Recorded, sb.Recorded
		return errA == nil && errB == nil && byA+byB == n
	})
	if byA == 0 || byB == 0 {
		t.Fatalf("recorded by a %d, by b %d: the queue group should have given both some of %d", byA, byB, n)
	}
	js, err := jetstream.New(a.Client())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), "TRELLIS_RECORD_greet")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		var r struct{ Data []byte }
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatal(err)
		}
		seen[string(r.Data)]++
	}
	for i := range n {
		if name := fmt.Sprintf("Ada%d", i); seen[name] != 1 {
			t.Fatalf("request %s recorded %d times", name, seen[name])
		}
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.Msgs != n {
		t.Fatalf("stream state %+v (%v): want %d messages", info.State, err, n)
	}
	for _, h := range []*trellistest.Host{a, b} {
		rep, err := h.Replay(t.Context(), host.ReplayOptions{Plugin: "greet", Path: trellistest.Wasm(t, greetSameSrc), Since: time.Hour})
		if err != nil || rep.Replayed != n || rep.Same != n {
			t.Fatalf("replay: %+v %v; want all %d, the same", rep, err, n)
		}
	}
}
