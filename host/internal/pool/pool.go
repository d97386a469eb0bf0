// Package pool is a bounded pool of reusable, non-thread-safe resources, such
// as Wasm module instances.
//
// A Pool holds at most Max live items. Acquire hands out an idle item or makes
// a new one while fewer than Max are live; when all are in use it waits until
// one is returned or the context ends, so the pool is also the backpressure
// point of whatever it serves. An item that may be damaged (a guest that
// trapped) is given back with Discard, which closes it and frees its slot.
package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Acquire once Close has begun.
var ErrClosed = errors.New("pool closed")

// ErrBusy is returned by Acquire when every item stayed in use until the
// context ended. It wraps the context's error.
var ErrBusy = errors.New("pool busy")

// Pool is a bounded pool of T. It is safe for concurrent use.
//
// Its state is one mutex-guarded struct: an Acquire or a Release that finds
// an idle item or a free slot takes the lock once and does not block or
// allocate. Only a caller that must wait makes a channel, on which the next
// Release hands it an item directly (or the next Discard the right to make
// one). Waiters are served in arrival order.
type Pool[T any] struct {
	newItem   func(context.Context) (T, error)
	closeItem func(T)
	max       int

	mu      sync.Mutex
	idle    []T          // ready for reuse; the last one returned is reused first
	nIdle   atomic.Int32 // len(idle), for Idle to read without the lock
	inUse   int          // handed out or being made; inUse+len(idle) <= max
	waiters []chan grant[T]
	closed  bool
	drained chan struct{} // closed once the pool is closed and nothing is in use
	once    sync.Once
}

// grant is what a waiting Acquire receives: an item, the right to make a
// new one (fresh), or ErrClosed.
type grant[T any] struct {
	it    T
	fresh bool
	err   error
}

// New returns a pool of at most max items (max < 1 means 1). newItem makes an
// item and may fail; closeItem releases one. Neither is called with the
// pool's internal state locked.
func New[T any](max int, newItem func(context.Context) (T, error), closeItem func(T)) *Pool[T] {
	if max < 1 {
		max = 1
	}
	return &Pool[T]{
		newItem:   newItem,
		closeItem: closeItem,
		max:       max,
		idle:      make([]T, 0, max),
		drained:   make(chan struct{}),
	}
}

// Max returns the most items the pool will hold.
func (p *Pool[T]) Max() int { return p.max }

// InUse returns how many items are handed out or being made right now.
func (p *Pool[T]) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// Idle returns how many items wait for reuse. It takes no lock: the
// count may change as soon as it is read.
func (p *Pool[T]) Idle() int { return int(p.nIdle.Load()) }

// Acquire returns an idle item, or a new one if fewer than Max are live. If
// all are in use it waits until one comes back or ctx ends, and then returns
// an error wrapping both ErrBusy and ctx.Err(). The caller must hand the
// item back with exactly one Release or Discard.
func (p *Pool[T]) Acquire(ctx context.Context) (T, error) {
	var zero T
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return zero, ErrClosed
	case len(p.idle) > 0:
		it := p.popIdle()
		p.mu.Unlock()
		return it, nil
	case p.inUse+len(p.idle) < p.max:
		p.inUse++
		p.mu.Unlock()
		return p.make(ctx)
	}
	w := make(chan grant[T], 1)
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	select {
	case g := <-w:
		return p.take(ctx, g)
	case <-ctx.Done():
	}
	p.mu.Lock()
	for i, o := range p.waiters {
		if o == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return zero, errors.Join(ErrBusy, ctx.Err())
		}
	}
	p.mu.Unlock()
	// Granted while the context ended: the grant is in w already (it is
	// sent under the lock). Pass it on rather than lose it.
	switch g := <-w; {
	case g.err != nil:
	case g.fresh:
		p.freeSlot()
	default:
		p.Release(g.it)
	}
	return zero, errors.Join(ErrBusy, ctx.Err())
}

func (p *Pool[T]) take(ctx context.Context, g grant[T]) (T, error) {
	switch {
	case g.err != nil:
		var zero T
		return zero, g.err
	case g.fresh:
		return p.make(ctx)
	}
	return g.it, nil
}

// TryAcquire returns an idle item if there is one, without waiting and
// without making one; ok reports whether it did. The caller hands the item
// back as after Acquire.
func (p *Pool[T]) TryAcquire() (it T, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) == 0 {
		return it, false
	}
	return p.popIdle(), true
}

// popIdle hands out the idle item returned last. p.mu is held.
func (p *Pool[T]) popIdle() T {
	var zero T
	it := p.idle[len(p.idle)-1]
	p.idle[len(p.idle)-1] = zero
	p.idle = p.idle[:len(p.idle)-1]
	p.nIdle.Store(int32(len(p.idle)))
	p.inUse++
	return it
}

// make makes an item in a slot already counted in inUse.
func (p *Pool[T]) make(ctx context.Context) (T, error) {
	it, err := p.newItem(ctx)
	if err != nil {
		p.freeSlot()
		var zero T
		return zero, err
	}
	return it, nil
}

// Release returns a healthy item for reuse. After Close it closes the item.
func (p *Pool[T]) Release(it T) {
	p.mu.Lock()
	switch {
	case p.closed:
		p.inUse--
		p.signalDrained()
		p.mu.Unlock()
		p.closeItem(it)
	case len(p.waiters) > 0:
		p.popWaiter() <- grant[T]{it: it} // the item stays in use, by the waiter
		p.mu.Unlock()
	default:
		p.idle = append(p.idle, it)
		p.nIdle.Store(int32(len(p.idle)))
		p.inUse--
		p.mu.Unlock()
	}
}

// Discard closes an item that must not be reused and frees its slot.
func (p *Pool[T]) Discard(it T) {
	p.closeItem(it)
	p.freeSlot()
}

// freeSlot gives up a slot counted in inUse: to the first waiter, who makes
// an item in it, or back to the pool.
func (p *Pool[T]) freeSlot() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed && len(p.waiters) > 0 {
		p.popWaiter() <- grant[T]{fresh: true}
		return
	}
	p.inUse--
	p.signalDrained()
}

// popWaiter removes and returns the first waiter. p.mu is held.
func (p *Pool[T]) popWaiter() chan grant[T] {
	w := p.waiters[0]
	p.waiters[0] = nil
	p.waiters = p.waiters[1:]
	return w
}

// signalDrained closes drained when the last item in use of a closed pool
// comes back. p.mu is held.
func (p *Pool[T]) signalDrained() {
	if p.closed && p.inUse == 0 {
		close(p.drained)
	}
}

// Prime makes sure at least one item exists, so that an item that cannot be
// made fails here rather than on the first use. It returns the error of
// newItem.
func (p *Pool[T]) Prime(ctx context.Context) error {
	it, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	p.Release(it)
	return nil
}

// Close stops handing out items, turns away every waiting Acquire with
// ErrClosed, closes the idle items, and waits until every item in use is
// handed back (or ctx ends); items handed back later are closed on return.
// Close is safe to call more than once; only the first call waits.
func (p *Pool[T]) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		for _, w := range p.waiters {
			w <- grant[T]{err: ErrClosed}
		}
		p.waiters = nil
		idle := p.idle
		p.idle = nil
		p.nIdle.Store(0)
		if p.inUse == 0 {
			close(p.drained)
		}
		p.mu.Unlock()
		for _, it := range idle {
			p.closeItem(it)
		}
		select {
		case <-p.drained:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}
