package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/trellis-mesh/trellis/host"
)

// Rollouts across a cluster, two top-level attributes (see
// host.Options.Rollouts and docs/deploy.md):
//
//	rollouts      = "cluster" # or "local", the default
//	rollout_lease = "5s"      # a decider's lease, 100ms to 5m
//
// Every host running the same plugins should say the same.
func (d *decoder) rollouts(body hcl.Body, fs *fileSchema, c *Config) {
	if fs.Rollouts != nil {
		switch m := host.RolloutMode(*fs.Rollouts); m {
		case host.RolloutsLocal, host.RolloutsCluster:
			c.Rollouts = m
		default:
			d.attrErr(body, "rollouts", "Invalid rollouts", fmt.Sprintf("%q: want %q or %q", *fs.Rollouts, host.RolloutsLocal, host.RolloutsCluster))
		}
	}
	if t, ok := d.duration(fs.RolloutLease, "rollout_lease", false); ok && t != 0 {
		if t < host.MinRolloutLease || t > host.MaxRolloutLease {
			d.exprErr(fs.RolloutLease, "Invalid rollout_lease", fmt.Sprintf("%s is out of range; want %s to %s", t, host.MinRolloutLease, host.MaxRolloutLease))
			return
		}
		c.RolloutLease = t
	}
}
