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
	"time"
)

// Context is a context.Context that ends at a deadline or when its parent
// ends. Call Release when done with it, as with a CancelFunc.
type Context struct {
	parent context.Context
	at     time.Time

	mu     sync.Mutex
	timer  context.Context // made by the first Done
	cancel context.CancelFunc
}

// New returns a context that ends at at, or when parent ends.
func New(parent context.Context, at time.Time) *Context {
	if pd, ok := parent.Deadline(); ok && pd.Before(at) {
		at = pd
	}
	return &Context{parent: parent, at: at}
}

// Deadline returns the deadline.
func (c *Context) Deadline() (time.Time, bool) { return c.at, true }

// Done returns a channel closed when the context ends. The first call
// starts the timer that closes it.
func (c *Context) Done() <-chan struct{} { return c.real().Done() }

// Err returns context.DeadlineExceeded once the deadline has passed, the
// parent's error once it has ended, and nil before. It reads the clock; it
// starts no timer.
func (c *Context) Err() error {
	c.mu.Lock()
	timer := c.timer
	c.mu.Unlock()
	if timer != nil {
		return timer.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.at) {
		return context.DeadlineExceeded
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
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (c *Context) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer == nil {
		c.timer, c.cancel = context.WithDeadline(c.parent, c.at)
	}
	return c.timer
}

// String names the context for debugging, as the standard contexts do.
func (c *Context) String() string { return "deadline.Context(" + c.at.String() + ")" }
