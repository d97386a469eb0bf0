package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/resilience"
)

// binding is one plugin name's place in the host. For a handler it holds
// the subscriptions, the inbox they fill and the workers that empty it; for
// a policy, only its snapshot. Versions come and go; the binding stays.
//
// What serves a message is the binding's snapshot, read with one atomic
// load per message and replaced whole by Apply. The rest of the binding
// (subscriptions, queue, workers) is changed only by Apply, under the
// host's applyMu, and read by nobody on a message's path.
type binding struct {
	h      *Host
	name   string
	policy bool
	snap   atomic.Pointer[snapshot]
	// cands are the handler's candidate versions, nil when it has none
	// (see candidate.go).
	cands atomic.Pointer[candidateSet]
	// rec is the handler's recording, nil when it has none (record.go).
	rec atomic.Pointer[recorder]

	subs    map[string]*nats.Subscription // under h.applyMu
	queue   string                        // under h.applyMu
	workers int                           // under h.applyMu
	cons    *consumer                     // a durable handler's; under h.applyMu

	// inbox carries messages from the subscriptions' callbacks to the
	// workers. Workers live as long as the binding, so their stacks, grown
	// once by the first call into wazero, are not grown again per message.
	inbox   chan arrival
	working sync.WaitGroup
	// direct says whether a subscription's goroutine may serve a message
	// itself instead of handing it to a worker (direct.go).
	direct *direct

	metrics *metrics.Plugin // a handler's; nil without metrics (observe.go)
}

// snapshot is everything a message's path reads about one binding:
// immutable once published.
type snapshot struct {
	plugin  *plugin.Plugin
	spec    Spec   // as applied, Wasm cleared: what the next Apply compares
	version string // plugin.VersionHash()
	// subjects and queue are what the binding subscribes to (none for a
	// policy).
	subjects []string
	queue    string
	// chain is the handler's policies, each resolved to the version
	// serving when this snapshot was made.
	chain   []boundPolicy
	res     Resilience // with defaults filled in
	breaker *resilience.Breaker
	// durable is Spec.Durable with defaults, or nil for a handler fed by
	// subscriptions.
	durable *Durable
	// mayWait says whether a call may wait within itself: the handler or
	// a policy of its chain may send requests, or the handler is retried
	// with backoff. Then its messages are never served directly, since a
	// request answered by the same subscription would wait behind the
	// very call that sent it, and a backoff would hold up what arrives
	// meanwhile (direct.go).
	mayWait bool
}

// withChain returns s serving through chain.
func (s *snapshot) withChain(chain []boundPolicy) *snapshot {
	s.chain = chain
	s.mayWait = s.plugin.MayRequest() || s.res.Idempotent && s.res.Retries > 0
	for _, bp := range chain {
		if bp.p != nil && bp.p.MayRequest() {
			s.mayWait = true
		}
	}
	return s
}

// boundPolicy is a PolicyRef resolved: p is nil when no policy of that name
// is loaded.
type boundPolicy struct {
	PolicyRef
	p *plugin.Plugin
}

// arrival is a message and when it arrived: its deadline counts from then,
// so time spent waiting for a worker counts against it.
type arrival struct {
	m      *nats.Msg     // from a subscription
	stored jetstream.Msg // or from a durable consumer
	at     time.Duration // deadline.Now()
	// start is when its serving began (deadline.Now()): at for a message
	// served directly, else when a worker took it. Set by serve.
	start time.Duration
	// sj are the metrics of the subscription's subject, if it has them
	// (subscriber.onMsg); else observe looks them up.
	sj *metrics.Subject
}

func newBinding(h *Host, name string, policy bool) *binding {
	b := &binding{h: h, name: name, policy: policy}
	if !policy {
		b.subs = map[string]*nats.Subscription{}
		b.inbox = make(chan arrival, h.opts.QueueDepth)
		b.direct = newDirect()
		b.metrics = h.metrics.Plugin(name)
	}
	return b
}

// ensureWorkers starts workers until there are n: one per instance the
// version may have, so every instance can be busy at once.
func (b *binding) ensureWorkers(n int) {
	for ; b.workers < n; b.workers++ {
		b.working.Add(1)
		go func() {
			defer b.working.Done()
			// The inbox closes once the binding has drained; if Close gives
			// up before that, the host's life ends and so do the workers.
			done := b.h.life.Done()
			w := new(worker)
			for {
				select {
				case a, ok := <-b.inbox:
					if !ok {
						return
					}
					b.serve(a, w, deadline.Now())
				case <-done:
					return
				}
			}
		}()
	}
}

// subscribeNew subscribes to each subject of want not yet subscribed
// under queue, and returns the subscriptions it made; the caller keeps
// them (adopt) or undoes them (unsubscribe). Nothing already subscribed
// is touched, so subjects both versions serve have no gap.
func (b *binding) subscribeNew(want []string, queue string) ([]*nats.Subscription, error) {
	nc := b.h.bus.Conn()
	var made []*nats.Subscription
	for _, s := range want {
		if sub := b.subs[s]; sub != nil && queue == b.queue {
			continue
		}
		sub, err := nc.QueueSubscribe(s, queue, (&subscriber{b: b}).onMsg)
		if err != nil {
			return made, fmt.Errorf("subscribe %q: %w", s, err)
		}
		// Let a flood wait in NATS's buffers rather than be dropped early.
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		made = append(made, sub)
	}
	return made, nil
}

// adopt makes made (from subscribeNew) the binding's subscriptions for
// subjects under queue, and drains those no longer wanted: a subject gone,
// or every subject when the queue group changed.
func (b *binding) adopt(made []*nats.Subscription, subjects []string, queue string) {
	if queue != b.queue {
		for s, sub := range b.subs {
			_ = sub.Drain()
			delete(b.subs, s)
		}
		b.queue = queue
	}
	for _, sub := range made {
		b.subs[sub.Subject] = sub
	}
	want := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		want[s] = true
	}
	for s, sub := range b.subs {
		if !want[s] {
			_ = sub.Drain()
			delete(b.subs, s)
		}
	}
}

// subjects returns what the binding is subscribed to, as its snapshot says.
func (b *binding) subjects() []string {
	if s := b.snap.Load(); s != nil {
		return s.subjects
	}
	return nil
}

// admissible reports whether m, from a subscription, may reach the plugin
// at all, and counts it as dropped if not. A message on a system subject
// (which only a wildcard subscription can match) never reaches a plugin,
// and one whose reply subject is over abi.MaxSubjectLen is dropped:
// answering it would send the server a protocol line longer than it
// accepts, and it would close the host's connection.
func (b *binding) admissible(m *nats.Msg) bool {
	if len(m.Reply) > abi.MaxSubjectLen || abi.SystemSubject(m.Subject) {
		b.h.counters.Dropped.Add(1)
		return false
	}
	return true
}

// enqueue hands a to the workers, on the subscription's goroutine. It
// blocks when the binding's inbox is full: that is the backpressure, and
// NATS buffers what waits.
func (b *binding) enqueue(a arrival) {
	select {
	case b.inbox <- a:
	case <-b.h.life.Done():
		// Close gave up waiting: nobody will serve the inbox.
	}
}

// worker is what one of a binding's workers reuses from message to
// message, so that serving one allocates nothing of the host's own: the
// message handed to the plugin and its deadline. Nothing keeps either
// past the message: the plugin's call, the policies and the reply are
// done when handle returns.
type worker struct {
	msg plugin.Message
	dl  deadline.Context
	tap *tap // while the stable's handling is copied to shadows (shadow.go)
}

// serve serves one message, on a worker or directly on its subscription's
// goroutine, and tells the direct dispatch gate how long that took, unless
// an instance was made meanwhile: that is the pool growing (a direct call
// is only made with an instance idle), not the handler being slow.
//
// start is when its serving starts (deadline.Now()): a.at for a message
// served directly, which is taken at once.
func (b *binding) serve(a arrival, w *worker, start time.Duration) {
	a.start = start
	snap := b.snap.Load() // stored before the binding's first subscription
	made := snap.plugin.Created()
	end := b.serveOne(a, snap, w)
	// Nothing keeps the message past its serving: let its payload go.
	w.msg = plugin.Message{}
	if snap.plugin.Created() == made {
		b.direct.served(start, end)
	}
}

// serveOne serves a with snap and returns when it was done.
func (b *binding) serveOne(a arrival, snap *snapshot, w *worker) time.Duration {
	if a.stored != nil {
		b.serveStored(a, snap, w)
		return deadline.Now()
	}
	if cs := b.cands.Load(); cs != nil {
		b.serveCandidates(a, snap, cs, w)
		return deadline.Now()
	}
	if r := b.rec.Load(); r != nil && r.on.Load() && r.matches(a.m.Subject) {
		b.serveRecorded(a, snap, r, w)
		return deadline.Now()
	}
	m := a.m
	obs := b.observe(m, a, snap)
	out, resp, _ := b.handle(a, snap, m, false, w)
	end := out.end // the message ended with the handler's call...
	if b.h.sendNATS(m.Reply, resp, out) || len(snap.chain) > 0 {
		end = 0 // ...unless the host answered or a policy ran after it
	}
	return b.observed(obs, out, end)
}

// serveMsg runs m through the snapshot's policies and handler within the
// message's deadline and the host-wide cap on calls, under parent (the
// host's life, or a span of it: see handle in trace.go), and returns how it
// ended, the response headers policies and the handler set, and whether
// that is a failure (a status of 500 or more: a fault,
// a policy that failed, no instance in time). A stored event (durable)
// has no reply subject for the plugin, and its failures are left to
// JetStream's redelivery rather than dead-lettered here.
func (b *binding) serveMsg(parent context.Context, a arrival, snap *snapshot, m *nats.Msg, durable bool, w *worker) (outcome, map[string][]string, bool) {
	h := b.h
	timeout := snap.plugin.Timeout()
	// A message from the bus has no caller's context: the host's own
	// stands for it, so a Close that runs out of patience ends its calls.
	ctx := parent
	if timeout > 0 {
		at := a.at + timeout
		if a.start > at {
			h.log.Warn("busy: message waited past its deadline", logTrace(ctx, "plugin", b.name, "subject", m.Subject)...)
			return busy("busy: no instance free before the deadline"), nil, true
		}
		// Most messages are served well before their deadline: the
		// context starts a timer only if something waits on it.
		dl := &w.dl
		dl.Reset(ctx, at)
		defer dl.Release()
		ctx = dl
	}
	// The handler's call is timed from when serving began (see callOnce)
	// when nothing but the host's own set-up comes before it: no policy,
	// no wait for the host-wide limit.
	since := a.start
	if len(snap.chain) > 0 {
		since = 0
	}
	if !h.inflight.TryTake() {
		since = 0
		if h.inflight.Take(ctx) != nil {
			h.log.Warn("busy: host-wide call limit reached", logTrace(ctx, "plugin", b.name, "subject", m.Subject)...)
			return busy("busy: host-wide call limit reached"), nil, true
		}
	}
	defer h.inflight.Give()

	h.seal.admit(m.Subject, m.Header, m.Data)
	if h.tracer != nil {
		// After admit: the seal covers every header as it was sent.
		m.Header = withTrace(ctx, m.Header)
	}
	reply := m.Reply
	if durable {
		reply = ""
	}
	msg := &w.msg
	*msg = plugin.Message{Subject: m.Subject, Reply: reply, Header: m.Header, Data: m.Data}
	if w.tap != nil {
		w.tap.arm(msg)
	}
	var out outcome
	if len(snap.chain) == 0 && w.tap == nil {
		// What process does with no policy, without its layers.
		out = b.invoke(ctx, snap, msg, durable, since)
	} else {
		out = h.process(ctx, snap.chain, msg, func(ctx context.Context, msg *plugin.Message) outcome {
			if w.tap != nil {
				w.tap.delivered(msg)
			}
			return b.invoke(ctx, snap, msg, durable, since)
		})
	}
	return out, msg.RespHeader, out.status >= 500
}

// invoke calls the handler with the binding's fault tolerance: the breaker
// first, then the call, retried with backoff when the handler is marked
// idempotent; when every attempt failed, the fallback answers a request and
// the dead-letter subject receives an event. since, if not 0, is when the
// first attempt is timed from (see callOnce).
func (b *binding) invoke(ctx context.Context, snap *snapshot, msg *plugin.Message, durable bool, since time.Duration) outcome {
	h := b.h
	res := snap.res
	var last outcome
	attempts := 0
	for attempt := 1; ; attempt++ {
		attempts = attempt
		if !snap.breaker.Allow() {
			h.counters.BreakerRejects.Add(1)
			b.metrics.BreakerReject()
			last = failure(503, "circuit open: "+b.name+" is failing; try again later")
			break
		}
		var out outcome
		var failed bool
		if h.tracer == nil {
			out, failed = b.callOnce(ctx, snap.plugin, msg, since)
		} else {
			out, failed = b.call(ctx, snap.plugin, msg)
		}
		since = 0 // a retry is timed from its own start
		snap.breaker.Record(failed)
		if !failed || out.sent {
			return out // a success, a client error, or a reply already out
		}
		last = out
		if res.Idempotent && attempt <= res.Retries {
			wait := resilience.Backoff(attempt, res.Backoff, res.MaxBackoff)
			if why := h.backoff(ctx, wait); why != "" {
				h.log.Debug("not retrying", "plugin", b.name, "subject", msg.Subject, "attempt", attempt+1, "reason", why)
				break
			}
			h.log.Debug("retrying", "plugin", b.name, "subject", msg.Subject, "attempt", attempt+1, "after", wait)
			b.metrics.Retry()
			continue
		}
		break
	}
	h.counters.HandlerFailures.Add(1)
	if msg.Reply != "" || msg.Respond != nil {
		if res.Fallback != nil {
			h.counters.Fallbacks.Add(1)
			b.metrics.Fallback()
			return reply(map[string][]string{abi.HeaderFallback: {"true"}}, res.Fallback)
		}
		return last
	}
	if durable {
		return last // JetStream delivers it again, or serveStored gives it up
	}
	if res.DeadLetter != "" {
		h.deadLetterMsg(res.DeadLetter, b.name, msg.Subject, msg.Header, msg.Data, last, attempts)
		b.metrics.DeadLetter()
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

// callOnce runs the handler version p once. failed reports a fault or a
// status of 500 or more. The call is timed from since when it is not 0:
// when the message's serving began, if only the host's own set-up came
// between (a fraction of a microsecond, where the latency histogram's
// first bucket is 50 µs), which spares a clock read per message. The
// outcome's end is when the call ended.
func (b *binding) callOnce(ctx context.Context, p *plugin.Plugin, msg *plugin.Message, since time.Duration) (outcome, bool) {
	start := since
	if start == 0 {
		start = deadline.Now()
	}
	res, err := p.Handle(ctx, msg)
	if err != nil && isClosed(err) {
		// The version this message's snapshot named was swapped out and
		// closed before the call began; nothing ran, so run it on the
		// version serving now.
		if next := b.snap.Load(); next != nil && next.plugin != p {
			p = next.plugin
			res, err = p.Handle(ctx, msg)
		}
	}
	end := deadline.Now()
	b.metrics.Handled(end - start)
	out, failed := b.result(ctx, p, msg, res, err)
	out.end = end
	return out, failed
}

// result is the outcome of a call to handler version p that returned res
// and err, logged and counted as a fault when it is one.
func (b *binding) result(ctx context.Context, p *plugin.Plugin, msg *plugin.Message, res plugin.Result, err error) (outcome, bool) {
	h := b.h
	switch f := asFault(err); {
	case err == nil:
	case f != nil:
		h.recordFault(f, msg.Subject)
		level := h.log.Error
		if f.Kind == plugin.FaultBusy {
			level = h.log.Warn
		}
		level("plugin fault", logTrace(ctx, "plugin", f.Plugin, "version", f.Version, "subject", msg.Subject,
			"fault", f.Kind.String(), "error", f.Summary())...)
		h.log.Debug("plugin fault detail", "plugin", f.Plugin, "error", f.Err)
		if res.Replied {
			return outcome{sent: true}, true
		}
		return faultOutcome(f, f.Kind.String()+": "+f.Summary()), true
	default:
		h.log.Error("plugin call failed", logTrace(ctx, "plugin", b.name, "subject", msg.Subject, "error", err)...)
		return failure(500, err.Error()), true
	}
	switch {
	case res.Status != 0:
		h.log.Warn("handler failed", logTrace(ctx, "plugin", b.name, "version", p.VersionHash(), "subject", msg.Subject,
			"status", res.Status, "error", res.Error)...)
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

// isClosed reports a call refused because its version was closed.
func isClosed(err error) bool {
	f := asFault(err)
	return f != nil && f.Kind == plugin.FaultClosed
}

// asFault returns err's Fault, or nil. Apart so that the Fault pointer
// errors.As needs is made only for an error.
func asFault(err error) *plugin.Fault {
	if err == nil {
		return nil
	}
	var f *plugin.Fault
	if errors.As(err, &f) {
		return f
	}
	return nil
}

// unsubscribe undoes subscriptions made for a generation that was not
// committed. Draining delivers what they already received to the binding,
// whose snapshot serves it.
func unsubscribe(subs []*nats.Subscription) {
	for _, sub := range subs {
		_ = sub.Drain()
	}
}

// close drains the subscriptions, waits for their messages to be served and
// the workers to end, and closes the version serving. Called by Apply
// after the binding has left the generation, or by Close.
func (b *binding) close(ctx context.Context) error {
	if b.cons != nil {
		// What the consumer fetched reaches the inbox first; what it had
		// not is redelivered by JetStream to another host, or later.
		b.cons.stop()
		b.cons = nil
	}
	if !b.policy {
		drained := make([]<-chan nats.SubStatus, 0, len(b.subs))
		for _, sub := range b.subs {
			// Asked before Drain, so the change cannot be missed; a
			// subscription already closed reports it at once.
			drained = append(drained, sub.StatusChanged(nats.SubscriptionClosed))
			_ = sub.Drain()
		}
		b.subs = map[string]*nats.Subscription{}
		// Drain delivers what is pending to the callback, then closes the
		// subscription, which the channel reports (and is then closed).
		for _, ch := range drained {
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// The callbacks have served every message or put it in the inbox;
		// the workers serve what is there and stop.
		close(b.inbox)
		done := make(chan struct{})
		go func() { b.working.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cerr := b.closeCandidates(ctx)
	if s := b.snap.Load(); s != nil {
		return errors.Join(s.plugin.Close(ctx), cerr)
	}
	return cerr
}
