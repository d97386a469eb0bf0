package host_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/sign"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// clusterHosts starts n hosts with rollouts across the cluster, the first
// embedding the NATS server and the others attached to it by URL, each
// running greet, and waits until each has its rollouts bucket open.
func clusterHosts(t *testing.T, n int) []*trellistest.Host {
	t.Helper()
	return clusterHostsLease(t, n, 3*time.Second)
}

// clusterHostsLease is clusterHosts with the decider's lease given. A
// lease of a second or less may lapse on a loaded machine, where a
// race-detector build compiling a candidate on two other hosts can keep
// the decider from renewing it in time: another host then decides.
//
// The good version's plans below have a latency floor of 250ms: they test
// what the cluster does, not the latency gate (TestCanaryWorseVersionIsRolledBack
// does), and a host's first calls to a candidate it has just compiled may
// be slow on a loaded machine.
func clusterHostsLease(t *testing.T, n int, lease time.Duration) []*trellistest.Host {
	t.Helper()
	cluster := func(o *host.Options) { o.Rollouts, o.RolloutLease = host.RolloutsCluster, lease }
	hs := []*trellistest.Host{trellistest.NewHost(t, cluster)}
	for range n - 1 {
		hs = append(hs, trellistest.NewHost(t, cluster, func(o *host.Options) { o.Bus = bus.Options{URL: hs[0].ClientURL()} }))
	}
	greet := trellistest.Wasm(t, greetSrc)
	for _, h := range hs {
		h.Load("greet", greet)
		if !h.WaitLog(20*time.Second, "cluster rollouts", "host_id="+h.HostID()) {
			t.Fatal("the rollouts bucket did not open")
		}
	}
	return hs
}

// waitEnd waits for every host's view of greet's rollout to end, and
// checks it ended in state.
func waitEnd(t *testing.T, hs []*trellistest.Host, state host.RolloutState) []host.RolloutStatus {
	t.Helper()
	out := make([]host.RolloutStatus, len(hs))
	for i, h := range hs {
		trellistest.WaitFor(t, 60*time.Second, "the rollout's end on every host", func() bool {
			st, ok := h.Rollout("greet")
			out[i] = st
			return ok && st.State != host.RolloutRunning
		})
		if out[i].State != state {
			t.Fatalf("host %d: rollout ended %s (%s), want %s", i+1, out[i].State, out[i].Reason, state)
		}
	}
	return out
}

func TestClusterRolloutWorseVersionIsRolledBackOnEveryHost(t *testing.T) {
	hs := clusterHosts(t, 3)
	stable := hs[0].Plugins()[0].Version
	events := deployEvents(t, hs[0].Client(), "greet")
	worse, err := hs[0].AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetWorseSrc),
		Config: map[string]string{"fail_every": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, hs[0].Client(), "greet", 4*time.Millisecond)
	start := time.Now()
	if err := hs[0].StartRollout("greet", worse, host.Rollout{Steps: []float64{0.3, 1}, StepDuration: time.Minute,
		MinMessages: 15, Interval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ends := waitEnd(t, hs, host.RolloutRolledBack)
	t.Logf("rolled back on 3 hosts after %v: %s", time.Since(start), ends[0].Reason)

	for i, h := range hs {
		if st := ends[i]; !strings.Contains(st.Reason, "max error ratio") || st.Step != 1 {
			t.Errorf("host %d: rollout ended %+v, want rolled back at step 1 for its error ratio", i+1, st)
		}
		trellistest.WaitFor(t, 5*time.Second, "no candidate left", func() bool { return len(h.Candidates("greet")) == 0 })
		if v := h.Plugins()[0].Version; v != stable {
			t.Errorf("host %d: stable version %s after a rollback, want %s", i+1, v, stable)
		}
		if !h.WaitLog(5*time.Second, "rollout", "decision=rolled_back", "version="+worse) {
			t.Errorf("host %d: no log line for the rollback", i+1)
		}
	}
	// A host still fetching or compiling the candidate when the decider
	// rolls it back stops there; one that had it dropped it above.
	fetched := 0
	for _, h := range hs[1:] {
		if h.WaitLog(time.Second, "cluster rollout: candidate fetched", "version="+worse, host.ModulesBucket+"/") {
			fetched++
		}
	}
	t.Logf("%d of the 2 other hosts had fetched the candidate from the object store before the rollback", fetched)
	sent, bodies := tr.finish()
	if bodies["error 500"] == 0 || bodies["Hello, Ada!"] == 0 {
		t.Fatalf("replies %v of %d sent: want the canary's errors and the stable's answers", bodies, sent)
	}
	t.Logf("%d requests, each answered once: %v", sent, bodies)
	// One host decided, so one DeployEvent per decision.
	trellistest.WaitFor(t, 5*time.Second, "the deploy events", func() bool {
		ev := events()
		return len(ev) == 2 && ev[0].Decision == "started" && ev[1].Decision == "rolled_back"
	})
}

func TestClusterRolloutGoodVersionIsPromotedOnEveryHost(t *testing.T) {
	hs := clusterHosts(t, 3)
	v2, err := hs[0].AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src),
		Config: map[string]string{"audit": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, hs[0].Client(), "greet", 4*time.Millisecond)
	start := time.Now()
	plan := host.Rollout{Steps: []float64{0.25, 0.5, 1}, StepDuration: 400 * time.Millisecond, MinMessages: 15,
		Interval: 20 * time.Millisecond, MaxLatencyRatio: 3, LatencyFloor: 250 * time.Millisecond}
	if err := hs[0].StartRollout("greet", v2, plan); err != nil {
		t.Fatal(err)
	}
	if err := hs[0].StartRollout("greet", v2, plan); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("a second rollout: %v", err)
	}
	// Every host gives the canary its share of its own traffic.
	for i, h := range hs {
		trellistest.WaitFor(t, 10*time.Second, "the canary serving on every host", func() bool {
			n, _ := h.Scrape().Value("trellis_version_messages_total", "plugin", "greet", "version", v2, "track", "canary")
			return n > 0
		})
		if st, _ := h.Rollout("greet"); st.Decider != hs[0].HostID() {
			t.Errorf("host %d: decider %q, want the host the rollout started on (%s)", i+1, st.Decider, hs[0].HostID())
		}
	}
	waitEnd(t, hs, host.RolloutPromoted)
	t.Logf("promoted on 3 hosts after %v", time.Since(start))
	for i, h := range hs {
		trellistest.WaitFor(t, 10*time.Second, "the candidate as the stable version", func() bool {
			info := h.Plugins()[0]
			return info.Version == v2 && len(info.Candidates) == 0
		})
		if e, ok := h.LastReload("greet"); !ok || e.Kind != host.EventPromoted {
			t.Errorf("host %d: last reload %+v", i+1, e)
		}
		if i > 0 && !h.WaitLog(time.Second, "cluster rollout: candidate fetched", "version="+v2, host.ModulesBucket+"/") {
			t.Errorf("host %d did not fetch the candidate from the object store", i+1)
		}
	}
	sent, bodies := tr.finish()
	if bodies["Hello, Ada."] == 0 || bodies["Hello, Ada!"] == 0 || len(bodies) != 2 {
		t.Fatalf("replies %v of %d: want both versions' and nothing else", bodies, sent)
	}
	t.Logf("%d requests, each answered once: %v", sent, bodies)

	// Hosts that start after the promotion: one whose own config names the
	// version the rollout replaced catches up with it; one that runs
	// another version keeps it.
	late := func() *trellistest.Host {
		return trellistest.NewHost(t, func(o *host.Options) {
			o.Rollouts, o.RolloutLease = host.RolloutsCluster, 3*time.Second
			o.Bus = bus.Options{URL: hs[0].ClientURL()}
		})
	}
	behind, other := late(), late()
	behind.Load("greet", trellistest.Wasm(t, greetSrc))
	other.Load("greet", trellistest.Wasm(t, greetWorseSrc))
	mine := other.Plugins()[0].Version
	trellistest.WaitFor(t, 30*time.Second, "the late host on the promoted version", func() bool {
		return behind.Plugins()[0].Version == v2
	})
	if !behind.WaitLog(5*time.Second, "cluster rollout: caught up with a promotion", "version="+v2, "decided_by=") {
		t.Error("no log line for catching up")
	}
	if !other.WaitLog(20*time.Second, "cluster rollout: keeping this host's version", "version="+mine, "promoted="+v2) {
		t.Error("the host running another version did not say it keeps it")
	}
	if v := other.Plugins()[0].Version; v != mine {
		t.Errorf("the host running another version now runs %s, want its own %s", v, mine)
	}
}

func TestClusterRolloutContinuesWhenItsDeciderCloses(t *testing.T) {
	hs := clusterHosts(t, 3)
	// Started on host 2, which decides first; host 1 holds the server.
	v2, err := hs[1].AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src),
		Config: map[string]string{"audit": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, hs[0].Client(), "greet", 4*time.Millisecond)
	plan := host.Rollout{Steps: []float64{0.2, 0.5, 1}, StepDuration: 1500 * time.Millisecond, MinMessages: 15,
		Interval: 20 * time.Millisecond, MaxLatencyRatio: 3, LatencyFloor: 250 * time.Millisecond}
	if err := hs[1].StartRollout("greet", v2, plan); err != nil {
		t.Fatal(err)
	}
	decider := hs[1].HostID()
	var seen host.RolloutStatus
	var trail []string
	deadline := time.Now().Add(30 * time.Second)
	for seen.State != host.RolloutRunning || seen.Step != 2 || seen.Decider != decider {
		if time.Now().After(deadline) || seen.State != "" && seen.State != host.RolloutRunning {
			t.Fatalf("waited for step 2 under host 2's decision, host 1 saw %v", trail)
		}
		time.Sleep(5 * time.Millisecond)
		seen, _ = hs[0].Rollout("greet")
		if s := fmt.Sprintf("%s/%d/%s", seen.State, seen.Step, seen.Decider); len(trail) == 0 || trail[len(trail)-1] != s {
			trail = append(trail, s)
		}
	}
	closed := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := hs[1].Close(ctx); err != nil {
		t.Fatal(err)
	}
	rest := []*trellistest.Host{hs[0], hs[2]}
	var took time.Duration
	trellistest.WaitFor(t, 10*time.Second, "another host deciding", func() bool {
		for _, h := range rest {
			if st, _ := h.Rollout("greet"); st.Decider != "" && st.Decider != decider {
				took = time.Since(closed)
				return true
			}
		}
		return false
	})
	t.Logf("take-over: another host decided %v after the decider began to close", took)

	ends := waitEnd(t, rest, host.RolloutPromoted)
	for i, h := range rest {
		if ends[i].Decider == decider {
			t.Errorf("host %d: the closed host decided the end", i+1)
		}
		trellistest.WaitFor(t, 10*time.Second, "the candidate as the stable version", func() bool {
			return h.Plugins()[0].Version == v2
		})
	}
	if !hs[0].WaitLog(time.Second, "cluster rollout: deciding", "previous=") && !hs[2].WaitLog(time.Second, "cluster rollout: deciding", "previous=") {
		// A lease given up is taken like a free one: no previous holder.
		if !hs[0].WaitLog(time.Second, "cluster rollout: deciding") && !hs[2].WaitLog(time.Second, "cluster rollout: deciding") {
			t.Error("no log line for the take-over")
		}
	}
	sent, bodies := tr.finish()
	if bodies["Hello, Ada."] == 0 || len(bodies) > 2 {
		t.Fatalf("replies %v of %d", bodies, sent)
	}
	t.Logf("%d requests, each answered once: %v", sent, bodies)
}

// storeRecord writes a rollout record into the bucket as another client
// of the bus would.
func storeRecord(t *testing.T, kv jetstream.KeyValue, key string, rec map[string]any) {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
}

func buckets(t *testing.T, h *trellistest.Host) (jetstream.KeyValue, jetstream.ObjectStore) {
	t.Helper()
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), host.RolloutsBucket)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.ObjectStore(t.Context(), host.ModulesBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv, obj
}

func TestClusterRolloutRefusesATamperedModule(t *testing.T) {
	hs := clusterHosts(t, 3)
	stable := hs[0].Plugins()[0].Version
	kv, obj := buckets(t, hs[0])
	good, err := os.ReadFile(trellistest.Wasm(t, greetV2Src))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	module := hex.EncodeToString(sum[:])
	// The object named by the good module's hash holds other bytes of the
	// same length.
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-1] ^= 0xff
	if _, err := obj.PutBytes(t.Context(), module, tampered); err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, hs[0].Client(), "greet", 4*time.Millisecond)
	now := time.Now()
	storeRecord(t, kv, "plan.greet", map[string]any{"id": "00000000000000aa", "plugin": "greet", "version": module[:12],
		"module": module, "size": len(good), "stable": stable, "state": "running", "step": 1, "share": 0.5,
		"started": now, "step_started": now, "decider": "someone",
		"plan": host.Rollout{Steps: []float64{0.5, 1}, StepDuration: time.Minute, Interval: 20 * time.Millisecond}})
	ends := waitEnd(t, hs, host.RolloutRolledBack)
	// The first host to refuse it ends the rollout: the others refuse it
	// too, or stop fetching it.
	refusals := 0
	for _, h := range hs {
		if h.WaitLog(time.Second, "candidate module refused", host.ModulesBucket+"/"+module, "SHA-256") {
			refusals++
		}
	}
	if refusals == 0 {
		t.Error("no log line naming the tampered object")
	}
	t.Logf("%d hosts of 3 refused the object before the rollback", refusals)
	for i, h := range hs {
		if !strings.Contains(ends[i].Reason, "cannot follow") || !strings.Contains(ends[i].Reason, "SHA-256") {
			t.Errorf("host %d: rolled back for %q", i+1, ends[i].Reason)
		}
		if info := h.Plugins()[0]; info.Version != stable || len(info.Candidates) != 0 {
			t.Errorf("host %d after the refusal: %+v", i+1, info)
		}
	}
	t.Logf("refused: %s", ends[0].Reason)
	sent, bodies := tr.finish()
	if len(bodies) != 1 || bodies["Hello, Ada!"] != sent {
		t.Fatalf("replies %v of %d: want the stable's only", bodies, sent)
	}
}

func TestClusterRolloutSurvivesGarbageInTheBucket(t *testing.T) {
	hs := clusterHostsLease(t, 3, time.Second)
	stable := hs[0].Plugins()[0].Version
	kv, _ := buckets(t, hs[0])
	now := time.Now()
	valid := map[string]any{"id": "00000000000000bb", "plugin": "greet", "version": strings.Repeat("a", 12),
		"module": strings.Repeat("a", 64), "size": 100, "stable": stable, "state": "running", "step": 1, "share": 0.5,
		"started": now, "step_started": now, "decider": "someone", "plan": host.Rollout{Steps: []float64{0.5, 1}}}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		m[k] = v
		return m
	}
	tr := startTraffic(t, hs[0].Client(), "greet", 4*time.Millisecond)
	for _, g := range []struct {
		key  string
		data any // []byte as is, else JSON
		why  string
	}{
		{"plan.greet", []byte("{not json"), "not a rollout record"},
		{"plan.greet", with("step", 9), "step 9 of a plan of 2"},
		{"plan.greet", with("size", host.MaxClusterModule+1), "MaxClusterModule"},
		{"plan.greet", with("plugin", "other"), "under the key of plugin"},
		{"plan.greet", with("share", 0.7), "share 0.7 at step 1"},
		{"plan.greet", with("state", "exploded"), "state"},
		{"plan.greet", with("plan", host.Rollout{Steps: []float64{0.5, 0.2}}), "increasing"},
		{"plan.greet", []byte(strings.Repeat("x", host.MaxRolloutRecord-200)), "not a rollout record"},
		{"lease.greet", []byte("garbage"), "lease.greet"},
		{"figures.greet.intruder", []byte(`{"host":"intruder","rollout":"00000000000000bb","step":1,"canary":{"msgs":5}}`), "latency counts add up to 0"},
		{"figures.greet.intruder", []byte(`{"host":"other","rollout":"00000000000000bb","step":1}`), "out of bounds"},
		{"bogus.key", []byte("x"), "not a key of"},
	} {
		data, ok := g.data.([]byte)
		if !ok {
			data, _ = json.Marshal(g.data)
		}
		if _, err := kv.Put(t.Context(), g.key, data); err != nil {
			t.Fatalf("%s: %v", g.key, err)
		}
		for i, h := range hs {
			if !h.WaitLog(10*time.Second, "value refused", "key="+g.key, g.why) {
				t.Errorf("host %d: no log line refusing %s (%s)", i+1, g.key, g.why)
			}
		}
	}
	for i, h := range hs {
		if _, ok := h.Rollout("greet"); ok {
			t.Errorf("host %d follows a rollout made of garbage", i+1)
		}
	}
	// A real rollout starts over the garbage and runs.
	v2, err := hs[0].AddCandidate(t.Context(), "greet", host.Candidate{Path: trellistest.Wasm(t, greetV2Src),
		Config: map[string]string{"audit": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := hs[0].StartRollout("greet", v2, host.Rollout{Steps: []float64{0.3, 1}, StepDuration: time.Minute,
		MinMessages: 15, Interval: 20 * time.Millisecond, MaxLatencyRatio: 3, LatencyFloor: 250 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	trellistest.WaitFor(t, 20*time.Second, "the canary serving on every host", func() bool {
		for _, h := range hs {
			if n, _ := h.Scrape().Value("trellis_version_messages_total", "plugin", "greet", "version", v2, "track", "canary"); n == 0 {
				return false
			}
		}
		return true
	})
	// The lease was garbage, so a host took it at once. A lease held by
	// a host that never renews it is taken over once it lapses.
	ghost, _ := json.Marshal(map[string]any{"holder": "ghost", "rollout": "00000000000000cc"})
	if _, err := kv.Put(t.Context(), "lease.greet", ghost); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	var took time.Duration
	trellistest.WaitFor(t, 10*time.Second, "a host taking the ghost's lease", func() bool {
		st, _ := hs[2].Rollout("greet")
		if st.Decider != "" && st.Decider != "ghost" && time.Since(written) > 500*time.Millisecond {
			took = time.Since(written)
			return true
		}
		return false
	})
	if took < time.Second {
		t.Fatalf("the lease was taken from its holder after %v, before it lapsed (1s)", took)
	}
	t.Logf("a lease left unrenewed was taken over after %v (lease 1s)", took)
	// A running rollout's record overwritten with garbage is rolled back.
	if _, err := kv.Put(t.Context(), "plan.greet", []byte("\x00garbage")); err != nil {
		t.Fatal(err)
	}
	ends := waitEnd(t, hs, host.RolloutRolledBack)
	for i, h := range hs {
		if !strings.Contains(ends[i].Reason, "replaced by an invalid value") {
			t.Errorf("host %d: rolled back for %q", i+1, ends[i].Reason)
		}
		trellistest.WaitFor(t, 5*time.Second, "no candidate left", func() bool { return len(h.Candidates("greet")) == 0 })
		if v := h.Plugins()[0].Version; v != stable {
			t.Errorf("host %d: stable %s, want %s", i+1, v, stable)
		}
	}
	sent, bodies := tr.finish()
	if bodies["Hello, Ada!"] == 0 || len(bodies) > 2 {
		t.Fatalf("replies %v of %d", bodies, sent)
	}
	t.Logf("%d requests, each answered once: %v", sent, bodies)
}

func TestClusterRolloutOptionsAreBounded(t *testing.T) {
	for _, o := range []host.Options{
		{Rollouts: "everywhere"},
		{Rollouts: host.RolloutsCluster, RolloutLease: time.Millisecond},
		{Rollouts: host.RolloutsCluster, RolloutLease: time.Hour},
	} {
		if h, err := host.New(t.Context(), o); err == nil {
			h.Close(t.Context())
			t.Errorf("options %+v accepted", o)
		}
	}
	h := trellistest.NewHost(t)
	if h.HostID() != "" {
		t.Errorf("a host with local rollouts has a cluster id %q", h.HostID())
	}
}

func TestClusterRolloutAbortAndPromoteFromAnotherHost(t *testing.T) {
	hs := clusterHosts(t, 2)
	v2path := trellistest.Wasm(t, greetV2Src)
	add := func() string {
		v, err := hs[0].AddCandidate(t.Context(), "greet", host.Candidate{Path: v2path, Config: map[string]string{"audit": "off"}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	plan := host.Rollout{Steps: []float64{0.5, 1}, StepDuration: time.Hour, MinMessages: 15, Interval: 20 * time.Millisecond,
		MaxLatencyRatio: 3, LatencyFloor: 250 * time.Millisecond}
	tr := startTraffic(t, hs[0].Client(), "greet", 4*time.Millisecond)
	joined := func(v string) {
		trellistest.WaitFor(t, 20*time.Second, "host 2 serving the canary", func() bool {
			n, _ := hs[1].Scrape().Value("trellis_version_messages_total", "plugin", "greet", "version", v, "track", "canary")
			return n > 0
		})
	}
	// Aborted on the host that did not start it: rolled back on both.
	v2 := add()
	if err := hs[0].StartRollout("greet", v2, plan); err != nil {
		t.Fatal(err)
	}
	joined(v2)
	if err := hs[1].AbortRollout(t.Context(), "greet", "changed my mind"); err != nil {
		t.Fatal(err)
	}
	for _, st := range waitEnd(t, hs, host.RolloutRolledBack) {
		if st.Reason != "aborted: changed my mind" || st.Decider != hs[1].HostID() {
			t.Errorf("ended %q by %s", st.Reason, st.Decider)
		}
	}
	for i, h := range hs {
		trellistest.WaitFor(t, 5*time.Second, "no candidate left", func() bool { return len(h.Candidates("greet")) == 0 })
		if err := h.AbortRollout(t.Context(), "greet", "again"); err == nil || !strings.Contains(err.Error(), "no rollout running") {
			t.Errorf("host %d: a second abort: %v", i+1, err)
		}
	}
	// Promoted by the operator on the other host: promoted on both.
	v2 = add()
	if err := hs[0].StartRollout("greet", v2, plan); err != nil {
		t.Fatal(err)
	}
	joined(v2)
	if err := hs[1].Promote(t.Context(), "greet", "000000000000"); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Errorf("promoting another version: %v", err)
	}
	if err := hs[1].Promote(t.Context(), "greet", v2); err != nil {
		t.Fatal(err)
	}
	waitEnd(t, hs, host.RolloutPromoted)
	for _, h := range hs {
		trellistest.WaitFor(t, 10*time.Second, "the candidate as the stable version", func() bool { return h.Plugins()[0].Version == v2 })
	}
	sent, bodies := tr.finish()
	if bodies["Hello, Ada."] == 0 || len(bodies) != 2 {
		t.Fatalf("replies %v of %d", bodies, sent)
	}
	t.Logf("%d requests, each answered once: %v", sent, bodies)

	// The promoted module stays in the object store, for hosts that start
	// later, until the plugin's next rollout replaces the record; a module
	// rolled back goes at once.
	_, obj := buckets(t, hs[0])
	module := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:])
	}
	gone := func(name string) bool {
		_, err := obj.GetInfo(t.Context(), name)
		return errors.Is(err, jetstream.ErrObjectNotFound)
	}
	v1path := trellistest.Wasm(t, greetSrc)
	if gone(module(v2path)) {
		t.Fatal("the promoted module left the object store")
	}
	v1, err := hs[0].AddCandidate(t.Context(), "greet", host.Candidate{Path: v1path})
	if err != nil {
		t.Fatal(err)
	}
	if err := hs[0].StartRollout("greet", v1, plan); err != nil {
		t.Fatal(err)
	}
	trellistest.WaitFor(t, 10*time.Second, "the promoted module deleted once a new rollout replaced it", func() bool {
		return gone(module(v2path))
	})
	if err := hs[0].AbortRollout(t.Context(), "greet", "back to v2"); err != nil {
		t.Fatal(err)
	}
	// The host it started on: the other may not have seen it start yet.
	waitEnd(t, hs[:1], host.RolloutRolledBack)
	trellistest.WaitFor(t, 10*time.Second, "the rolled-back module deleted", func() bool { return gone(module(v1path)) })
}

// A promoted record written by another client of the bus, naming a module
// it stored itself: a host catches up with what the bucket says, so with
// RequireSigned an unsigned module is refused before it is compiled, the
// refusal is logged, and the host keeps serving its own signed version.
func TestClusterCatchUpRefusesAnUnsignedModule(t *testing.T) {
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.Rollouts, o.RolloutLease = host.RolloutsCluster, 3*time.Second
		o.TrustedKeys, o.RequireSigned = []ed25519.PublicKey{pub}, true
	})
	v1, err := os.ReadFile(trellistest.Wasm(t, greetSrc))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := sign.Sign(v1, priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "greet.wasm")
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	h.Load("greet", path)
	if !h.WaitLog(20*time.Second, "cluster rollouts", "host_id="+h.HostID()) {
		t.Fatal("the rollouts bucket did not open")
	}
	stable := h.Plugins()[0].Version

	kv, obj := buckets(t, h)
	forged, err := os.ReadFile(trellistest.Wasm(t, greetV2Src))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(forged)
	module := hex.EncodeToString(sum[:])
	if _, err := obj.PutBytes(t.Context(), module, forged); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	storeRecord(t, kv, "plan.greet", map[string]any{"id": "00000000000000ee", "plugin": "greet", "version": module[:12],
		"module": module, "size": len(forged), "stable": stable, "state": "promoted", "step": 1, "share": 1,
		"started": now, "step_started": now, "ended": now, "decider": "someone",
		"plan": host.Rollout{Steps: []float64{1}, StepDuration: time.Minute, Interval: 20 * time.Millisecond}})
	if !h.WaitLog(20*time.Second, "catching up with a promotion failed", "promoted="+module[:12], "signed plugins are required") {
		t.Fatalf("no refusal of the unsigned module logged:\n%s", h.Logs())
	}
	if v := h.Plugins()[0].Version; v != stable {
		t.Fatalf("the host runs %s after a forged promotion, want its own %s", v, stable)
	}
	if m := h.Request("greet", []byte("Ada"), 5*time.Second); string(m.Data) != "Hello, Ada!" {
		t.Fatalf("greet after the refusal: %q", m.Data)
	}
}
