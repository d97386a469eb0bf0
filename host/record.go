package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// Recording keeps a handler's traffic on chosen subjects in a JetStream
// stream of its own, TRELLIS_RECORD_<plugin>, so that it can be replayed
// against another version later (replay.go). Each stored message is one
// message as the stable version's handler saw it (after the policies),
// with its headers and the stable's answer: what was actually sent.
//
// The stable's answer is taken the way a shadow takes it (a tap, see
// shadow.go), and the message is handed to one writer goroutine per host
// on a bounded queue: serving never waits for the store. When the queue
// is full, or the store is slow to acknowledge, a message is dropped and
// counted, never waited for. While a plugin records nothing, its
// messages pay one atomic load and a nil check for all this.

// Limits on recording, checked where they enter.
const (
	// MaxRecordSubjects caps Record.Subjects.
	MaxRecordSubjects = 16
	// DefaultRecordAge is Record.MaxAge when zero; MaxRecordAge caps it.
	DefaultRecordAge = time.Hour
	MaxRecordAge     = 7 * 24 * time.Hour
	// DefaultRecordBytes is Record.MaxBytes when zero; MaxRecordBytes caps
	// it. The stream drops its oldest messages to stay under it.
	DefaultRecordBytes = 64 << 20
	MaxRecordBytes     = 8 << 30
	// MaxRecordedMessage is the most one recorded message may hold: its
	// data, its headers and the stable's reply together, in bytes. A
	// larger one is not recorded, and is counted (too_big).
	MaxRecordedMessage = 256 << 10
	// RecordSubjectPrefix starts the subjects recorded messages are
	// stored under: RecordSubjectPrefix + plugin + "." + the subject.
	RecordSubjectPrefix = "trellis.record."
	// RecordStreamPrefix starts the name of a plugin's recording stream.
	RecordStreamPrefix = "TRELLIS_RECORD_"
	// recordQueueLen is how many messages wait for the writer.
	recordQueueLen = 1024
	// recordMaxPending is how many stores the writer leaves unacknowledged;
	// past it, it waits recordStallWait, then drops.
	recordMaxPending = 512
	recordStallWait  = 50 * time.Millisecond
)

// Event kinds of recording and replay.
const (
	EventRecording EventKind = "recording" // a plugin's recording was turned on or off
	EventReplayed  EventKind = "replayed"  // a replay ended, with its counts
)

// Record says what a handler records for replay (Spec.Record). The
// stream's limits are set from it when the plugin loads.
type Record struct {
	// Subjects are the subjects recorded (NATS wildcards allowed), each
	// within one of the plugin's own subjects; none means all of them. At
	// most MaxRecordSubjects.
	Subjects []string `json:"subjects,omitempty"`
	// MaxAge is how long a recorded message is kept (default
	// DefaultRecordAge, at most MaxRecordAge).
	MaxAge time.Duration `json:"max_age,omitempty"`
	// MaxBytes is the most the stream holds, the oldest messages dropped
	// first (default DefaultRecordBytes, at most MaxRecordBytes).
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// Off loads the plugin with recording off, until SetRecording turns it
	// on: the stream is ready, nothing is recorded.
	Off bool `json:"off,omitempty"`
}

// withDefaults checks r on its own and fills in its zero fields.
func (r Record) withDefaults() (Record, error) {
	if len(r.Subjects) > MaxRecordSubjects {
		return r, fmt.Errorf("record subjects: %d, more than %d (MaxRecordSubjects)", len(r.Subjects), MaxRecordSubjects)
	}
	for _, s := range r.Subjects {
		if err := abi.ValidSubject(s, true); err != nil {
			return r, fmt.Errorf("record subject %.64q: %w", s, err)
		}
	}
	switch {
	case r.MaxAge == 0:
		r.MaxAge = DefaultRecordAge
	case r.MaxAge < time.Second || r.MaxAge > MaxRecordAge:
		return r, fmt.Errorf("record max age %s: want 1s to %s (MaxRecordAge)", r.MaxAge, MaxRecordAge)
	}
	switch {
	case r.MaxBytes == 0:
		r.MaxBytes = DefaultRecordBytes
	case r.MaxBytes < 2*MaxRecordedMessage || r.MaxBytes > MaxRecordBytes:
		return r, fmt.Errorf("record max bytes %d: want %d to %d (MaxRecordBytes)", r.MaxBytes, 2*MaxRecordedMessage, int64(MaxRecordBytes))
	}
	r.Subjects = append([]string(nil), r.Subjects...)
	return r, nil
}

// checkRecord checks spec.Record against the subjects the handler serves:
// each recorded subject must be within one of them.
func checkRecord(spec Spec, subjects []string) error {
	if spec.Record == nil {
		return nil
	}
	for _, s := range spec.Record.Subjects {
		if !withinAny(s, subjects) {
			return fmt.Errorf("plugin %q: record subject %q is not within its subjects %v: a plugin records only its own traffic", spec.Name, s, subjects)
		}
	}
	return nil
}

func withinAny(s string, patterns []string) bool {
	for _, p := range patterns {
		if SubjectWithin(s, p) {
			return true
		}
	}
	return false
}

// SubjectWithin reports whether every subject s matches also matches
// pattern (both may hold NATS wildcards).
func SubjectWithin(s, pattern string) bool {
	st, pt := strings.Split(s, "."), strings.Split(pattern, ".")
	for i, p := range pt {
		if p == ">" {
			return i < len(st)
		}
		if i >= len(st) || st[i] == ">" {
			return false
		}
		if p != "*" && st[i] != p {
			return false
		}
	}
	return len(st) == len(pt)
}

// subjectMatches reports whether literal subject subj matches pattern.
func subjectMatches(subj, pattern string) bool {
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		t, trest, tmore := strings.Cut(subj, ".")
		switch {
		case p == ">":
			return true
		case p != "*" && p != t:
			return false
		case !pmore || !tmore:
			return pmore == tmore
		}
		pattern, subj = prest, trest
	}
}

// recorder is one plugin's recording: immutable but for its switch.
type recorder struct {
	name     string
	cfg      Record // with defaults, Subjects resolved
	stream   string
	prefix   string // RecordSubjectPrefix + name + "."
	on       atomic.Bool
	counts   *recordCounts
	queue    chan<- recordJob // the host's writer's
	explicit bool             // configured by Spec.Record, not only turned on at run time
}

// matches reports whether a message on subj is to be recorded.
func (r *recorder) matches(subj string) bool {
	for _, p := range r.cfg.Subjects {
		if subjectMatches(subj, p) {
			return true
		}
	}
	return false
}

// recordCounts are one plugin's recording figures, kept across reloads.
type recordCounts struct {
	recorded, queueFull, tooBig, failed atomic.Uint64
}

// recording is the host's part in recording and replay.
type recording struct {
	mu      sync.Mutex // guards started, counts
	started bool
	counts  map[string]*recordCounts
	js      jetstream.JetStream // the writer's, with its own async limits
	queue   chan recordJob
	// replays counts replays running, at most MaxReplays.
	replays atomic.Int32
}

// recordJob is one message for the writer.
type recordJob struct {
	r       *recorder
	msg     *plugin.Message
	request bool
	stable  answer
	version string
	at      time.Time
}

// recordedMessage is how a message is stored: JSON, so that any client
// can read a recording (`nats stream view TRELLIS_RECORD_greet`).
type recordedMessage struct {
	Time    time.Time           `json:"time"`
	Subject string              `json:"subject"`
	Header  map[string][]string `json:"header,omitempty"`
	Data    []byte              `json:"data"`
	// Request says the message had a reply subject.
	Request bool `json:"request"`
	// Status, Reply and Known are the stable's answer: Known is false when
	// its reply went out unseen (a guest that replied and then trapped).
	Status  int    `json:"status,omitempty"`
	Reply   []byte `json:"reply,omitempty"`
	Known   bool   `json:"known"`
	Version string `json:"version"`
}

func (h *Host) recordCounts(name string) *recordCounts {
	rc := &h.rec
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.counts == nil {
		rc.counts = map[string]*recordCounts{}
	}
	c := rc.counts[name]
	if c == nil {
		c = &recordCounts{}
		rc.counts[name] = c
	}
	return c
}

// startWriter starts the host's recording writer once.
func (h *Host) startWriter() error {
	rc := &h.rec
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.started {
		return nil
	}
	js, err := jetstream.New(h.bus.Conn(), jetstream.WithPublishAsyncMaxPending(recordMaxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			if c := h.countsOf(m.Subject); c != nil {
				c.recorded.Add(1)
			}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			if c := h.countsOf(m.Subject); c != nil {
				c.failed.Add(1)
			}
		}))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("host is closing")
	}
	rc.js, rc.queue, rc.started = js, make(chan recordJob, recordQueueLen), true
	d.wg.Add(1)
	go h.writeRecords(js, rc.queue)
	return nil
}

// countsOf finds the counts of the plugin a stored subject belongs to.
func (h *Host) countsOf(subject string) *recordCounts {
	name, _, _ := strings.Cut(strings.TrimPrefix(subject, RecordSubjectPrefix), ".")
	rc := &h.rec
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.counts[name]
}

// writeRecords stores what the queue brings until the host begins to close.
func (h *Host) writeRecords(js jetstream.JetStream, queue <-chan recordJob) {
	defer h.deploy.wg.Done()
	for {
		select {
		case job := <-queue:
			h.store(js, job)
		case <-h.stopping:
			return
		}
	}
}

func (h *Host) store(js jetstream.JetStream, job recordJob) {
	rm := recordedMessage{Time: job.at, Subject: job.msg.Subject, Header: job.msg.Header, Data: job.msg.Data,
		Request: job.request, Status: job.stable.status, Reply: job.stable.data, Known: job.stable.known, Version: job.version}
	data, err := json.Marshal(rm)
	if err != nil {
		job.r.counts.failed.Add(1)
		return
	}
	if _, err := js.PublishMsgAsync(&nats.Msg{Subject: job.r.prefix + job.msg.Subject, Data: data},
		jetstream.WithStallWait(recordStallWait), jetstream.WithExpectStream(job.r.stream)); err != nil {
		job.r.counts.queueFull.Add(1)
	}
}

// add hands one message the stable version handled to the writer, or
// counts it dropped. Called on the message's path: it never waits.
func (r *recorder) add(msg *plugin.Message, request bool, stable answer, version string) {
	size := len(msg.Data) + len(stable.data) + len(r.prefix) + len(msg.Subject)
	for k, vs := range msg.Header {
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	if size > MaxRecordedMessage || len(r.prefix)+len(msg.Subject) > abi.MaxSubjectLen {
		r.counts.tooBig.Add(1)
		return
	}
	select {
	case r.queue <- recordJob{r: r, msg: msg, request: request, stable: stable, version: version, at: time.Now()}:
	default:
		r.counts.queueFull.Add(1)
	}
}

// serveRecorded serves a message of a binding without candidates that
// records it: like serve, with a tap that takes the message as the
// handler saw it and the answer sent.
func (b *binding) serveRecorded(a arrival, snap *snapshot, r *recorder, w *worker) {
	m := a.m
	t := newRecordTap(nil, snap, m.Reply, r)
	w.tap = t
	obs := b.observe(m, a, snap)
	out, resp, _ := b.handle(a, snap, m, false, w)
	w.tap = nil
	if out.sent && t.capt.out != nil {
		out = *t.capt.out
	}
	b.h.sendNATS(m.Reply, resp, out)
	b.observed(obs, out, 0)
	if t.seen != nil {
		t.send(out)
	}
}

// withRecording adds b's recording to t (made if nil) when b records
// messages on subj; the stable version serves this message.
func (b *binding) withRecording(t *tap, snap *snapshot, m *nats.Msg) *tap {
	r := b.rec.Load()
	if r == nil || !r.on.Load() || !r.matches(m.Subject) {
		return t
	}
	if t == nil {
		return newRecordTap(nil, snap, m.Reply, r)
	}
	t.rec, t.version = r, snap.version
	return t
}

// newRecordTap is a tap for recording (shadows none).
func newRecordTap(shadows []*candidate, snap *snapshot, reply string, r *recorder) *tap {
	t := &tap{shadows: shadows, capture: reply != "", reply: reply, rec: r, version: snap.version}
	for _, ref := range snap.chain {
		if ref.p != nil && ref.p.HasResponsePhase() {
			t.capture = false // process captures the reply itself
		}
	}
	return t
}

// recordFor is the recorder for spec, or nil.
func (h *Host) recordFor(spec Spec, subjects []string) (*recorder, error) {
	if spec.Record == nil {
		return nil, nil
	}
	cfg, err := spec.Record.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(cfg.Subjects) == 0 {
		cfg.Subjects = append([]string(nil), subjects...)
	}
	if err := h.startWriter(); err != nil {
		return nil, err
	}
	r := &recorder{name: spec.Name, cfg: cfg, stream: RecordStreamPrefix + spec.Name, queue: h.rec.queue,
		prefix: RecordSubjectPrefix + spec.Name + ".", counts: h.recordCounts(spec.Name), explicit: true}
	r.on.Store(!cfg.Off)
	return r, nil
}

// ensureStream creates or updates r's stream with its limits.
func (h *Host) ensureStream(ctx context.Context, r *recorder) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := h.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        r.stream,
		Description: "Trellis: messages of plugin " + r.name + " recorded for replay",
		Subjects:    []string{r.prefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      r.cfg.MaxAge,
		MaxBytes:    r.cfg.MaxBytes,
		MaxMsgSize:  2 * MaxRecordedMessage,
		Replicas:    h.bus.Replicas(),
	})
	if err != nil {
		return fmt.Errorf("plugin %q: recording stream %s: %w", r.name, r.stream, placement(err))
	}
	return nil
}

// applyRecording sets up the recording of each plugin a commit loaded,
// as its spec says. A stream the bus refuses leaves that plugin serving
// without recording, and is logged: the change itself was committed.
func (h *Host) applyRecording(ctx context.Context, todo []*prepared) {
	for _, pr := range todo {
		if pr.spec.Policy {
			continue
		}
		b, err := h.handlerBinding(pr.spec.Name)
		if err != nil {
			continue
		}
		r, err := h.recordFor(pr.spec, pr.subjects)
		if err == nil && r != nil {
			err = h.ensureStream(ctx, r)
		}
		if err != nil {
			h.log.Error("recording not started", "plugin", pr.spec.Name, "error", err)
			r = nil
		}
		if old := b.rec.Load(); r == nil && old != nil && !old.explicit && old.on.Load() {
			// Turned on at run time and not in the spec: a reload keeps it,
			// for the subjects the version serving now has.
			r = &recorder{name: old.name, cfg: old.cfg, stream: old.stream, prefix: old.prefix, counts: old.counts, queue: old.queue}
			r.cfg.Subjects = pr.subjects
			r.on.Store(true)
		}
		b.rec.Store(r)
		if r != nil {
			h.log.Info("recording", "plugin", pr.spec.Name, "subjects", r.cfg.Subjects, "stream", r.stream,
				"max_age", r.cfg.MaxAge, "max_bytes", r.cfg.MaxBytes, "on", r.on.Load())
		}
	}
}

// RecordStatus describes a plugin's recording.
type RecordStatus struct {
	Plugin string `json:"plugin"`
	On     bool   `json:"on"`
	// Subjects, MaxAge and MaxBytes are as applied (defaults filled in).
	Subjects []string      `json:"subjects"`
	MaxAge   time.Duration `json:"max_age"`
	MaxBytes int64         `json:"max_bytes"`
	Stream   string        `json:"stream"`
	// Recorded counts messages stored since the host started; Dropped
	// those not, by reason: queue_full (the store fell behind), too_big
	// (over MaxRecordedMessage), failed (the store refused it).
	Recorded uint64            `json:"recorded"`
	Dropped  map[string]uint64 `json:"dropped"`
	// Messages and Bytes are what the stream holds now.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// SetRecording turns plugin name's recording on or off at run time. A
// plugin with no Spec.Record turned on records all its subjects with the
// default limits; its stream is made then. Off, its messages go back to
// paying one atomic load and a check. A reload with a Spec.Record sets
// recording as the spec says.
func (h *Host) SetRecording(ctx context.Context, name string, on bool) (RecordStatus, error) {
	b, err := h.handlerBinding(name)
	if err != nil {
		return RecordStatus{}, err
	}
	snap := b.snap.Load()
	if snap.durable != nil {
		return RecordStatus{}, fmt.Errorf("plugin %q is durable: its events are stored already, in its stream", name)
	}
	h.applyMu.Lock() // against a reload replacing the recorder meanwhile
	defer h.applyMu.Unlock()
	r := b.rec.Load()
	if r == nil && on {
		r, err = h.recordFor(Spec{Name: name, Record: &Record{}}, snap.subjects)
		if err != nil {
			return RecordStatus{}, err
		}
		r.explicit = false
	}
	if r != nil && on {
		if err := h.ensureStream(ctx, r); err != nil {
			return RecordStatus{}, err
		}
	}
	if r != nil {
		r.on.Store(on)
		b.rec.Store(r)
	}
	h.log.Info("recording switched", "plugin", name, "on", on)
	detail := "recording off"
	if on {
		detail = "recording on"
	}
	h.events.add(Event{Kind: EventRecording, Plugin: name, Detail: detail})
	return h.recordStatus(ctx, b), nil
}

// recording reports whether b's traffic is being recorded now.
func (b *binding) recording() bool {
	r := b.rec.Load()
	return r != nil && r.on.Load()
}

// Recording describes plugin name's recording.
func (h *Host) Recording(ctx context.Context, name string) (RecordStatus, error) {
	b, err := h.handlerBinding(name)
	if err != nil {
		return RecordStatus{}, err
	}
	return h.recordStatus(ctx, b), nil
}

func (h *Host) recordStatus(ctx context.Context, b *binding) RecordStatus {
	st := RecordStatus{Plugin: b.name, Stream: RecordStreamPrefix + b.name, Subjects: []string{}}
	c := h.recordCounts(b.name)
	st.Recorded = c.recorded.Load()
	st.Dropped = map[string]uint64{"queue_full": c.queueFull.Load(), "too_big": c.tooBig.Load(), "failed": c.failed.Load()}
	if r := b.rec.Load(); r != nil {
		st.On, st.Subjects, st.MaxAge, st.MaxBytes = r.on.Load(), r.cfg.Subjects, r.cfg.MaxAge, r.cfg.MaxBytes
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s, err := h.js.Stream(ctx, st.Stream); err == nil {
		st.Messages, st.Bytes = s.CachedInfo().State.Msgs, s.CachedInfo().State.Bytes
	}
	return st
}

// recordCollector exports recording's counts at scrape time.
type recordCollector struct{ h *Host }

var (
	descRecorded = prometheus.NewDesc("trellis_recorded_messages_total",
		"Messages a plugin's recording stored for replay.", []string{"plugin"}, nil)
	descRecordDropped = prometheus.NewDesc("trellis_record_dropped_total",
		"Messages a plugin's recording did not store, by reason: queue_full, too_big, failed.", []string{"plugin", "reason"}, nil)
)

func (c recordCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRecorded
	ch <- descRecordDropped
}

func (c recordCollector) Collect(ch chan<- prometheus.Metric) {
	rc := &c.h.rec
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for name, n := range rc.counts {
		ch <- prometheus.MustNewConstMetric(descRecorded, prometheus.CounterValue, float64(n.recorded.Load()), name)
		for reason, v := range map[string]uint64{"queue_full": n.queueFull.Load(), "too_big": n.tooBig.Load(), "failed": n.failed.Load()} {
			ch <- prometheus.MustNewConstMetric(descRecordDropped, prometheus.CounterValue, float64(v), name, reason)
		}
	}
}
