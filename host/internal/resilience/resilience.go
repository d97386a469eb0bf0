// Package resilience holds the host's fault-tolerance parts for routes: a
// circuit breaker and retry backoff with jitter. The host applies them
// natively, as a proxy's router would, not through a plugin.
package resilience

import (
	"math/rand/v2"
	"sync"
	"time"
)

// State is a breaker's state.
type State int

// The breaker states.
const (
	Closed   State = iota // calls go through; failures are counted
	Open                  // calls fail fast until the cool-down ends
	HalfOpen              // one trial call decides between Closed and Open
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// Breaker is a circuit breaker: it opens after Failures consecutive
// failures, answers fast while open, and after Cooldown lets one trial call
// through (half-open); that call's outcome closes or reopens it. The zero
// Failures disables it. Safe for concurrent use.
type Breaker struct {
	Failures int
	Cooldown time.Duration
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time

	mu       sync.Mutex
	state    State
	fails    int
	openedAt time.Time
	trial    bool // a half-open trial is in flight
}

func (b *Breaker) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Allow reports whether a call may go ahead. When it returns true the
// caller must report the call's outcome with Record.
func (b *Breaker) Allow() bool {
	if b == nil || b.Failures <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Open:
		if b.now().Sub(b.openedAt) < b.Cooldown {
			return false
		}
		b.state, b.trial = HalfOpen, true
		return true
	case HalfOpen:
		if b.trial {
			return false
		}
		b.trial = true
		return true
	}
	return true
}

// Record reports the outcome of a call Allow let through.
func (b *Breaker) Record(failed bool) {
	if b == nil || b.Failures <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == HalfOpen {
		b.trial = false
		if failed {
			b.state, b.openedAt = Open, b.now()
		} else {
			b.state, b.fails = Closed, 0
		}
		return
	}
	if !failed {
		b.fails = 0
		return
	}
	b.fails++
	if b.fails >= b.Failures {
		b.state, b.openedAt, b.fails = Open, b.now(), 0
	}
}

// State returns the breaker's state now.
func (b *Breaker) State() State {
	if b == nil {
		return Closed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && b.now().Sub(b.openedAt) >= b.Cooldown {
		return HalfOpen
	}
	return b.state
}

// Backoff returns how long to wait before retry number attempt (1 for the
// first retry): exponential from base, capped at max, with full jitter
// (a uniform draw between 0 and the exponential value), which spreads
// retries from many callers apart.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if max > 0 && d > max {
		d = max
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}
