package main

import (
	"runtime/debug"
	"testing"
)

func TestGCPolicyDefaultsUnlessGOGCIsSet(t *testing.T) {
	saved := debug.SetGCPercent(100)
	defer debug.SetGCPercent(saved)
	for _, c := range []struct {
		gogc    string
		applied bool
		want    int
	}{
		{"", true, defaultGCPercent},
		{"100", false, 100}, // the operator's value, left as the runtime set it
		{"off", false, 100},
	} {
		debug.SetGCPercent(100)
		applied := applyGCPolicy(func(k string) string {
			if k == "GOGC" {
				return c.gogc
			}
			return ""
		})
		if got := debug.SetGCPercent(100); applied != c.applied || got != c.want {
			t.Errorf("GOGC=%q: applied %v, percent %d; want %v, %d", c.gogc, applied, got, c.applied, c.want)
		}
	}
}
