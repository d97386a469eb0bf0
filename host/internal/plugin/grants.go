package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trellis-mesh/trellis/abi"
)

// Grants is what the operator allows a plugin beyond replying to the
// messages it handles. The zero value grants nothing.
type Grants struct {
	// Publish lists the subjects the plugin may publish to. NATS wildcards
	// are allowed: "orders.*", "audit.>".
	Publish []string
	// Request lists the subjects the plugin may send requests to.
	Request []string
	// Subscribe lists what the plugin may subscribe to in trellis_init,
	// with or without a queue group: a subscription must be covered by one
	// of these patterns ("orders.>" covers "orders.*"). The host grants a
	// plugin the subjects its operator configured for it; `trellis dev`
	// grants ">".
	Subscribe []string
	// Env holds the environment variables the plugin sees through WASI.
	Env map[string]string
	// Dirs are host directories mounted into the plugin's WASI file system.
	Dirs []Dir
}

// Dir is a host directory made visible to a plugin.
type Dir struct {
	HostPath  string
	GuestPath string
	ReadOnly  bool
}

func (g Grants) validate() error {
	for _, list := range [][]string{g.Publish, g.Request, g.Subscribe} {
		for _, s := range list {
			if err := ValidSubject(s, true); err != nil {
				return fmt.Errorf("grant %q: %w", s, err)
			}
		}
	}
	return nil
}

// allows reports whether a literal subject is granted by list. System
// subjects never are, whatever the list says: plugins reach them only
// through the host functions made for them.
func allows(list []string, subject string) bool {
	if abi.SystemSubject(subject) {
		return false
	}
	for _, pat := range list {
		if abi.SubjectMatches(pat, subject) {
			return true
		}
	}
	return false
}

// covers reports whether a subscription pattern is granted by list. A
// pattern naming system subjects never is; a pattern whose first token is a
// wildcard may be granted, and the host drops the system subjects it would
// match before they reach the plugin.
func covers(list []string, pattern string) bool {
	if abi.SystemSubject(pattern) {
		return false
	}
	for _, g := range list {
		if abi.SubjectCovers(g, pattern) {
			return true
		}
	}
	return false
}

// ValidSubject checks a subject; see abi.ValidSubject.
func ValidSubject(s string, wildcards bool) error { return abi.ValidSubject(s, wildcards) }

// Outbox sends what plugins send. The host implements it on NATS; tests and
// benchmarks may use anything. Implementations must copy data and headers
// before they return if they keep them: the slices point into guest memory.
type Outbox interface {
	// Publish sends a message. Replies are publishes to the reply subject.
	Publish(ctx context.Context, subject string, header map[string][]string, data []byte) error
	// Request sends a request and waits up to timeout for one response. It
	// returns errors wrapping ErrTimeout or ErrNoResponders where they apply.
	Request(ctx context.Context, subject string, header map[string][]string, data []byte, timeout time.Duration) (*Message, error)
}

// Errors an Outbox returns for request failures the ABI names.
var (
	ErrTimeout      = errors.New("request timed out")
	ErrNoResponders = errors.New("no responders")
)
