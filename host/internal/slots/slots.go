// Package slots is a counting semaphore: at most N holders at once, for a
// cap such as the host's on plugin calls running across all plugins.
//
// Taking a free slot and giving one back are one atomic operation each,
// where a buffered channel used as a semaphore takes its lock twice per
// message. Only a taker that finds every slot held waits, on a channel
// that a giver signals when someone waits.
package slots

import (
	"context"
	"sync/atomic"
)

// Slots is a counting semaphore. It is safe for concurrent use; the zero
// value has no slots (use New).
type Slots struct {
	n       int64
	used    atomic.Int64
	waiting atomic.Int64
	// wake holds a signal per slot given back while someone waited, up to
	// n: a waiter that takes one tries again.
	wake chan struct{}
}

// New returns n slots (at least one).
func New(n int) *Slots {
	n = max(n, 1)
	return &Slots{n: int64(n), wake: make(chan struct{}, n)}
}

// Cap is the number of slots.
func (s *Slots) Cap() int { return int(s.n) }

// Used is how many slots are held now.
func (s *Slots) Used() int { return int(s.used.Load()) }

// TryTake takes a slot if one is free, without waiting, and reports
// whether it did.
func (s *Slots) TryTake() bool {
	for {
		u := s.used.Load()
		if u >= s.n {
			return false
		}
		if s.used.CompareAndSwap(u, u+1) {
			return true
		}
	}
}

// Take takes a slot, waiting for one to be given back if none is free,
// until ctx ends; then it returns ctx's error and holds no slot.
func (s *Slots) Take(ctx context.Context) error {
	if s.TryTake() {
		return nil
	}
	// Counted as waiting before trying again: a Give that comes after this
	// try sees the count and signals, so no slot given back goes unseen.
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	for {
		if s.TryTake() {
			return nil
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Give gives back a slot that TryTake or Take took.
func (s *Slots) Give() {
	if s.used.Add(-1) < 0 {
		panic("slots: Give without a slot taken")
	}
	if s.waiting.Load() > 0 {
		// A full buffer holds n signals already: enough to wake a waiter
		// for every slot.
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}
