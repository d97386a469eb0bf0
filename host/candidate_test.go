package host_test

import (
	"context"
	"encoding/json"
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

const (
	greetV2Src    = "testdata/greetv2"
	greetWorseSrc = "testdata/greetworse"
)

func TestShadowComparesRepliesAndMakesNoSideEffect(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) {
		s.Grants.Publish = []string{"greet.audit"}
	})
	v2, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src), Mode: host.CandidateShadow,
		Shadow: host.ShadowOptions{Diffs: 3}})
	if err != nil {
		t.Fatal(err)
	}
	// What the shadow would publish would come on the host's connection,
	// before the sentinel the test publishes after it.
	audit := make(chan *nats.Msg, 64)
	sub, err := h.Conn().ChanSubscribe("greet.audit", audit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })

	const n = 30
	for i := range n {
		name := fmt.Sprintf("Ada%d", i)
		if m := h.Request("greet", []byte(name), 5*time.Second); string(m.Data) != "Hello, "+name+"!" {
			t.Fatalf("reply %q: the stable version answers while a shadow runs", m.Data)
		}
	}
	var rep host.ShadowReport
	trellistest.WaitFor(t, 10*time.Second, "30 comparisons", func() bool {
		rep, err = h.ShadowReport("greet", v2)
		return err == nil && rep.Compared == n
	})
	if rep.Copied != n || rep.Differed != n || rep.Matched != 0 || rep.CandidateErrors != 0 {
		t.Fatalf("report %+v: want %d copied, compared and differed", rep, n)
	}
	if len(rep.Diffs) != 3 {
		t.Fatalf("diff samples %+v: want 3", rep.Diffs)
	}
	for _, d := range rep.Diffs {
		if d.Stable != "Hello, "+d.Request+"!" || d.Candidate != "Hello, "+d.Request+"." || d.Subject != "greet" {
			t.Fatalf("diff sample %+v: want the request, the stable's and the shadow's replies", d)
		}
	}
	if rep.SideEffects["publish"] != n || rep.SideEffects["kv_write"] != n {
		t.Fatalf("side effects %v: want %d publishes and KV writes recorded", rep.SideEffects, n)
	}
	if len(rep.Effects) != 2 || rep.Effects[0].Performed || rep.Effects[0].Target != "greet.audit" {
		t.Fatalf("effects %+v: want greet.audit and greeted, not performed", rep.Effects)
	}
	if err := h.Conn().Publish("greet.audit", []byte("sentinel")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-audit:
		if string(m.Data) != "sentinel" {
			t.Fatalf("the shadow's publish %q reached the bus", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sentinel not received")
	}
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), host.KVBucket)
	if err == nil {
		if _, err := kv.Get(t.Context(), "greet.greeted"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("the shadow's KV write was made: get greet.greeted: %v", err)
		}
	}
	infos := h.Candidates("greet")
	if len(infos) != 1 || infos[0].Mode != host.CandidateShadow || infos[0].Messages != n || infos[0].Shadow == nil {
		t.Fatalf("Candidates = %+v", infos)
	}
	if err := h.RemoveCandidate(t.Context(), "greet", v2); err != nil {
		t.Fatal(err)
	}
	if got := h.Candidates("greet"); len(got) != 0 {
		t.Fatalf("after RemoveCandidate: %+v", got)
	}
}

func TestShadowMayMakeSideEffectsTheOperatorAllows(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) { s.Grants.Publish = []string{"greet.audit"} })
	audit, err := h.Client().SubscribeSync("greet.audit")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Client().Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src), Mode: host.CandidateShadow,
		Shadow: host.ShadowOptions{AllowPublish: true}}); err != nil {
		t.Fatal(err)
	}
	h.Request("greet", []byte("Ada"), 5*time.Second)
	m, err := audit.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "Ada" {
		t.Fatalf("allowed publish: %v %v", m, err)
	}
}

func TestCandidateInputsAreBounded(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	h.Load("allow", trellistest.Wasm(t, "../plugins/split"), func(s *host.Spec) {
		s.Policy = true
		s.Config = map[string]string{"targets": "greet=1"}
	})
	v2 := trellistest.Wasm(t, greetV2Src)
	worse := trellistest.Wasm(t, greetWorseSrc)
	stable := h.Plugins()[1].Version
	cases := []struct {
		name, plugin string
		c            host.Candidate
		want         string
	}{
		{"not loaded", "nope", host.Candidate{Path: v2}, `plugin "nope" is not loaded`},
		{"policy", "allow", host.Candidate{Path: v2}, "is a policy"},
		{"the stable itself", "greet", host.Candidate{Path: trellistest.Wasm(t, greetSrc)}, "version " + stable + " is the one serving"},
		{"neither path nor wasm", "greet", host.Candidate{}, "neither Path nor Wasm"},
		{"bad mode", "greet", host.Candidate{Path: v2, Mode: "loud"}, `candidate mode "loud"`},
		{"canary mode", "greet", host.Candidate{Path: v2, Mode: host.CandidateCanary}, "through StartRollout"},
		{"sample rate", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{SampleRate: 1.5}}, "sample rate 1.5"},
		{"negative sample rate", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{SampleRate: -0.1}}, "sample rate -0.1"},
		{"rate", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{MaxPerSecond: host.MaxShadowRate + 1}}, "MaxShadowRate"},
		{"diffs", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{Diffs: host.MaxShadowDiffs + 1}}, "MaxShadowDiffs"},
		{"mask fields", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{IgnoreFields: make([]string, host.MaxMaskFields+1)}}, "MaxMaskFields"},
		{"mask field", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{IgnoreFields: []string{strings.Repeat("a", host.MaxMaskFieldLen+1)}}}, "MaxMaskFieldLen"},
		{"mask path", "greet", host.Candidate{Path: v2, Shadow: host.ShadowOptions{IgnoreFields: []string{"a..b"}}}, "dotted path"},
	}
	for _, tc := range cases {
		if _, err := h.AddCandidate(t.Context(), tc.plugin, tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}

	// MaxCandidates: a third is refused, and one version is not added twice.
	if _, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: v2}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: v2}); err == nil || !strings.Contains(err.Error(), "is a candidate already") {
		t.Errorf("same version twice: %v", err)
	}
	worseV, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: worse})
	if err != nil {
		t.Fatal(err)
	}
	third := trellistest.Wasm(t, echoSrc)
	if _, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: third}); err == nil || !strings.Contains(err.Error(), "MaxCandidates") {
		t.Errorf("a third candidate: %v", err)
	}

	plans := []struct {
		name string
		r    host.Rollout
		want string
	}{
		{"too many steps", host.Rollout{Steps: make([]float64, host.MaxRolloutSteps+1)}, "MaxRolloutSteps"},
		{"decreasing", host.Rollout{Steps: []float64{0.5, 0.25}}, "increasing"},
		{"over 100%", host.Rollout{Steps: []float64{0.5, 1.5}}, "at most 1"},
		{"zero share", host.Rollout{Steps: []float64{0, 1}}, "above 0"},
		{"tiny share", host.Rollout{Steps: []float64{0.00001, 1}}, "smallest share"},
		{"short step", host.Rollout{StepDuration: time.Millisecond}, "step duration 1ms"},
		{"long step", host.Rollout{StepDuration: 48 * time.Hour}, "step duration 48h0m0s"},
		{"error ratio", host.Rollout{MaxErrorRatio: 2}, "max error ratio 2"},
		{"latency ratio", host.Rollout{MaxLatencyRatio: 0.5}, "MaxLatencyRatioLimit"},
		{"min messages", host.Rollout{MinMessages: host.MaxMinMessages + 1}, "MaxMinMessages"},
		{"interval", host.Rollout{StepDuration: time.Second, Interval: 2 * time.Second}, "interval 2s"},
	}
	for _, p := range plans {
		if err := h.StartRollout("greet", worseV, p.r); err == nil || !strings.Contains(err.Error(), p.want) {
			t.Errorf("%s: %v, want an error with %q", p.name, err, p.want)
		}
	}
	if err := h.StartRollout("greet", "000000000000", host.Rollout{}); !errors.Is(err, host.ErrNoCandidate) {
		t.Errorf("unknown version: %v", err)
	}
	for _, s := range []string{"-1%", "101%", "x", ""} {
		if _, err := host.ParsePercent(s); err == nil {
			t.Errorf("ParsePercent(%q) accepted", s)
		}
	}
	if got, err := host.ParseShares("5%,25%, 100"); err != nil || len(got) != 3 || got[0] != 0.05 || got[2] != 1 {
		t.Errorf("ParseShares = %v, %v", got, err)
	}
}

// traffic sends requests to a subject at a steady pace, each with a reply
// subject of its own, and counts the replies to each, so that a test can
// show that no message was lost or answered twice.
type traffic struct {
	t       *testing.T
	nc      *nats.Conn
	subject string
	prefix  string

	mu      sync.Mutex
	sent    int
	replies map[string]int // by reply subject
	bodies  map[string]int // by reply body, error replies as "error CODE"

	stop chan struct{}
	done chan struct{}
}

func startTraffic(t *testing.T, nc *nats.Conn, subject string, every time.Duration) *traffic {
	t.Helper()
	tr := &traffic{t: t, nc: nc, subject: subject, prefix: nats.NewInbox(), replies: map[string]int{}, bodies: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	sub, err := nc.Subscribe(tr.prefix+".>", func(m *nats.Msg) {
		body := string(m.Data)
		if code := m.Header.Get(abi.HeaderErrorCode); code != "" {
			body = "error " + code
		}
		tr.mu.Lock()
		tr.replies[m.Subject]++
		tr.bodies[body]++
		tr.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			tr.mu.Lock()
			tr.sent++
			tr.mu.Unlock()
			if err := nc.PublishRequest(subject, fmt.Sprintf("%s.%d", tr.prefix, i), []byte("Ada")); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		tr.halt()
		sub.Unsubscribe()
	})
	return tr
}

func (tr *traffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

// finish stops sending, waits for every request's reply, and fails the
// test if any request got none or more than one. It returns the replies
// by body.
func (tr *traffic) finish() (sent int, bodies map[string]int) {
	tr.t.Helper()
	tr.halt()
	trellistest.WaitFor(tr.t, 20*time.Second, "a reply to every request", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.replies) == tr.sent
	})
	// A second reply to any of them would have come before the reply to
	// a request sent after them all had been answered.
	if _, err := tr.nc.Request(tr.subject, []byte("last"), 10*time.Second); err != nil {
		tr.t.Fatalf("last request: %v", err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for subj, n := range tr.replies {
		if n != 1 {
			tr.t.Errorf("request %s answered %d times", subj, n)
		}
	}
	out := map[string]int{}
	for k, v := range tr.bodies {
		out[k] = v
	}
	return tr.sent, out
}

// deployEvents collects the DeployEvents published for plugin.
func deployEvents(t *testing.T, nc *nats.Conn, plugin string) func() []host.DeployEvent {
	t.Helper()
	var mu sync.Mutex
	var got []host.DeployEvent
	sub, err := nc.Subscribe(host.DeploySubjectPrefix+plugin, func(m *nats.Msg) {
		var e host.DeployEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Errorf("deploy event %q: %v", m.Data, err)
			return
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return func() []host.DeployEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]host.DeployEvent(nil), got...)
	}
}

func TestCanaryWorseVersionIsRolledBack(t *testing.T) {
	cases := []struct {
		name   string
		config map[string]string
		reason string
	}{
		{"errors", map[string]string{"fail_every": "3"}, "max error ratio"},
		{"slower", map[string]string{"sleep_ms": "50"}, "max latency ratio"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := trellistest.NewHost(t)
			h.Load("greet", trellistest.Wasm(t, greetSrc))
			stable := h.Plugins()[0].Version
			events := deployEvents(t, h.Client(), "greet")
			worse, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetWorseSrc), Config: tc.config})
			if err != nil {
				t.Fatal(err)
			}
			tr := startTraffic(t, h.Client(), "greet", 4*time.Millisecond)
			start := time.Now()
			// Steps long enough that only a breach can end the rollout in time.
			if err := h.StartRollout("greet", worse, host.Rollout{Steps: []float64{0.3, 1}, StepDuration: time.Minute,
				MinMessages: 15, Interval: 20 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			st, err := h.WaitRollout(ctx, "greet")
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if st.State != host.RolloutRolledBack || !strings.Contains(st.Reason, tc.reason) || st.Step != 1 {
				t.Fatalf("rollout ended %+v, want rolled back at step 1 for %q", st, tc.reason)
			}
			t.Logf("rolled back after %v: %s", took, st.Reason)
			if got := h.Candidates("greet"); len(got) != 0 {
				t.Fatalf("candidates after a rollback: %+v", got)
			}
			if v := h.Plugins()[0].Version; v != stable {
				t.Fatalf("stable version %s after a rollback, want %s", v, stable)
			}
			sent, bodies := tr.finish()
			if tc.name == "errors" && bodies["error 500"] == 0 {
				t.Fatalf("replies %v: the canary answered nothing", bodies)
			}
			if bodies["Hello, Ada!"] == 0 || sent < 20 {
				t.Fatalf("replies %v of %d sent", bodies, sent)
			}
			if !h.WaitLog(5*time.Second, "rollout", "decision=rolled_back", "version="+worse) {
				t.Fatal("no log line for the rollback")
			}
			trellistest.WaitFor(t, 5*time.Second, "the rollback's deploy event", func() bool {
				ev := events()
				return len(ev) == 2 && ev[0].Decision == "started" && ev[1].Decision == "rolled_back" && ev[1].Reason == st.Reason
			})
			if v, _ := h.Scrape().Value("trellis_rollout_decisions_total", "plugin", "greet", "decision", "rolled_back"); v != 1 {
				t.Fatalf("trellis_rollout_decisions_total{decision=rolled_back} = %v", v)
			}
		})
	}
}

func TestCanaryGoodVersionIsPromoted(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	events := deployEvents(t, h.Client(), "greet")
	stable := h.Plugins()[0].Version
	v2, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src),
		Config: map[string]string{"audit": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, h.Client(), "greet", 4*time.Millisecond)
	start := time.Now()
	plan := host.Rollout{Steps: []float64{0.25, 0.5, 1}, StepDuration: 300 * time.Millisecond, MinMessages: 15,
		Interval: 20 * time.Millisecond, MaxLatencyRatio: 3, LatencyFloor: 20 * time.Millisecond}
	if err := h.StartRollout("greet", v2, plan); err != nil {
		t.Fatal(err)
	}
	// While it runs, ls and the dashboard see its share and step.
	trellistest.WaitFor(t, 10*time.Second, "the rollout's second step", func() bool {
		info := h.Plugins()[0]
		return info.Rollout != nil && info.Rollout.Step >= 2 && len(info.Candidates) == 1 && info.Candidates[0].Mode == host.CandidateCanary
	})
	m := h.Scrape()
	for _, v := range [][2]string{{stable, "stable"}, {v2, "canary"}} {
		if n, _ := m.Value("trellis_version_messages_total", "plugin", "greet", "version", v[0], "track", v[1]); n == 0 {
			t.Errorf("trellis_version_messages_total{version=%s,track=%s} = 0", v[0], v[1])
		}
	}
	if share, ok := m.Value("trellis_version_share", "plugin", "greet", "version", v2); !ok || share < 0.5 {
		t.Errorf("trellis_version_share = %v at step 2 or later, want 0.5 or more", share)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := h.WaitRollout(ctx, "greet")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if st.State != host.RolloutPromoted || st.Step != 3 {
		t.Fatalf("rollout ended %+v, want promoted after step 3", st)
	}
	t.Logf("promoted after %v", took)
	if info := h.Plugins()[0]; info.Version != v2 || len(info.Candidates) != 0 {
		t.Fatalf("after promotion: %+v", info)
	}
	sent, bodies := tr.finish()
	if bodies["Hello, Ada."] == 0 || bodies["Hello, Ada!"] == 0 || len(bodies) != 2 {
		t.Fatalf("replies %v of %d: want both versions' and nothing else", bodies, sent)
	}
	trellistest.WaitFor(t, 5*time.Second, "the promotion's deploy event", func() bool {
		ev := events()
		return len(ev) == 4 && ev[3].Decision == "promoted" && ev[3].Version == v2
	})
	if e, ok := h.LastReload("greet"); !ok || e.Kind != host.EventPromoted {
		t.Fatalf("last reload %+v", e)
	}
}

func TestAbortAndPromoteByTheOperator(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	v2, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StartRollout("greet", v2, host.Rollout{StepDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := h.StartRollout("greet", v2, host.Rollout{}); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("second rollout: %v", err)
	}
	if err := h.AbortRollout(t.Context(), "greet", "not today"); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Rollout("greet"); st.State != host.RolloutRolledBack || st.Reason != "aborted: not today" {
		t.Fatalf("after abort: %+v", st)
	}
	if len(h.Candidates("greet")) != 0 {
		t.Fatal("the aborted canary is still a candidate")
	}
	v2, err = h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Promote(t.Context(), "greet", v2); err != nil {
		t.Fatal(err)
	}
	if m := h.Request("greet", []byte("Ada"), 5*time.Second); string(m.Data) != "Hello, Ada." {
		t.Fatalf("after Promote: %q", m.Data)
	}
}

func TestUnloadClosesCandidatesAndStopsTheRollout(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	v2, err := h.AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StartRollout("greet", v2, host.Rollout{StepDuration: time.Hour, Interval: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := h.Unload(t.Context(), "greet"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := h.WaitRollout(ctx, "greet")
	if err != nil || st.State != host.RolloutStopped {
		t.Fatalf("rollout after unload: %+v %v", st, err)
	}
}
