package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/plugin"
)

// route is one plugin name's place on the bus: its subscriptions, and the
// version that serves them now. Versions come and go; the route stays.
type route struct {
	h       *Host
	name    string
	current atomic.Pointer[plugin.Plugin]

	mu    sync.Mutex // guards subs and queue; held by Load, not per message
	subs  map[string]*nats.Subscription
	queue string
	slots chan struct{} // messages of this route being served or waiting
}

func newRoute(h *Host, name string) *route {
	return &route{h: h, name: name, subs: map[string]*nats.Subscription{}}
}

func (r *route) subjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.subs))
	for s := range r.subs {
		out = append(out, s)
	}
	return out
}

// subscribe makes the route's subscriptions exactly subjects: new ones are
// added before old ones go, and those in both are left alone, so there is
// no gap for subjects both versions serve.
func (r *route) subscribe(subjects []string, queue string, stats func() (int, int, int)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _, poolSize := stats()
	if want := poolSize + r.h.opts.QueueDepth; r.slots == nil || cap(r.slots) != want {
		// A resized channel only affects messages that arrive from now on;
		// each message returns the slot it took to the channel it took it from.
		r.slots = make(chan struct{}, want)
	}
	if queue != r.queue {
		// A new queue group means new subscriptions for every subject.
		for s, sub := range r.subs {
			_ = sub.Drain()
			delete(r.subs, s)
		}
		r.queue = queue
	}
	nc := r.h.bus.Conn()
	want := map[string]bool{}
	for _, s := range subjects {
		want[s] = true
		if r.subs[s] != nil {
			continue
		}
		sub, err := nc.QueueSubscribe(s, queue, r.onMsg)
		if err != nil {
			return fmt.Errorf("subscribe %q: %w", s, err)
		}
		// Let a flood wait in NATS's buffers rather than be dropped early.
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		r.subs[s] = sub
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for s, sub := range r.subs {
		if !want[s] {
			_ = sub.Drain()
			delete(r.subs, s)
		}
	}
	return nil
}

// onMsg runs on the subscription's goroutine. It blocks when the route
// already has its fill of messages in hand: that is the backpressure.
func (r *route) onMsg(m *nats.Msg) {
	r.mu.Lock()
	slots := r.slots
	r.mu.Unlock()
	slots <- struct{}{}
	r.h.serving.Add(1)
	go func() {
		defer r.h.serving.Done()
		defer func() { <-slots }()
		r.serve(m)
	}()
}

func (r *route) serve(m *nats.Msg) {
	h := r.h
	p := r.current.Load()
	timeout := p.Timeout()
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	select {
	case h.inflight <- struct{}{}:
	case <-ctx.Done():
		h.log.Warn("busy: host-wide call limit reached", "plugin", r.name, "subject", m.Subject)
		h.errorReply(m, 503, "busy: host-wide call limit reached")
		return
	}
	defer func() { <-h.inflight }()

	msg := &plugin.Message{Subject: m.Subject, Reply: m.Reply, Header: m.Header, Data: m.Data}
	for attempt := 0; ; attempt++ {
		res, err := p.Handle(ctx, msg)
		var f *plugin.Fault
		if errors.As(err, &f) && f.Kind == plugin.FaultClosed && attempt < 8 {
			// The version we picked was swapped out and closed before the
			// call began; nothing ran, so run it on the version now current.
			if next := r.current.Load(); next != p {
				p = next
				continue
			}
			time.Sleep(time.Millisecond)
			p = r.current.Load()
			continue
		}
		switch {
		case f != nil:
			level := h.log.Error
			if f.Kind == plugin.FaultBusy {
				level = h.log.Warn
			}
			level("plugin fault", "plugin", f.Plugin, "version", f.Version, "subject", m.Subject,
				"fault", f.Kind.String(), "error", f.Summary())
			h.log.Debug("plugin fault detail", "plugin", f.Plugin, "error", f.Err)
			if !res.Replied {
				h.errorReply(m, f.Kind.Code(), f.Kind.String()+": "+f.Summary())
			}
		case err != nil:
			h.log.Error("plugin call failed", "plugin", r.name, "subject", m.Subject, "error", err)
			h.errorReply(m, 500, err.Error())
		case res.Status != 0:
			h.log.Warn("handler failed", "plugin", r.name, "version", p.VersionHash(), "subject", m.Subject,
				"status", res.Status, "error", res.Error)
			if !res.Replied {
				h.errorReply(m, int(res.Status), res.Error)
			}
		}
		return
	}
}

// close drains the subscriptions, waits for their messages to be served and
// closes the current version.
func (r *route) close(ctx context.Context) error {
	r.mu.Lock()
	subs := make([]*nats.Subscription, 0, len(r.subs))
	for _, sub := range r.subs {
		subs = append(subs, sub)
		_ = sub.Drain()
	}
	r.subs = map[string]*nats.Subscription{}
	r.mu.Unlock()
	// Drain delivers what is pending to onMsg, then invalidates the subscription.
	for _, sub := range subs {
		for sub.IsValid() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	// onMsg has taken every message; wait until the route's slots are empty.
	r.mu.Lock()
	slots := r.slots
	r.mu.Unlock()
	for slots != nil {
		if len(slots) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	if p := r.current.Load(); p != nil {
		return p.Close(ctx)
	}
	return nil
}
