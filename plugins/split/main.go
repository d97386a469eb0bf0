// Command split is the Trellis weighted-split policy for canary releases:
// it sends each message to one of several subjects in proportion to their
// weights, at random or sticky per client, and tells the caller which one
// served it in the X-Trellis-Target response header. See README.md.
package main

import (
	"errors"
	"fmt"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// TargetHeader is the response header that names the subject chosen.
const TargetHeader = "X-Trellis-Target"

type settings struct {
	split  Split
	sticky *policyconf.Key
}

var cfg *settings

func init() {
	trellis.OnInit(func() error {
		s, err := parseSettings(trellis.Config)
		if err != nil {
			return fmt.Errorf("split: %w", err)
		}
		cfg = s
		return nil
	})
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision { return cfg.policy(r) })
}

func main() {}

func parseSettings(get policyconf.Getter) (*settings, error) {
	targets, ok := get("targets")
	if !ok {
		return nil, errors.New(`targets is required, such as "orders.get.v1=90,orders.get.v2=10"`)
	}
	sp, err := ParseSplit(targets)
	if err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	s := &settings{split: sp}
	if spec, ok := get("sticky"); ok && spec != "" {
		k, err := policyconf.ParseKey(spec)
		if err != nil {
			return nil, fmt.Errorf("sticky: %w", err)
		}
		s.sticky = &k
	}
	return s, nil
}

// choose returns the target for r: by its sticky key when it has one, else
// at random.
func (s *settings) choose(r *trellis.Inbound) string {
	if s.sticky != nil {
		if v, ok := s.sticky.Value(r); ok {
			return s.split.Sticky(v)
		}
	}
	return s.split.Random()
}

func (s *settings) policy(r *trellis.Inbound) trellis.Decision {
	target := s.choose(r)
	if err := trellis.ResponseHeader(TargetHeader, target); err != nil {
		trellis.Logf(trellis.LevelWarn, "split: response header: %v", err)
	}
	if target == r.Subject {
		// Already where it should be; routing it to its own subject would
		// run this chain again.
		return trellis.Continue
	}
	if err := r.Route(target); err != nil {
		trellis.Logf(trellis.LevelError, "split: route to %s: %v", target, err)
		return trellis.Reject(500, "routing failed")
	}
	return trellis.Continue
}
