package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// A shadow gets a copy of messages the stable version handled, as its
// handler saw them (after the policies), sampled and capped in rate, on a
// bounded queue served by the shadow's own workers: the stable's answer
// never waits for it, and when the queue is full the copy is dropped and
// counted (Skipped). Its replies are captured and compared with the
// stable's, never sent; its publishes, requests and KV writes are recorded
// and not made unless ShadowOptions allow them.

// Limits on shadowing, checked where they enter.
const (
	// MaxShadowRate caps ShadowOptions.MaxPerSecond.
	MaxShadowRate = 10000
	// DefaultShadowRate is ShadowOptions.MaxPerSecond when zero.
	DefaultShadowRate = 100
	// MaxShadowDiffs caps ShadowOptions.Diffs.
	MaxShadowDiffs = 100
	// DefaultShadowDiffs is ShadowOptions.Diffs when zero.
	DefaultShadowDiffs = 10
	// MaxMaskFields caps ShadowOptions.IgnoreFields, and MaxMaskFieldLen
	// the length of each.
	MaxMaskFields   = 32
	MaxMaskFieldLen = 256
	// MaxDiffBody is how much of a request and of each reply a difference
	// sample keeps, in bytes.
	MaxDiffBody = 1024
	// shadowQueueLen is how many copies wait for a shadow's workers.
	shadowQueueLen = 64
	// maxEffectSamples is how many distinct side effects a report names.
	maxEffectSamples = 20
)

// ShadowOptions say which messages a shadow gets and how its replies are
// compared. The zero value copies every message, up to DefaultShadowRate a
// second, compares replies byte for byte and makes no side effect.
type ShadowOptions struct {
	// SampleRate is the share of messages copied, above 0 and at most 1
	// (0 means 1).
	SampleRate float64 `json:"sample_rate,omitempty"`
	// MaxPerSecond caps the copies a second (default DefaultShadowRate, at
	// most MaxShadowRate).
	MaxPerSecond int `json:"max_per_second,omitempty"`
	// IgnoreFields are JSON fields left out when replies are compared, as
	// dotted paths ("meta.request_id"); a path through an array applies to
	// each element. Replies that are not both JSON are compared byte for
	// byte. At most MaxMaskFields, each at most MaxMaskFieldLen bytes.
	IgnoreFields []string `json:"ignore_fields,omitempty"`
	// Diffs is how many recent differences the report keeps (default
	// DefaultShadowDiffs, at most MaxShadowDiffs).
	Diffs int `json:"diffs,omitempty"`
	// AllowPublish, AllowRequest and AllowKVWrite let the shadow's
	// publishes, requests and KV writes happen; by default they are
	// recorded and not made (a request then fails "no responders").
	AllowPublish bool `json:"allow_publish,omitempty"`
	AllowRequest bool `json:"allow_request,omitempty"`
	AllowKVWrite bool `json:"allow_kv_write,omitempty"`
}

// withDefaults checks o and fills in its zero fields.
func (o ShadowOptions) withDefaults() (ShadowOptions, error) {
	switch {
	case o.SampleRate == 0:
		o.SampleRate = 1
	case !(o.SampleRate > 0 && o.SampleRate <= 1):
		return o, fmt.Errorf("shadow sample rate %v: want above 0 and at most 1", o.SampleRate)
	}
	switch {
	case o.MaxPerSecond == 0:
		o.MaxPerSecond = DefaultShadowRate
	case o.MaxPerSecond < 0 || o.MaxPerSecond > MaxShadowRate:
		return o, fmt.Errorf("shadow rate %d a second: want 1 to %d (MaxShadowRate)", o.MaxPerSecond, MaxShadowRate)
	}
	switch {
	case o.Diffs == 0:
		o.Diffs = DefaultShadowDiffs
	case o.Diffs < 0 || o.Diffs > MaxShadowDiffs:
		return o, fmt.Errorf("shadow diffs %d: want 1 to %d (MaxShadowDiffs)", o.Diffs, MaxShadowDiffs)
	}
	if len(o.IgnoreFields) > MaxMaskFields {
		return o, fmt.Errorf("shadow ignore fields: %d, more than %d (MaxMaskFields)", len(o.IgnoreFields), MaxMaskFields)
	}
	for _, f := range o.IgnoreFields {
		if f == "" || len(f) > MaxMaskFieldLen || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
			return o, fmt.Errorf("shadow ignore field %.64q: want a dotted path of 1 to %d bytes (MaxMaskFieldLen)", f, MaxMaskFieldLen)
		}
	}
	o.IgnoreFields = append([]string(nil), o.IgnoreFields...)
	return o, nil
}

// ShadowReport is how a shadow's replies compared with the stable
// version's since it began shadowing.
type ShadowReport struct {
	// Copied counts messages handed to the shadow; Skipped those the rate
	// cap or a full queue kept from it.
	Copied  uint64 `json:"copied"`
	Skipped uint64 `json:"skipped"`
	// Compared counts copies the shadow finished, Matched and Differed
	// how they compared; CandidateErrors are differences where the shadow
	// failed (a fault or a status of 500 or more) and the stable did not.
	Compared        uint64 `json:"compared"`
	Matched         uint64 `json:"matched"`
	Differed        uint64 `json:"differed"`
	CandidateErrors uint64 `json:"candidate_errors"`
	// SideEffects counts what the shadow tried to do, by kind (publish,
	// request, kv_write), made or not; Effects names some of them.
	SideEffects map[string]uint64 `json:"side_effects"`
	Effects     []SideEffect      `json:"effects,omitempty"`
	// Diffs are the most recent differences, oldest first.
	Diffs   []ShadowDiff  `json:"diffs"`
	Options ShadowOptions `json:"options"`
}

// SideEffect is one kind of thing a shadow tried to do, to one target.
type SideEffect struct {
	Kind   string `json:"kind"`   // publish, request or kv_write
	Target string `json:"target"` // the subject, or the key
	Count  uint64 `json:"count"`
	// Performed says whether the options let it happen.
	Performed bool `json:"performed"`
}

// ShadowDiff is one message whose replies differed.
type ShadowDiff struct {
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	// Request, Stable and Candidate are the message's data and the two
	// replies' (or error texts), each cut to MaxDiffBody bytes.
	Request         string `json:"request"`
	StableStatus    int    `json:"stable_status"`
	Stable          string `json:"stable"`
	CandidateStatus int    `json:"candidate_status"`
	Candidate       string `json:"candidate"`
}

type effectKind uint8

const (
	effectPublish effectKind = iota
	effectRequest
	effectKV
	numEffects
)

var effectNames = [numEffects]string{"publish", "request", "kv_write"}

// shadowState is one candidate's shadowing: its options, queue, workers
// and what it found.
type shadowState struct {
	c     *candidate
	o     atomic.Pointer[ShadowOptions]
	queue chan shadowJob

	mu      sync.Mutex // guards running, quit, diffs, effectSamples
	running bool
	quit    chan struct{}
	workers sync.WaitGroup

	copied, skipped, compared, matched, differed, candErrs atomic.Uint64
	effects                                                [numEffects]atomic.Uint64
	diffs                                                  []ShadowDiff // a ring of the last o.Diffs
	nextDiff                                               int
	effectSamples                                          []SideEffect

	sec, inSec atomic.Int64 // the rate cap's second and copies in it
}

func newShadowState(c *candidate, o ShadowOptions) *shadowState {
	s := &shadowState{c: c, queue: make(chan shadowJob, shadowQueueLen)}
	s.o.Store(&o)
	return s
}

func (s *shadowState) opts() *ShadowOptions { return s.o.Load() }

// used reports whether the candidate ever shadowed.
func (s *shadowState) used() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quit != nil
}

func (s *shadowState) reconfigure(o ShadowOptions) { s.o.Store(&o) }

// start starts the shadow's workers, unless they run: as many as its pool
// has instances, at most two, so that a shadow never takes more than a
// small part of the host's CPUs from the versions that answer.
func (s *shadowState) start(h *Host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	s.running = true
	s.quit = make(chan struct{})
	_, _, size := s.c.p.PoolStats()
	for range min(size, 2) {
		s.workers.Add(1)
		go func(quit <-chan struct{}) {
			defer s.workers.Done()
			for {
				select {
				case job := <-s.queue:
					s.run(h, job)
				case <-quit:
					return
				case <-h.life.Done():
					return
				}
			}
		}(s.quit)
	}
}

// stop ends the workers and waits for them; copies still queued are dropped.
func (s *shadowState) stop() {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return
	}
	s.running = false
	close(s.quit)
	s.mu.Unlock()
	s.workers.Wait()
}

// admit decides whether this message is copied: by the sample rate, then
// the cap per second.
func (s *shadowState) admit() bool {
	o := s.opts()
	if o.SampleRate < 1 && rand.Float64() >= o.SampleRate {
		return false
	}
	now := time.Now().Unix()
	if s.sec.Load() != now && s.sec.Swap(now) != now {
		s.inSec.Store(0)
	}
	if s.inSec.Add(1) > int64(o.MaxPerSecond) {
		s.skipped.Add(1)
		return false
	}
	return true
}

// effect records a side effect the shadow tried.
func (s *shadowState) effect(kind effectKind, target string, performed bool) {
	s.effects[kind].Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.effectSamples {
		if e := &s.effectSamples[i]; e.Kind == effectNames[kind] && e.Target == target {
			e.Count++
			return
		}
	}
	if len(s.effectSamples) < maxEffectSamples {
		s.effectSamples = append(s.effectSamples, SideEffect{Kind: effectNames[kind], Target: target, Count: 1, Performed: performed})
	}
}

// answer is how one version answered a message, for comparison.
type answer struct {
	status int
	data   []byte
	known  bool // false when the reply went out unseen
}

// shadowJob is one copy for a shadow: the message as the stable's handler
// saw it and the stable's answer.
type shadowJob struct {
	msg    *plugin.Message
	reply  string // the requester's, for the guest to read; nothing is sent to it
	stable answer
}

// tap follows one message of the stable version for the shadows that
// admitted it: it captures the stable's reply (unless a policy's response
// phase captures it already) and copies the message as the handler got it.
type tap struct {
	shadows []*candidate
	capt    capture
	capture bool
	reply   string
	seen    *plugin.Message
	// rec, if set, records the message and the stable's answer, of
	// version (record.go).
	rec     *recorder
	version string
}

// newTap returns a tap for the shadows that admit this message, or nil.
func newTap(shadows []*candidate, snap *snapshot, reply string) *tap {
	var admitted []*candidate
	for _, c := range shadows {
		if c.shadow.admit() {
			admitted = append(admitted, c)
		}
	}
	if len(admitted) == 0 {
		return nil
	}
	t := &tap{shadows: admitted, capture: reply != "", reply: reply}
	for _, ref := range snap.chain {
		if ref.p != nil && ref.p.HasResponsePhase() {
			t.capture = false // process captures the reply itself
		}
	}
	return t
}

// arm makes msg's reply come to the tap. Called by handle.
func (t *tap) arm(msg *plugin.Message) {
	if t.capture {
		msg.Respond = t.capt.respond
	}
}

// delivered copies msg as the handler is about to get it. Called by
// handle when the policies let the message reach the handler.
func (t *tap) delivered(msg *plugin.Message) {
	hdr := make(map[string][]string, len(msg.Header))
	for k, vs := range msg.Header {
		hdr[k] = append([]string(nil), vs...)
	}
	t.seen = &plugin.Message{Subject: msg.Subject, Header: hdr, Data: bytes.Clone(msg.Data)}
}

// send hands the copy and the stable's answer out to each shadow's queue.
func (t *tap) send(out outcome) {
	job := shadowJob{msg: t.seen, reply: t.reply,
		stable: answer{status: out.status, data: out.data(), known: !out.sent}}
	if out.status != 0 {
		job.stable.data = []byte(out.text())
	}
	if t.rec != nil {
		t.rec.add(t.seen, t.reply != "", job.stable, t.version)
	}
	for _, c := range t.shadows {
		select {
		case c.shadow.queue <- job:
			c.shadow.copied.Add(1)
		default:
			c.shadow.skipped.Add(1)
		}
	}
}

// run handles one copy on the shadow and compares the answers.
func (s *shadowState) run(h *Host, job shadowJob) {
	c := s.c
	ctx := h.life
	if timeout := c.p.Timeout(); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// The guest sees the requester's reply subject, as the stable did
	// (SDKs reply only when there is one); its reply comes to capt.
	msg := &plugin.Message{Subject: job.msg.Subject, Reply: job.reply, Header: job.msg.Header, Data: job.msg.Data}
	var capt capture
	if job.reply != "" {
		msg.Respond = capt.respond
	}
	start := deadline.Now()
	res, err := c.p.Handle(ctx, msg)
	took := deadline.Now() - start
	got := answer{known: true}
	switch f := asFault(err); {
	case capt.out != nil:
		got.data = capt.out.data() // it replied, whatever it returned after
	case f != nil:
		got.status, got.data = f.Kind.Code(), []byte(f.Kind.String()+": "+f.Summary())
	case err != nil:
		got.status, got.data = 500, []byte(err.Error())
	case res.Status != 0:
		got.status, got.data = int(res.Status), []byte(res.Error)
		if got.status < 0 {
			got.status = 500
		}
	}
	c.stats.record(took, got.status >= 500)
	s.compare(job, got)
}

// compare counts one comparison and keeps a sample of a difference.
func (s *shadowState) compare(job shadowJob, got answer) {
	if !job.stable.known {
		return // the stable's reply went out unseen: nothing to compare with
	}
	s.compared.Add(1)
	want := job.stable
	o := s.opts()
	same := want.status == got.status && (want.status != 0 || sameBody(want.data, got.data, o.IgnoreFields))
	if same {
		s.matched.Add(1)
		return
	}
	s.differed.Add(1)
	if got.status >= 500 && want.status < 500 {
		s.candErrs.Add(1)
	}
	d := ShadowDiff{Time: time.Now(), Subject: job.msg.Subject, Request: cut(job.msg.Data),
		StableStatus: want.status, Stable: cut(want.data), CandidateStatus: got.status, Candidate: cut(got.data)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.diffs) < o.Diffs {
		s.diffs = append(s.diffs, d)
		return
	}
	s.diffs[s.nextDiff%len(s.diffs)] = d
	s.nextDiff = (s.nextDiff + 1) % len(s.diffs)
}

func cut(b []byte) string {
	if len(b) > MaxDiffBody {
		b = b[:MaxDiffBody]
	}
	return string(b)
}

// sameBody compares two replies: byte for byte, or, when mask names
// fields and both are JSON, as JSON values with those fields left out.
func sameBody(a, b []byte, mask []string) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if len(mask) == 0 {
		return false
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	for _, f := range mask {
		path := strings.Split(f, ".")
		va, vb = dropField(va, path), dropField(vb, path)
	}
	return reflect.DeepEqual(va, vb)
}

// dropField removes the field at path from v: through objects by key,
// through arrays into each element.
func dropField(v any, path []string) any {
	switch x := v.(type) {
	case map[string]any:
		if len(path) == 1 {
			delete(x, path[0])
			return x
		}
		if next, ok := x[path[0]]; ok {
			x[path[0]] = dropField(next, path[1:])
		}
	case []any:
		for i := range x {
			x[i] = dropField(x[i], path)
		}
	}
	return v
}

// report returns the shadow's figures and samples.
func (s *shadowState) report() ShadowReport {
	r := ShadowReport{Copied: s.copied.Load(), Skipped: s.skipped.Load(), Compared: s.compared.Load(),
		Matched: s.matched.Load(), Differed: s.differed.Load(), CandidateErrors: s.candErrs.Load(),
		SideEffects: map[string]uint64{}, Options: *s.opts()}
	for k := range s.effects {
		r.SideEffects[effectNames[k]] = s.effects[k].Load()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Effects = append([]SideEffect(nil), s.effectSamples...)
	r.Diffs = make([]ShadowDiff, 0, len(s.diffs))
	if len(s.diffs) > 0 {
		i := s.nextDiff % len(s.diffs)
		r.Diffs = append(r.Diffs, s.diffs[i:]...)
		r.Diffs = append(r.Diffs, s.diffs[:i]...)
	}
	return r
}

// ShadowReport returns how candidate version of plugin name compared with
// the stable version while it shadowed it.
func (h *Host) ShadowReport(name, version string) (ShadowReport, error) {
	b, err := h.handlerBinding(name)
	if err != nil {
		return ShadowReport{}, err
	}
	c := b.cands.Load().find(version)
	if c == nil {
		return ShadowReport{}, fmt.Errorf("plugin %q: version %s: %w", name, version, ErrNoCandidate)
	}
	return c.shadow.report(), nil
}
