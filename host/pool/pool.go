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
type Pool[T any] struct {
	newItem   func(context.Context) (T, error)
	closeItem func(T)

	slots  chan struct{} // one token per item in use or being made
	idle   chan T        // items ready for reuse, never more than cap(slots)
	closed atomic.Bool
	once   sync.Once
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
		slots:     make(chan struct{}, max),
		idle:      make(chan T, max),
	}
}

// Max returns the most items the pool will hold.
func (p *Pool[T]) Max() int { return cap(p.slots) }

// InUse returns how many items are handed out or being made right now.
func (p *Pool[T]) InUse() int { return len(p.slots) }

// Idle returns how many items wait for reuse.
func (p *Pool[T]) Idle() int { return len(p.idle) }

// Acquire returns an idle item, or a new one if fewer than Max are live. If
// all are in use it waits until one comes back or ctx ends, and then returns
// an error wrapping both ErrBusy and ctx.Err(). The caller must hand the
// item back with exactly one Release or Discard.
func (p *Pool[T]) Acquire(ctx context.Context) (T, error) {
	var zero T
	if p.closed.Load() {
		return zero, ErrClosed
	}
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return zero, errors.Join(ErrBusy, ctx.Err())
		}
	}
	if p.closed.Load() {
		<-p.slots
		return zero, ErrClosed
	}
	select {
	case it := <-p.idle:
		return it, nil
	default:
	}
	it, err := p.newItem(ctx)
	if err != nil {
		<-p.slots
		return zero, err
	}
	return it, nil
}

// Release returns a healthy item for reuse. After Close it closes the item.
func (p *Pool[T]) Release(it T) {
	if p.closed.Load() {
		p.closeItem(it)
		<-p.slots
		return
	}
	// Room is guaranteed: idle items never outnumber slots.
	p.idle <- it
	<-p.slots
	// Close may have drained idle between the check above and the send.
	if p.closed.Load() {
		p.drainIdle()
	}
}

// Discard closes an item that must not be reused and frees its slot.
func (p *Pool[T]) Discard(it T) {
	p.closeItem(it)
	<-p.slots
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

// Close stops handing out items, waits until every item in use is handed
// back (or ctx ends), and closes all idle ones. Items handed back later are
// closed on return. Close is safe to call more than once; only the first
// call waits.
func (p *Pool[T]) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		p.closed.Store(true)
		// Take every slot: when we hold them all, nothing is in use.
		taken := 0
	wait:
		for taken < cap(p.slots) {
			select {
			case p.slots <- struct{}{}:
				taken++
			case <-ctx.Done():
				err = ctx.Err()
				break wait
			}
		}
		p.drainIdle()
		for ; taken > 0; taken-- {
			<-p.slots
		}
	})
	return err
}

func (p *Pool[T]) drainIdle() {
	for {
		select {
		case it := <-p.idle:
			p.closeItem(it)
		default:
			return
		}
	}
}
