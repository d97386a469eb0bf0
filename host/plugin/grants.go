package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Grants is what the operator allows a plugin beyond replying to the
// messages it handles. The zero value grants nothing.
type Grants struct {
	// Publish lists the subjects the plugin may publish to. NATS wildcards
	// are allowed: "orders.*", "audit.>".
	Publish []string
	// Request lists the subjects the plugin may send requests to.
	Request []string
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
	for _, list := range [][]string{g.Publish, g.Request} {
		for _, s := range list {
			if err := ValidSubject(s, true); err != nil {
				return fmt.Errorf("grant %q: %w", s, err)
			}
		}
	}
	return nil
}

// Allows reports whether pattern list grants subject.
func allows(list []string, subject string) bool {
	for _, pat := range list {
		if SubjectMatches(pat, subject) {
			return true
		}
	}
	return false
}

// SubjectMatches reports whether a literal subject matches a NATS subject
// pattern ("*" matches one token, a final ">" one or more).
func SubjectMatches(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch pt {
		case ">":
			return true
		case "*":
		default:
			if pt != st {
				return false
			}
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// ValidSubject checks a NATS subject: non-empty tokens separated by dots, no
// whitespace, and wildcards ("*" as a token, ">" as the last token) only
// when wildcards is true.
func ValidSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("subject contains whitespace")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return errors.New("subject has an empty token")
		case t == "*" || (t == ">" && i == len(toks)-1):
			if !wildcards {
				return errors.New("wildcards are not allowed here")
			}
		case strings.ContainsAny(t, "*>"):
			return fmt.Errorf("bad wildcard in token %q", t)
		}
	}
	return nil
}

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
