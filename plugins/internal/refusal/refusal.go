// Package refusal logs and counts the refusals of the built-in policies:
// each is one log line naming its reason, never the credential, and one
// count in a counter per reason in the policy's key-value namespace.
package refusal

import (
	"time"

	"github.com/trellis-mesh/trellis/abi"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Refusal counters live in the plugin's key-value namespace, one key per
// reason ("refused.expired", "refused.signature"...), shared by every
// instance and host, so an operator reads them with
// `nats kv get trellis <policy>.refused.<reason>`. Each instance adds its
// counts at most once per flushEvery per reason, so a flood of bad tokens
// costs a bounded number of writes; counts an instance holds when it is
// thrown away are lost, which a counter meant for alerting can afford.
const flushEvery = time.Second

// KeyPrefix starts the key of every refusal counter.
const KeyPrefix = "refused."

// counter is one reason's count in this instance.
type counter struct {
	pending int64
	flushed time.Time
}

// refusals holds this instance's counts; an instance runs one call at a
// time, so it needs no lock.
var refusals = map[string]*counter{}

// Count counts one refusal for why at now and reports how much to add to
// the shared counter now (0: not yet).
func Count(why string, now time.Time) int64 {
	c := refusals[why]
	if c == nil {
		c = &counter{}
		refusals[why] = c
	}
	c.pending++
	if now.Sub(c.flushed) < flushEvery {
		return 0
	}
	n := c.pending
	c.pending, c.flushed = 0, now
	return n
}

// Log logs a refusal by policy with its reason, never the credential, and
// counts it, in the policy's key-value namespace (Key) and, through the
// abi.HeaderRefusal response header, in the host's
// trellis_policy_refusals_total{policy,reason}; the host removes that
// header, so the caller never sees the reason. Its callers have already
// decided the answer, which says no more than "unauthorized" or
// "forbidden" in its own words. It runs only inside a plugin.
func Log(policy, why string, now time.Time) {
	trellis.Logf(trellis.LevelInfo, "%s: refused: reason=%s", policy, why)
	if err := trellis.ResponseHeader(abi.HeaderRefusal, Reason(why)); err != nil {
		trellis.Logf(trellis.LevelDebug, "%s: refusal header %s: %v", policy, why, err)
	}
	if n := Count(why, now); n > 0 {
		if _, err := trellis.KVIncr(Key(why), n, 0); err != nil {
			trellis.Logf(trellis.LevelDebug, "%s: refusal counter %s: %v", policy, why, err)
		}
	}
}

// Reason is why as the host counts it: why itself when abi.ValidRefusal
// takes it, else why cut to abi.MaxRefusalLen bytes with every byte it
// refuses written '_'.
func Reason(why string) string {
	if abi.ValidRefusal(why) {
		return why
	}
	b := []byte(why[:min(len(why), abi.MaxRefusalLen)])
	for i, c := range b {
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// Key is the key-value key of why's counter: KeyPrefix and why, with ':'
// written '.' (so "claim:scope" is "refused.claim.scope") and every byte a
// key may not hold written '_', with no empty dot-separated token, at most
// abi.MaxKVKeyLen bytes.
func Key(why string) string {
	b := []byte(KeyPrefix)
	for i := 0; i < len(why) && len(b) < abi.MaxKVKeyLen-1; i++ {
		switch c := why[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '=', c == '/':
			b = append(b, c)
		case c == '.' || c == ':':
			if b[len(b)-1] != '.' {
				b = append(b, '.')
			}
		default:
			b = append(b, '_')
		}
	}
	if b[len(b)-1] == '.' {
		b = append(b, '_')
	}
	return string(b)
}

// Reset forgets the counts not yet added, for tests.
func Reset() { refusals = map[string]*counter{} }
