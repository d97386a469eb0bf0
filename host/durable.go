package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
)

// Durable makes a handler consume its subjects from a JetStream stream
// instead of a plain subscription: an event published to one of its
// subjects is stored first, and it is delivered to the handler until the
// handler (and its policies) succeed with it, or it has been delivered
// MaxDeliver times. That is at-least-once: a handler that must not apply
// an event twice de-duplicates by the event's Nats-Msg-Id (JetStream drops
// a publish whose id it saw within Duplicates) or an id of its own.
//
// Every host running the handler shares one durable consumer, named after
// the handler's queue group, so each stored event goes to one of them. A
// reload swaps the version and leaves the consumer alone: an event in
// flight is acknowledged by whichever version handled it, and never
// before it was handled.
type Durable struct {
	// Stream is the JetStream stream holding the handler's subjects
	// (default "TRELLIS_" and the plugin's name in capitals). The host
	// creates it, or updates it to these settings and adds the handler's
	// subjects to it. Durable handlers that serve the same subjects name
	// the same stream (JetStream lets no two streams hold one subject);
	// each still has its own consumer and gets every event.
	Stream string
	// MaxDeliver is how many times an event is delivered before it is
	// given up: dead-lettered (Resilience.DeadLetter) or dropped
	// (default 5).
	MaxDeliver int
	// Backoff is the wait before each redelivery of a failed event, the
	// last one repeated (default 1s, 5s, 30s).
	Backoff []time.Duration
	// AckWait is how long JetStream waits for the outcome of a delivery
	// before delivering the event again (default: the handler's timeout
	// plus 30s, so that only a host that died lets it run out).
	AckWait time.Duration
	// MaxAge, MaxBytes and MaxMsgs bound the stream (0: no bound); the
	// oldest events go first.
	MaxAge   time.Duration
	MaxBytes int64
	MaxMsgs  int64
	// Replicas is how many servers of a cluster store the stream (default:
	// the bus's, bus.Bus.Replicas: three with a cluster block, else one).
	Replicas int
	// Duplicates is the window in which a second publish with the same
	// Nats-Msg-Id is dropped (default 2m).
	Duplicates time.Duration
	// Ordered delivers one event at a time, in the order stored, across
	// every host: the next waits until the one before is acknowledged.
	Ordered bool
}

// Defaults for Durable fields left zero.
const (
	DefaultMaxDeliver = 5
	DefaultDuplicates = 2 * time.Minute
)

// defaultBackoff is Durable.Backoff when empty.
var defaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// withDefaults returns d with every zero field set, for the handler name
// with the given call timeout.
func (d Durable) withDefaults(name string, timeout time.Duration) Durable {
	if d.Stream == "" {
		d.Stream = "TRELLIS_" + strings.ToUpper(strings.NewReplacer("-", "_", "=", "_", "/", "_").Replace(name))
	}
	if d.MaxDeliver <= 0 {
		d.MaxDeliver = DefaultMaxDeliver
	}
	if len(d.Backoff) == 0 {
		d.Backoff = defaultBackoff
	}
	if d.AckWait <= 0 {
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		d.AckWait = timeout + 30*time.Second
	}
	if d.Duplicates <= 0 {
		d.Duplicates = DefaultDuplicates
	}
	return d
}

// check says what is wrong with d, if anything.
func (d Durable) check(name string) error {
	if d.Stream != "" && (strings.ContainsAny(d.Stream, ".*> \t") || len(d.Stream) > 255) {
		return fmt.Errorf("plugin %q: durable stream %.64q: want up to 255 characters, none of '.', '*', '>' or a space", name, d.Stream)
	}
	for _, b := range d.Backoff {
		if b <= 0 {
			return fmt.Errorf("plugin %q: durable backoff %s: want a positive duration", name, b)
		}
	}
	if d.MaxBytes < 0 || d.MaxMsgs < 0 || d.MaxAge < 0 || d.Replicas > 5 {
		return fmt.Errorf("plugin %q: durable limits: want MaxAge, MaxBytes, MaxMsgs of 0 or more and at most 5 replicas", name)
	}
	return nil
}

// ErrJetStreamUnavailable is wrapped by Apply's error when a durable
// handler's stream or consumer could not be made because JetStream cannot
// place it now: a cluster whose members have not met yet (no meta leader),
// or fewer peers up than the stream's replicas. Waiting for the other
// members may cure it; `trellis run` waits and tries its first apply
// again, not ready meanwhile.
var ErrJetStreamUnavailable = errors.New("JetStream cannot place it now")

// Transient JetStream API error codes (nats-server's errors.json):
// no suitable peers, system temporarily unavailable, insufficient
// resources.
const (
	jsErrNoPeers         = 10005
	jsErrNotAvailable    = 10008
	jsErrInsufficientRes = 10023
)

// placement marks err as ErrJetStreamUnavailable when waiting may cure it.
func placement(err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsErrNoPeers, jsErrNotAvailable, jsErrInsufficientRes:
			return fmt.Errorf("%w: %w", ErrJetStreamUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("%w: %w", ErrJetStreamUnavailable, err)
	}
	return err
}

// consumer is a durable binding's consumption: the consumer shared by
// every host, and this host's part in it.
type consumer struct {
	cfg    Durable // as applied, with defaults
	subs   []string
	stream string
	name   string
	cc     jetstream.ConsumeContext
}

// ensureConsumer makes sure the stream and the durable consumer exist with
// cfg, and starts consuming into b's inbox. It does not touch b: the caller
// adopts the result, or stops it.
func (b *binding) startConsumer(ctx context.Context, cfg Durable, subjects []string, queue string, poolSize int) (*consumer, error) {
	js, err := jetstream.New(b.h.bus.Conn())
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	// Handlers that share subjects share a stream by naming it: each adds
	// its subjects, none removes another's, and each has its own consumer.
	streamSubjects := append([]string(nil), subjects...)
	if st, err := js.Stream(ctx, cfg.Stream); err == nil {
		for _, s := range st.CachedInfo().Config.Subjects {
			if !slices.Contains(streamSubjects, s) {
				streamSubjects = append(streamSubjects, s)
			}
		}
	}
	scfg := jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   streamSubjects,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     cfg.MaxAge,
		MaxBytes:   orUnlimited(cfg.MaxBytes),
		MaxMsgs:    orUnlimited(cfg.MaxMsgs),
		Replicas:   cmp.Or(cfg.Replicas, b.h.bus.Replicas()),
		Duplicates: cfg.Duplicates,
	}
	if _, err := js.CreateOrUpdateStream(ctx, scfg); err != nil {
		return nil, fmt.Errorf("durable stream %s for %v: %w", cfg.Stream, subjects, placement(err))
	}
	// Acknowledgements are asynchronous round trips: let a good number of
	// events be in flight (JetStream's own default, across all hosts), and
	// fetch in batches that keep every instance of this host busy.
	pending, batch := 1000, max(4*poolSize, 64)
	if cfg.Ordered {
		pending, batch = 1, 1
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:        queue,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     cfg.MaxDeliver,
		MaxAckPending:  pending,
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if len(subjects) == 1 {
		ccfg.FilterSubject, ccfg.FilterSubjects = subjects[0], nil
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, ccfg)
	if err != nil {
		return nil, fmt.Errorf("durable consumer %s on stream %s: %w", queue, cfg.Stream, placement(err))
	}
	cc, err := cons.Consume(b.onStored, jetstream.PullMaxMessages(batch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				b.h.log.Warn("durable consumer", "plugin", b.name, "stream", cfg.Stream, "error", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("durable consumer %s: %w", queue, err)
	}
	return &consumer{cfg: cfg, subs: append([]string(nil), subjects...), stream: cfg.Stream, name: queue, cc: cc}, nil
}

func orUnlimited(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// same reports whether c already consumes subjects under queue with cfg.
func (c *consumer) same(cfg Durable, subjects []string, queue string) bool {
	return c != nil && c.name == queue && reflect.DeepEqual(c.cfg, cfg) && reflect.DeepEqual(c.subs, subjects)
}

// stop ends this host's consumption, leaving the consumer and its stored
// events in JetStream; it returns once the last message fetched has been
// handed to the inbox.
func (c *consumer) stop() {
	c.cc.Drain()
	<-c.cc.Closed()
}

// onStored runs on the consumer's goroutine, like onMsg for a
// subscription: it blocks while the inbox is full.
func (b *binding) onStored(jm jetstream.Msg) {
	select {
	case b.inbox <- arrival{stored: jm, at: deadline.Now()}:
	case <-b.h.life.Done():
		// Not acknowledged: JetStream delivers it again after AckWait.
	}
}

// serveStored handles one stored event and tells JetStream the outcome:
// acknowledged once handled, delivered again after the backoff if the
// handler or a policy failed (a fault or a status of 500 or more), and
// given up (dead-lettered when configured) at its last delivery.
func (b *binding) serveStored(a arrival, snap *snapshot, w *worker) {
	h, jm := b.h, a.stored
	meta, err := jm.Metadata()
	delivered := uint64(1)
	if err == nil {
		delivered = meta.NumDelivered
	}
	hdr := jm.Headers()
	if hdr == nil {
		hdr = nats.Header{}
	}
	hdr.Set(abi.HeaderDelivery, strconv.FormatUint(delivered, 10))
	m := &nats.Msg{Subject: jm.Subject(), Header: hdr, Data: jm.Data()}
	obs := b.observe(m, a, snap)
	out, _, failed := b.handle(a, snap, m, true, w)
	b.observed(obs, out, 0)
	cfg := snap.durable
	switch {
	case !failed:
		if err := jm.Ack(); err != nil {
			h.log.Warn("durable ack failed; the event will be delivered again", "plugin", b.name, "subject", m.Subject, "error", err)
		}
	case delivered >= uint64(cfg.MaxDeliver):
		if d := snap.res.DeadLetter; d != "" {
			h.deadLetterMsg(d, b.name, m.Subject, m.Header, m.Data, out, int(delivered))
		} else {
			h.log.Error("durable event given up after its last delivery", "plugin", b.name, "subject", m.Subject,
				"deliveries", delivered, "error", out.text())
		}
		_ = jm.Term()
	default:
		i := min(int(delivered)-1, len(cfg.Backoff)-1)
		_ = jm.NakWithDelay(cfg.Backoff[i])
	}
}

// storedSubjects are the subjects of every durable handler's stream, as
// the last commit left them.
type storedSubjects struct{ patterns []string }

// stored reports whether a durable handler's stream holds subject, so that
// a publish to it must be confirmed by JetStream.
func (h *Host) stored(subject string) bool {
	s := h.storedSubjects.Load()
	if s == nil {
		return false
	}
	for _, p := range s.patterns {
		if abi.SubjectCovers(p, subject) {
			return true
		}
	}
	return false
}

// publishEvent publishes m: to JetStream, waiting for its acknowledgement,
// when a durable handler's stream holds the subject (so that a nil error
// means the event is stored), else to NATS.
func (h *Host) publishEvent(ctx context.Context, m *nats.Msg) error {
	if !h.stored(m.Subject) {
		return h.bus.Conn().PublishMsg(m)
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if _, err := h.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("not stored: %w", err)
	}
	return nil
}
