package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/resilience"
)

// route is one plugin name's place on the bus: its subscriptions, and the
// version that serves them now. Versions come and go; the route stays.
type route struct {
	h        *Host
	name     string
	current  atomic.Pointer[plugin.Plugin]
	cfg      atomic.Pointer[routeConfig]
	isPolicy bool // set once, under h.mu, before the route is shared
	shared   bool // Spec.Shared of the version serving; under h.mu

	mu      sync.Mutex // guards subs, queue and workers; held by Load, not per message
	subs    map[string]*nats.Subscription
	queue   string
	workers int

	// inbox carries messages from the subscriptions' callbacks to the
	// workers. Workers live as long as the route, so their stacks, grown
	// once by the first call into wazero, are not grown again per message.
	inbox   chan arrival
	working sync.WaitGroup
}

// arrival is a message and when it arrived: its deadline counts from then,
// so time spent waiting for a worker counts against it.
type arrival struct {
	m  *nats.Msg
	at time.Duration // deadline.Now()
}

func newRoute(h *Host, name string) *route {
	return &route{h: h, name: name, subs: map[string]*nats.Subscription{},
		inbox: make(chan arrival, h.opts.QueueDepth)}
}

// ensureWorkers starts workers until there are n: one per instance the
// current version may have, so every instance can be busy at once.
func (r *route) ensureWorkers(n int) {
	for ; r.workers < n; r.workers++ {
		r.working.Add(1)
		go func() {
			defer r.working.Done()
			// The inbox closes once the route has drained; if Close gives
			// up before that, the host's life ends and so do the workers.
			done := r.h.life.Done()
			for {
				select {
				case a, ok := <-r.inbox:
					if !ok {
						return
					}
					r.serve(a)
				case <-done:
					return
				}
			}
		}()
	}
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
	r.ensureWorkers(poolSize)
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

// onMsg runs on the subscription's goroutine. It blocks when the route's
// inbox is full: that is the backpressure, and NATS buffers what waits.
//
// A message on a system subject (which only a wildcard subscription can
// match) never reaches a plugin, and one whose reply subject is over
// abi.MaxSubjectLen is dropped: answering it would send the server a
// protocol line longer than it accepts, and it would close the host's
// connection.
func (r *route) onMsg(m *nats.Msg) {
	if len(m.Reply) > abi.MaxSubjectLen || abi.SystemSubject(m.Subject) {
		r.h.counters.Dropped.Add(1)
		return
	}
	select {
	case r.inbox <- arrival{m: m, at: deadline.Now()}:
	case <-r.h.life.Done():
		// Close gave up waiting: nobody will serve the inbox.
	}
}

func (r *route) serve(a arrival) {
	h, m := r.h, a.m
	p := r.current.Load()
	timeout := p.Timeout()
	// A message from the bus has no caller's context: the host's own
	// stands for it, so a Close that runs out of patience ends its calls.
	ctx := h.life
	if timeout > 0 {
		at := a.at + timeout
		if deadline.Now() > at {
			h.log.Warn("busy: message waited past its deadline", "plugin", r.name, "subject", m.Subject)
			h.errorReply(m.Reply, 503, "busy: no instance free before the deadline", nil)
			return
		}
		// Most messages are served well before their deadline: the
		// context starts a timer only if something waits on it.
		dl := deadline.At(ctx, at)
		defer dl.Release()
		ctx = dl
	}
	select {
	case h.inflight <- struct{}{}:
	default:
		select {
		case h.inflight <- struct{}{}:
		case <-ctx.Done():
			h.log.Warn("busy: host-wide call limit reached", "plugin", r.name, "subject", m.Subject)
			h.errorReply(m.Reply, 503, "busy: host-wide call limit reached", nil)
			return
		}
	}
	defer func() { <-h.inflight }()

	h.seal.admit(m.Subject, m.Header, m.Data)
	msg := &plugin.Message{Subject: m.Subject, Reply: m.Reply, Header: m.Header, Data: m.Data}
	cfg := r.cfg.Load()
	out := h.process(ctx, cfg.policies, msg, func(ctx context.Context, msg *plugin.Message) outcome {
		return r.invoke(ctx, cfg, msg)
	})
	h.sendNATS(msg, out)
}

// invoke calls the handler with the route's fault tolerance: the breaker
// first, then the call, retried with backoff when the handler is marked
// idempotent; when every attempt failed, the fallback answers a request and
// the dead-letter subject receives an event.
func (r *route) invoke(ctx context.Context, cfg *routeConfig, msg *plugin.Message) outcome {
	h := r.h
	res := cfg.res
	var last outcome
	attempts := 0
	for attempt := 1; ; attempt++ {
		attempts = attempt
		if !cfg.breaker.Allow() {
			h.counters.BreakerRejects.Add(1)
			last = failure(503, "circuit open: "+r.name+" is failing; try again later")
			break
		}
		out, failed := r.call(ctx, msg)
		cfg.breaker.Record(failed)
		if !failed || out.sent {
			return out // a success, a client error, or a reply already out
		}
		last = out
		if res.Idempotent && attempt <= res.Retries {
			wait := resilience.Backoff(attempt, res.Backoff, res.MaxBackoff)
			if why := h.backoff(ctx, wait); why != "" {
				h.log.Debug("not retrying", "plugin", r.name, "subject", msg.Subject, "attempt", attempt+1, "reason", why)
				break
			}
			h.log.Debug("retrying", "plugin", r.name, "subject", msg.Subject, "attempt", attempt+1, "after", wait)
			continue
		}
		break
	}
	h.counters.HandlerFailures.Add(1)
	if msg.Reply != "" || msg.Respond != nil {
		if res.Fallback != nil {
			h.counters.Fallbacks.Add(1)
			return outcome{header: map[string][]string{abi.HeaderFallback: {"true"}}, data: res.Fallback}
		}
		return last
	}
	if res.DeadLetter != "" {
		h.deadLetter(res.DeadLetter, r.name, msg, last, attempts)
	}
	return outcome{none: true}
}

// backoff waits d before a retry. It returns at once, with the reason,
// when the retry could not start before the message's deadline or the
// host is closing, and stops waiting when either happens; it returns ""
// when the retry may go ahead. Retries counts the waits begun.
func (h *Host) backoff(ctx context.Context, d time.Duration) string {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return "the backoff would end past the message's deadline"
	}
	select {
	case <-h.stopping:
		return "the host is closing"
	default:
	}
	h.counters.Retries.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-h.stopping:
	}
	select {
	case <-h.stopping:
		return "the host is closing"
	default:
	}
	if err := ctx.Err(); err != nil {
		return "the message's context ended: " + err.Error()
	}
	return ""
}

// call runs the handler once. failed reports a fault or a status of 500 or
// more.
func (r *route) call(ctx context.Context, msg *plugin.Message) (outcome, bool) {
	h := r.h
	p := r.current.Load()
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
			// The swap has not been published yet: give it a moment,
			// within the message's deadline.
			t := time.NewTimer(time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return failure(f.Kind.Code(), f.Kind.String()+": "+f.Summary()), true
			}
			p = r.current.Load()
			continue
		}
		switch {
		case f != nil:
			level := h.log.Error
			if f.Kind == plugin.FaultBusy {
				level = h.log.Warn
			}
			level("plugin fault", "plugin", f.Plugin, "version", f.Version, "subject", msg.Subject,
				"fault", f.Kind.String(), "error", f.Summary())
			h.log.Debug("plugin fault detail", "plugin", f.Plugin, "error", f.Err)
			if res.Replied {
				return outcome{sent: true}, true
			}
			return failure(f.Kind.Code(), f.Kind.String()+": "+f.Summary()), true
		case err != nil:
			h.log.Error("plugin call failed", "plugin", r.name, "subject", msg.Subject, "error", err)
			return failure(500, err.Error()), true
		case res.Status != 0:
			h.log.Warn("handler failed", "plugin", r.name, "version", p.VersionHash(), "subject", msg.Subject,
				"status", res.Status, "error", res.Error)
			if res.Replied {
				return outcome{sent: true}, res.Status >= 500
			}
			code := int(res.Status)
			if code < 0 {
				code = 500
			}
			return failure(code, res.Error), code >= 500
		case res.Replied:
			return outcome{sent: true}, false
		}
		return outcome{none: true}, false
	}
}

// close drains the subscriptions, waits for their messages to be served and
// closes the current version.
func (r *route) close(ctx context.Context) error {
	r.mu.Lock()
	drained := make([]<-chan nats.SubStatus, 0, len(r.subs))
	for _, sub := range r.subs {
		// Asked before Drain, so the change cannot be missed; a
		// subscription already closed reports it at once.
		drained = append(drained, sub.StatusChanged(nats.SubscriptionClosed))
		_ = sub.Drain()
	}
	r.subs = map[string]*nats.Subscription{}
	r.mu.Unlock()
	// Drain delivers what is pending to onMsg, then closes the
	// subscription, which the channel reports (and is then closed).
	for _, ch := range drained {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// onMsg has put every message in the inbox; the workers serve what is
	// there and stop.
	close(r.inbox)
	done := make(chan struct{})
	go func() { r.working.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p := r.current.Load(); p != nil {
		return p.Close(ctx)
	}
	return nil
}
