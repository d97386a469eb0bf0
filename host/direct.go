package host

import (
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
)

// Direct dispatch: a message served on its subscription's own goroutine.
//
// A message normally goes from the subscription's goroutine to the
// binding's inbox and on to a worker: two goroutines woken per message.
// When the inbox is empty and the messages queued behind this one in the
// subscription would wait little for it (their number times the binding's
// average time to serve a message is within directBudget), the
// subscription's goroutine serves the message itself, as a native NATS
// responder does: one goroutine woken instead of two. That is worth about
// four points of a native responder's request/reply throughput (see
// BENCHMARKS.md).
//
// What arrives while a message is served directly waits for it, where an
// idle worker could have taken it. The average keeps a handler whose calls
// take time (KV calls, large payloads) on the workers, and starts above the budget, so a new version's first messages
// go to the workers until its calls are seen to be fast. A handler that
// turns slow after a fast spell (a guest that loops until its deadline)
// holds up what arrives during that one call; a call over directStall
// turns direct dispatch off for directOff, and each later one pushes that
// further, so that costs at most one call's time a minute.
//
// A handler that may send requests (it, or a policy of its chain, has a
// request grant) is never served directly: the request could be for a
// subject of the same subscription, whose answer would then wait behind
// the call that asked for it until that call's deadline. Nor is one
// retried with backoff (it may sleep within a call), nor one with a
// candidate version (a shadow or a canary) beside it.
const (
	directBudget = 100 * time.Microsecond
	directStall  = 10 * time.Millisecond
	directOff    = time.Minute
	// directOutlier bounds how much one call moves the average (see
	// direct.served).
	directOutlier = 4
)

// direct is a binding's gate for direct dispatch.
type direct struct {
	// offUntil is the deadline.Now() before which direct dispatch is off.
	offUntil atomic.Int64
	// avg is a moving average of how long serving a message takes, in
	// nanoseconds; see newDirect for where it starts.
	avg atomic.Int64
}

// newDirect returns a gate that is closed until some messages have been
// served fast enough to bring the average within the budget.
func newDirect() *direct {
	d := new(direct)
	d.avg.Store(int64(2 * directBudget))
	return d
}

// allowed reports whether a message arriving at now, with behind more
// queued after it, may be served directly: the wait it makes them bear
// is within directBudget.
func (d *direct) allowed(now time.Duration, behind int) bool {
	return int64(now) >= d.offUntil.Load() && d.avg.Load() <= int64(directBudget)/int64(behind+1)
}

// reset closes the gate as newDirect does: for a new version, whose
// calls may take longer than the last one's.
func (d *direct) reset() {
	d.avg.Store(int64(2 * directBudget))
}

// served records that serving a message took from start to end. Calls
// from several goroutines at once may lose one another's update to the
// average, which stays an average.
//
// One sample counts at most directOutlier times the average (plus a
// microsecond): a call held up once (preempted, or assisting the garbage
// collector) does not close the gate for the many fast ones around it,
// while a handler that turns slow for good still raises the average past
// the budget within a few dozen messages, and one that stalls turns
// direct dispatch off at once.
func (d *direct) served(start, end time.Duration) {
	t := int64(end - start)
	avg := d.avg.Load()
	if lim := directOutlier*avg + int64(time.Microsecond); t > lim {
		t = lim
	}
	d.avg.Store(avg + (t-avg)/8)
	if end-start > directStall {
		d.offUntil.Store(int64(end + directOff))
	}
}

// subscriber is the callback of one subscription: its goroutine is the
// only one that calls it, so the worker it serves direct messages with is
// its own.
type subscriber struct {
	b  *binding
	w  worker
	sj *metrics.Subject // the subscription's subject's metrics, once looked up
}

// onMsg serves m directly when it may (see directBudget) and otherwise
// hands it to the binding's workers.
func (s *subscriber) onMsg(m *nats.Msg) {
	b := s.b
	if !b.admissible(m) {
		return
	}
	if s.sj == nil && b.metrics != nil && m.Sub != nil {
		s.sj = b.metrics.Subject(m.Sub.Subject)
	}
	now := deadline.Now()
	a := arrival{m: m, at: now, sj: s.sj}
	if len(b.inbox) == 0 && b.direct.allowed(now, 0) && b.directable() && b.direct.allowed(now, behind(m.Sub)) {
		b.serve(a, &s.w, now)
		return
	}
	b.enqueue(a)
}

// directable reports whether what serves the binding's messages now could
// be run directly at all: nothing that may wait within a call (see
// snapshot.mayWait), no candidate version (whose grants may differ),
// and an instance idle, so that the call neither waits for one nor makes
// one.
func (b *binding) directable() bool {
	snap := b.snap.Load()
	return snap != nil && !snap.mayWait && b.cands.Load() == nil && snap.plugin.HasIdle()
}

// behind is how many messages sub holds after the one being delivered:
// nats.go counts that one as pending until its callback returns.
func behind(sub *nats.Subscription) int {
	if sub == nil {
		return 1 << 20
	}
	n, _, err := sub.Pending()
	if err != nil {
		return 1 << 20
	}
	return n - 1
}
