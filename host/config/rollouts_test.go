package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/config"
)

func TestRolloutsAcrossTheCluster(t *testing.T) {
	c, err := config.Parse([]byte("rollouts = \"cluster\"\nrollout_lease = \"2s\"\n"), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Rollouts != host.RolloutsCluster || c.RolloutLease != 2*time.Second {
		t.Fatalf("Rollouts %q, RolloutLease %v", c.Rollouts, c.RolloutLease)
	}
	if c, err := config.Parse(nil, "t.hcl"); err != nil || c.Rollouts != "" || c.RolloutLease != 0 {
		t.Fatalf("defaults: %+v, %v; want the host's", c, err)
	}
	for _, tc := range []struct{ src, says string }{
		{"rollouts = \"everywhere\"\n", `t.hcl:1:1: Invalid rollouts: "everywhere": want "local" or "cluster"`},
		{"rollout_lease = \"1ms\"\n", "Invalid rollout_lease: 1ms is out of range; want 100ms to 5m0s"},
		{"rollout_lease = \"1h\"\n", "Invalid rollout_lease: 1h0m0s is out of range"},
		{"rollout_lease = 5\n", "Invalid rollout_lease"},
	} {
		_, err := config.Parse([]byte(tc.src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: error %v; want %q", tc.src, err, tc.says)
		}
	}
}
