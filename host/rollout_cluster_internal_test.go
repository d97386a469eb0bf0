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
