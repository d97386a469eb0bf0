// Package deadline provides a context with a deadline that costs no timer
// until something waits for it.
//
// context.WithDeadline starts a timer for every context, so that Done closes
// on time. The host gives every message a deadline, but most messages are
// served long before it, and nothing ever waits on their Done channel: the
// interrupt checks in guest code and the fast paths of the pool ask Err
// instead, which needs only the clock. A Context makes the real timer
// context the first time Done is called, and never otherwise.
package deadline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// base is the origin of Now.
var base = time.Now()

// Now returns the monotonic time since the package started. It costs one
// clock read, half what time.Now costs.
func Now() time.Duration { return time.Since(base) }

// Context is a context.Context that ends at a deadline or when its parent
// ends. Call Release when done with it, as with a CancelFunc.
type Context struct {
	parent context.Context
	at     time.Duration // since base

	released atomic.Bool
	timer    atomic.Pointer[timer] // made by the first Done
	mu       sync.Mutex            // held to make the timer, so there is one
}

type timer struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a context that ends at at, or when parent ends.
func New(parent context.Context, at time.Time) *Context { return At(parent, at.Sub(base)) }

// At returns a context that ends at at, a time as Now tells it, or when
// parent ends.
func At(parent context.Context, at time.Duration) *Context {
	if pd, ok := parent.Deadline(); ok {
		at = min(at, pd.Sub(base))
	}
	return &Context{parent: parent, at: at}
}

// Reset makes c a new context that ends at at or when parent ends, as At
// would make, so that its owner can reuse one Context for call after call
// with no allocation. c must have been released (or never used), and
// nothing may hold it from before: its owner must be its only user.
func (c *Context) Reset(parent context.Context, at time.Duration) {
	if pd, ok := parent.Deadline(); ok {
		at = min(at, pd.Sub(base))
	}
	c.parent, c.at = parent, at
	c.timer.Store(nil)
	c.released.Store(false)
}

// After returns a context that ends d from now, or when parent ends.
func After(parent context.Context, d time.Duration) *Context { return At(parent, Now()+d) }

// Deadline returns the deadline.
func (c *Context) Deadline() (time.Time, bool) { return base.Add(c.at), true }

// Has reports whether ctx has a deadline, as its Deadline would, without
// making the time.Time of a Context's (which costs more than the check).
func Has(ctx context.Context) bool {
	if _, ok := ctx.(*Context); ok {
		return true
	}
	_, ok := ctx.Deadline()
	return ok
}

// Done returns a channel closed when the context ends. The first call
// starts the timer that closes it.
func (c *Context) Done() <-chan struct{} { return c.real().Done() }

// Err returns context.DeadlineExceeded once the deadline has passed, the
// parent's error once it has ended, and nil before. It reads the clock; it
// starts no timer.
func (c *Context) Err() error {
	if t := c.timer.Load(); t != nil {
		return t.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if Now() >= c.at {
		return context.DeadlineExceeded
	}
	if c.released.Load() {
		return context.Canceled
	}
	return nil
}

// Value returns the parent's value for key.
func (c *Context) Value(key any) any { return c.parent.Value(key) }

// AfterFunc arranges for f to run once the context ends, as
// context.AfterFunc does; with it, contexts derived from a Context need no
// goroutine to follow it.
func (c *Context) AfterFunc(f func()) (stop func() bool) { return context.AfterFunc(c.real(), f) }

// Release frees the timer, if Done started one. The context ends with
// context.Canceled if it had not ended yet.
func (c *Context) Release() {
	// No lock: Release stores released then loads timer, and real stores
	// timer then loads released, so at least one of them sees the other's
	// store and cancels the timer (both may; cancel is idempotent).
	c.released.Store(true)
	if t := c.timer.Load(); t != nil {
		t.cancel()
	}
}

func (c *Context) real() context.Context {
	if t := c.timer.Load(); t != nil {
		return t.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.timer.Load()
	if t == nil {
		ctx, cancel := context.WithDeadline(c.parent, base.Add(c.at))
		t = &timer{ctx, cancel}
		c.timer.Store(t)
		if c.released.Load() {
			cancel()
		}
	}
	return t.ctx
}

// String names the context for debugging, as the standard contexts do.
func (c *Context) String() string { return "deadline.Context(" + base.Add(c.at).String() + ")" }
