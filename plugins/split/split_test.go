package main

import (
	"fmt"
	"math"
	"testing"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func mustSplit(t *testing.T, s string) Split {
	t.Helper()
	sp, err := ParseSplit(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestParseSplit(t *testing.T) {
	sp := mustSplit(t, " orders.get.v1 = 90 , orders.get.v2=10,orders.get.v3=0")
	if len(sp.Targets) != 3 || sp.total != 100 || sp.Targets[1] != (Target{"orders.get.v2", 10}) {
		t.Errorf("got %+v", sp)
	}
	for _, bad := range []string{"", "a", "a=0", "a=-1", "a=1.5", "a=x", "a.*=1", "a=1,a=2", "a=1000000000,b=1", "a=99999999999"} {
		if _, err := ParseSplit(bad); err == nil {
			t.Errorf("ParseSplit(%q) accepted", bad)
		}
	}
}

func TestPickLaysWeightsEndToEnd(t *testing.T) {
	sp := mustSplit(t, "a=2,b=0,c=3")
	for n, want := range []string{"a", "a", "c", "c", "c"} {
		if got := sp.pick(uint64(n)); got != want {
			t.Errorf("pick(%d) = %s, want %s", n, got, want)
		}
	}
}

// within reports whether got is within tol of want×n.
func within(got, n int, want, tol float64) bool {
	return math.Abs(float64(got)-want*float64(n)) <= tol*float64(n)
}

func TestRandomFollowsWeights(t *testing.T) {
	sp := mustSplit(t, "v1=90,v2=10,off=0")
	counts := map[string]int{}
	const n = 100_000
	for range n {
		counts[sp.Random()]++
	}
	if !within(counts["v2"], n, 0.10, 0.01) || counts["off"] != 0 {
		t.Errorf("counts %v for 90/10/0", counts)
	}
}

func TestStickyIsDeterministicAndSpreads(t *testing.T) {
	sp := mustSplit(t, "v1=90,v2=10")
	again := mustSplit(t, "v1=90,v2=10")
	counts := map[string]int{}
	const n = 20_000
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		got := sp.Sticky(key)
		if again.Sticky(key) != got || sp.Sticky(key) != got {
			t.Fatalf("key %s moved", key)
		}
		counts[got]++
	}
	if !within(counts["v2"], n, 0.10, 0.015) {
		t.Errorf("sticky keys spread %v for 90/10", counts)
	}
	// Fixed values (the first 8 bytes of SHA-256, big-endian, mod 100): a
	// key must not move to another target when the plugin is upgraded.
	for key, want := range map[string]string{"ada": "v2", "grace": "v2", "linus": "v1"} {
		if got := sp.Sticky(key); got != want {
			t.Errorf("Sticky(%q) = %s, want %s", key, got, want)
		}
	}
}

func TestChooseUsesStickyKeyWhenPresent(t *testing.T) {
	s, err := parseSettings(policyconf.Map{"targets": "v1=50,v2=50", "sticky": "header:X-User"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	withKey := &trellis.Inbound{Msg: trellis.Msg{Subject: "orders", Header: trellis.Header{"X-User": {"ada"}}}}
	first := s.choose(withKey)
	for range 100 {
		if got := s.choose(withKey); got != first {
			t.Fatalf("sticky key moved from %s to %s", first, got)
		}
	}
	without := &trellis.Inbound{Msg: trellis.Msg{Subject: "orders"}}
	seen := map[string]bool{}
	for range 200 {
		seen[s.choose(without)] = true
	}
	if len(seen) != 2 {
		t.Errorf("without the key, choices were %v; want random over both", seen)
	}
}

func TestParseSettings(t *testing.T) {
	for _, bad := range []policyconf.Map{{}, {"targets": "a=0"}, {"targets": "a=1", "sticky": "cookie:x"}} {
		if _, err := parseSettings(bad.Get); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	s, err := parseSettings(policyconf.Map{"targets": "a=1", "sticky": "claim:sub"}.Get)
	if err != nil || s.sticky == nil || s.sticky.Header != "X-Claim-sub" {
		t.Errorf("%+v %v", s, err)
	}
}

// FuzzSplit: a split it accepts always picks one of its targets.
func FuzzSplit(f *testing.F) {
	f.Add("a=90,b=10", "user-1")
	f.Add("a=0,b=1", "")
	f.Fuzz(func(t *testing.T, targets, key string) {
		sp, err := ParseSplit(targets)
		if err != nil {
			return
		}
		got := map[string]bool{sp.Sticky(key): true, sp.Random(): true}
		for subject := range got {
			ok := false
			for _, tg := range sp.Targets {
				ok = ok || (tg.Subject == subject && tg.Weight > 0)
			}
			if !ok {
				t.Fatalf("%q picked %q", targets, subject)
			}
		}
	})
}
