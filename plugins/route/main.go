// Command route is the Trellis routing policy: it sends a message to
// another subject chosen by one of its headers (a version, a region, a
// tenant), and can mirror a copy of every message to a second subject
// (shadow traffic). See README.md for its config.
package main

import (
	"fmt"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

var (
	router Router
	// mirrorFailed keeps a failing mirror from logging every message.
	mirrorFailed bool
)

func init() {
	trellis.OnInit(func() error {
		rt, err := ParseRouter(trellis.Config)
		if err != nil {
			return fmt.Errorf("route: %w", err)
		}
		router = rt
		return nil
	})
	trellis.Policy(policy)
}

func main() {}

func policy(r *trellis.Inbound) trellis.Decision {
	if router.Mirror != "" {
		// A copy is fire-and-forget: its failure never touches the original.
		err := trellis.PublishMsg(router.Mirror, MirrorHeader(r.Header, r.Subject), r.Data)
		if err != nil && !mirrorFailed {
			mirrorFailed = true
			trellis.Logf(trellis.LevelWarn, "route: mirror to %s: %v (logged once per instance)", router.Mirror, err)
		}
	}
	target, ok := router.Target(r.Header)
	if !ok || target == r.Subject {
		// Sending a message to its own subject would run this chain again.
		return trellis.Continue
	}
	if err := r.Route(target); err != nil {
		trellis.Logf(trellis.LevelError, "route: to %s: %v", target, err)
		return trellis.Reject(500, "routing failed")
	}
	return trellis.Continue
}
