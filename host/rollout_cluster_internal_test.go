package host

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func validClusterRecord() *clusterRecord {
	now := time.Now()
	return &clusterRecord{ID: "00000000000000ab", Plugin: "greet", Version: strings.Repeat("b", 12),
		Module: strings.Repeat("b", 64), Size: 100, Stable: strings.Repeat("c", 12), State: RolloutRunning,
		Step: 1, Share: 0.05, Started: now, StepStarted: now, Plan: Rollout{Steps: []float64{0.05, 1}}, Decider: "h"}
}

func TestClusterKeysAndFiguresAreChecked(t *testing.T) {
	for key, want := range map[string][3]string{
		"plan.greet":            {"plan", "greet", ""},
		"lease.greet-2":         {"lease", "greet-2", ""},
		"figures.greet.0a1b2c3": {"figures", "greet", "0a1b2c3"},
	} {
		kind, plugin, host, ok := parseKey(key)
		if !ok || [3]string{kind, plugin, host} != want {
			t.Errorf("parseKey(%q) = %q %q %q %v", key, kind, plugin, host, ok)
		}
	}
	for _, key := range []string{"plan", "plan.", "plan.a.b", "figures.greet", "lease.gr%et", "other.greet",
		"figures.greet.a.b", "plan." + strings.Repeat("x", 201)} {
		if _, _, _, ok := parseKey(key); ok {
			t.Errorf("parseKey(%q) accepted", key)
		}
	}
	var r statsReading
	r.msgs, r.errs, r.sum = 3, 1, 30*time.Millisecond
	r.lat[latBucket(time.Millisecond)] = 2
	r.lat[latBucket(28*time.Millisecond)] = 1
	w := windowOf(r)
	if err := w.check(); err != nil || w.reading() != r {
		t.Fatalf("window %+v round trip: %v", w, err)
	}
	for _, bad := range []windowFigures{
		{Msgs: 1, Errs: 2, Lat: [][2]uint64{{0, 1}}},
		{Msgs: 1, Lat: [][2]uint64{{latBuckets, 1}}},
		{Msgs: 2, Lat: [][2]uint64{{0, 1}}},
		{Msgs: 0, Lat: [][2]uint64{{0, 1 << 63}, {1, 1 << 63}}},
	} {
		if bad.check() == nil {
			t.Errorf("window %+v accepted", bad)
		}
	}
}

// FuzzDecodeClusterValues feeds values of the rollouts bucket, which any
// client of the bus may write, to the decoders: none may panic, and what
// they accept is within bounds.
func FuzzDecodeClusterValues(f *testing.F) {
	rec, _ := json.Marshal(validClusterRecord())
	f.Add(rec)
	f.Add([]byte(`{"host":"h","rollout":"00000000000000ab","step":1,"canary":{"msgs":1,"lat":[[3,1]]}}`))
	f.Add([]byte(`{"step":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := decodeRecord(data, "greet"); err == nil {
			if r.Step < 1 || r.Step > len(r.Plan.Steps) || r.Size > MaxClusterModule || r.Plugin != "greet" {
				t.Fatalf("accepted %+v", r)
			}
			_ = r.status()
		}
		if fg, err := decodeFigures(data, "h"); err == nil {
			fg.Canary.reading()
			fg.Stable.reading()
		}
	})
}

func TestDecodeClusterRecord(t *testing.T) {
	data, _ := json.Marshal(validClusterRecord())
	if _, err := decodeRecord(data, "greet"); err != nil {
		t.Fatalf("a valid record refused: %v", err)
	}
	if _, err := decodeRecord(data, "other"); err == nil {
		t.Fatal("a record under another plugin's key accepted")
	}
	if _, err := decodeRecord(make([]byte, MaxRolloutRecord+1), "greet"); err == nil || !strings.Contains(err.Error(), "MaxRolloutRecord") {
		t.Fatalf("an oversized record: %v", err)
	}
}

// A host tallies every host's figures for the step, and keeps the
// stable's last sum over enough messages: in the last step, where the
// stable gets no traffic, that sum is what the canary is compared with,
// by whichever host holds the lease then.
func TestTallyKeepsTheStablesLastFullWindow(t *testing.T) {
	cr := &clusterRollouts{lease: time.Second}
	rec := validClusterRecord()
	rec.Plan.MinMessages, rec.Plan.Interval = 10, 50*time.Millisecond
	f := &follow{name: "greet", rec: rec, figs: map[string]figSeen{}}
	now := time.Now()
	window := func(msgs, errs uint64, lat time.Duration) windowFigures {
		var r statsReading
		r.msgs, r.errs, r.sum = msgs, errs, time.Duration(msgs)*lat
		r.lat[latBucket(lat)] = msgs
		return windowOf(r)
	}
	put := func(host string, step int, canary, stable windowFigures) {
		f.figs[host] = figSeen{f: &hostFigures{Host: host, Rollout: rec.ID, Step: step, Canary: canary, Stable: stable}, seen: now}
	}

	// Step 1: two hosts, 6 + 6 stable messages: enough together.
	put("a", 1, window(2, 0, time.Millisecond), window(6, 0, time.Millisecond))
	put("b", 1, window(3, 0, time.Millisecond), window(6, 1, time.Millisecond))
	put("c", 2, window(1, 0, time.Millisecond), window(1, 0, time.Millisecond)) // ahead: behind the record
	f.figs["old"] = figSeen{f: &hostFigures{Host: "old", Rollout: "00000000000000cd", Step: 1, Stable: window(50, 50, time.Second)}, seen: now}
	f.figs["stale"] = figSeen{f: &hostFigures{Host: "stale", Rollout: rec.ID, Step: 1, Stable: window(50, 50, time.Second)}, seen: now.Add(-time.Minute)}
	tl := cr.tally(f, now)
	if tl.hosts != 2 || tl.behind != 1 || tl.canary.msgs != 5 || tl.stable.msgs != 12 || tl.stable.errs != 1 || tl.refused != "" {
		t.Fatalf("tally %+v: want 2 hosts in it, 1 behind, 5 canary and 12 stable messages, 1 error", tl)
	}
	if f.baseline == nil || f.baseline.msgs != 12 {
		t.Fatalf("baseline %+v, want the stable's 12 messages", f.baseline)
	}

	// The last step: the stable gets nothing; its last full window stays.
	rec.Step, rec.Share = 2, 1
	put("a", 2, window(20, 0, 5*time.Millisecond), windowFigures{})
	put("b", 2, window(20, 0, 5*time.Millisecond), windowFigures{})
	cr.tally(f, now)
	if f.baseline == nil || f.baseline.msgs != 12 {
		t.Fatalf("baseline %+v in the last step, want the stable's last full window (12 messages)", f.baseline)
	}
	// Compared with it, a canary 200 ms slower breaches the latency gate.
	rec.Plan.MaxLatencyRatio, rec.Plan.LatencyFloor = 1.5, 5*time.Millisecond
	put("a", 2, window(20, 0, 200*time.Millisecond), windowFigures{})
	if why := rec.Plan.breach(cr.tally(f, now).canary, f.baseline); !strings.Contains(why, "max latency ratio") {
		t.Fatalf("a canary 200 ms slower than the stable's last window: breach %q", why)
	}

	// A host that cannot follow is named.
	f.figs["d"] = figSeen{f: &hostFigures{Host: "d", Rollout: rec.ID, Step: 2, Refused: "no room"}, seen: now}
	if tl := cr.tally(f, now); tl.refusedBy != "d" || tl.refused != "no room" {
		t.Fatalf("tally %+v: want host d's refusal", tl)
	}
}
