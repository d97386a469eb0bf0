package main

import (
	"time"

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

// refusalKeyPrefix starts the key of every refusal counter.
const refusalKeyPrefix = "refused."

// counter is one reason's count in this instance.
type counter struct {
	pending int64
	flushed time.Time
}

// refusals holds this instance's counts; an instance runs one call at a
// time, so it needs no lock.
var refusals = map[string]*counter{}

// countRefusal counts one refusal for why at now and reports how much to
// add to the shared counter now (0: not yet).
func countRefusal(why string, now time.Time) int64 {
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

// refused logs a refusal with its reason, never the credential, and counts
// it; its callers have already decided the answer, which says no more
// than "unauthorized" in its own words.
func refused(why string, now time.Time) {
	trellis.Logf(trellis.LevelInfo, "auth: refused: reason=%s", why)
	if n := countRefusal(why, now); n > 0 {
		if _, err := trellis.KVIncr(refusalKeyPrefix+why, n, 0); err != nil {
			trellis.Logf(trellis.LevelDebug, "auth: refusal counter %s: %v", why, err)
		}
	}
}
