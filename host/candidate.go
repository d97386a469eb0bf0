package host

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/resilience"
	"github.com/trellis-mesh/trellis/host/sign"
)

// This file holds candidate versions: versions of a loaded handler that
// run beside the version serving it (the stable version), each with its
// own pool of instances and its own figures, and that receive traffic only
// as a shadow (a copy of messages, whose replies are compared and never
// sent; shadow.go) or as a canary (a share of the messages, answered for
// real, under a rollout plan the host carries out; canary.go).
//
// The stable version keeps its subscriptions and its snapshot; a binding
// with candidates also holds a candidateSet, an immutable value swapped
// whole by one atomic store like the snapshot. A binding without
// candidates pays one atomic load and a nil check per message for them.

// Limits on candidates, checked where they enter.
const (
	// MaxCandidates is how many candidate versions one plugin may have at
	// once, besides its stable version: each holds a pool of instances.
	MaxCandidates = 2
	// shareScale is the unit of a canary's share: basis points.
	shareScale = 10000
)

// CandidateMode says what traffic a candidate version receives.
type CandidateMode string

// The modes of a candidate.
const (
	// CandidateIdle receives nothing: loaded, ready to shadow or canary.
	CandidateIdle CandidateMode = "idle"
	// CandidateShadow receives a copy of messages the stable version
	// handles; its side effects are recorded, not performed (see
	// ShadowOptions), and its replies are compared, never sent.
	CandidateShadow CandidateMode = "shadow"
	// CandidateCanary answers a share of the messages for real, its
	// side effects performed, under a rollout (see Rollout).
	CandidateCanary CandidateMode = "canary"
)

// Candidate is a new version of a loaded handler to run beside its stable
// version. It inherits the stable version's spec (subjects, grants, pool
// size, timeout, memory limit, policies, resilience), except for its
// module and, if set, its config.
type Candidate struct {
	// Path is the .wasm file, unless Wasm is set.
	Path string
	// Wasm is the module itself; it takes precedence over Path.
	Wasm []byte
	// Config, if not nil, replaces the stable version's config.
	Config map[string]string
	// Mode is what traffic it gets at first (default CandidateIdle). A
	// candidate becomes a canary only through StartRollout.
	Mode CandidateMode
	// Shadow configures its shadowing, when Mode is CandidateShadow.
	Shadow ShadowOptions
}

// CandidateInfo describes a candidate version.
type CandidateInfo struct {
	Version string        `json:"version"`
	Mode    CandidateMode `json:"mode"`
	// Share is the part of the plugin's messages it answers, 0 to 1 (a
	// canary's).
	Share float64 `json:"share"`
	// Messages and Errors count what it handled (a shadow's copies
	// included); errors are statuses of 500 or more, faults included.
	Messages uint64 `json:"messages"`
	Errors   uint64 `json:"errors"`
	// P50 and P99 are its latencies in seconds since it was added: from
	// when a worker took the message to its answer for a canary, the call
	// alone for a shadow.
	P50 float64 `json:"p50_seconds"`
	P99 float64 `json:"p99_seconds"`
	// InUse, Idle and PoolSize are its pool's.
	InUse    int `json:"in_use"`
	Idle     int `json:"idle"`
	PoolSize int `json:"pool_size"`
	// Shadow is its comparison with the stable version, for a shadow.
	Shadow *ShadowReport `json:"shadow,omitempty"`
}

// candidate is one candidate version of a binding.
type candidate struct {
	b       *binding
	version string
	wasm    []byte // to promote it through Apply
	spec    Spec   // the stable's spec with this version's config; Wasm cleared
	p       *plugin.Plugin
	// live is set while the candidate is a canary: its side effects are
	// then performed, since it answers for real.
	live    atomic.Bool
	stats   versionStats
	breaker *resilience.Breaker
	shadow  *shadowState // nil unless it shadows or shadowed
	added   time.Time
}

// candidateSet is what a message's path reads of a binding's candidates:
// immutable once published, replaced whole under deployments.mu.
type candidateSet struct {
	all    []*candidate
	canary *candidate // the candidate with a share, or nil
	share  uint32     // the canary's share in basis points
	// shadows are the candidates receiving copies.
	shadows []*candidate
	// stable counts the stable version's messages while the binding has
	// candidates, to compare with theirs; stableVersion says whose.
	stable        *versionStats
	stableVersion string
}

// with returns a copy of cs (or of an empty set) changed by fn, with the
// lists copied so that fn may change them.
func (cs *candidateSet) with(fn func(*candidateSet)) *candidateSet {
	next := &candidateSet{}
	if cs != nil {
		*next = *cs
		next.all = append([]*candidate(nil), cs.all...)
		next.shadows = append([]*candidate(nil), cs.shadows...)
	}
	fn(next)
	return next
}

func (cs *candidateSet) find(version string) *candidate {
	if cs == nil {
		return nil
	}
	for _, c := range cs.all {
		if c.version == version {
			return c
		}
	}
	return nil
}

func (cs *candidateSet) mode(c *candidate) CandidateMode {
	if cs.canary == c {
		return CandidateCanary
	}
	for _, s := range cs.shadows {
		if s == c {
			return CandidateShadow
		}
	}
	return CandidateIdle
}

// deployments is the host's state for candidates and rollouts, changed
// under mu and never read on a message's path.
type deployments struct {
	mu        sync.Mutex
	closed    bool
	rollouts  map[string]*rollout  // by plugin: the one running, or the last to end
	decisions map[[2]string]uint64 // by plugin and decision, for metrics
	wg        sync.WaitGroup       // rollouts, and closes of candidates removed
}

// ErrNoCandidate is returned for a plugin version that is not one of the
// plugin's candidates.
var ErrNoCandidate = errors.New("no such candidate")

// handlerBinding returns the binding of loaded handler name.
func (h *Host) handlerBinding(name string) (*binding, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, errors.New("host is closing")
	}
	b := h.bindings[name]
	switch {
	case b == nil:
		return nil, fmt.Errorf("plugin %q is not loaded", name)
	case b.policy:
		return nil, fmt.Errorf("plugin %q is a policy; only handlers have candidate versions", name)
	}
	return b, nil
}

// AddCandidate loads c as a candidate version of loaded handler name and
// returns its version. It is verified (Options.RequireSigned), compiled and
// started with its own pool before it is added; it then receives what
// c.Mode says. It fails, naming the reason, for a plugin not loaded, a
// policy, a durable handler (whose events JetStream delivers once, to
// one version), a version equal to the one serving or to a candidate, a
// plugin with MaxCandidates already, or shadow options out of bounds.
func (h *Host) AddCandidate(ctx context.Context, name string, c Candidate) (string, error) {
	switch c.Mode {
	case "":
		c.Mode = CandidateIdle
	case CandidateIdle, CandidateShadow:
	case CandidateCanary:
		return "", fmt.Errorf("plugin %q: a candidate becomes a canary through StartRollout, not AddCandidate", name)
	default:
		return "", fmt.Errorf("plugin %q: candidate mode %q: want idle or shadow", name, c.Mode)
	}
	sh, err := c.Shadow.withDefaults()
	if err != nil {
		return "", fmt.Errorf("plugin %q: %w", name, err)
	}
	b, err := h.handlerBinding(name)
	if err != nil {
		return "", err
	}
	stable := b.snap.Load()
	if stable.durable != nil {
		return "", fmt.Errorf("plugin %q is durable: JetStream delivers each event to one version, so it has no candidates", name)
	}
	wasm := c.Wasm
	if wasm == nil {
		if c.Path == "" {
			return "", fmt.Errorf("plugin %q: candidate with neither Path nor Wasm", name)
		}
		if wasm, err = plugin.ReadModule(c.Path); err != nil {
			return "", fmt.Errorf("plugin %q: candidate: %w", name, err)
		}
	}
	version := plugin.Version(wasm)
	if version == stable.version {
		return "", fmt.Errorf("plugin %q: version %s is the one serving, not a candidate", name, version)
	}
	if err := h.checkRoom(b, version); err != nil {
		return "", err
	}
	spec := stable.spec
	spec.Path, spec.Wasm = c.Path, nil
	if c.Config != nil {
		spec.Config = c.Config
	}
	cand := &candidate{b: b, version: version, wasm: wasm, spec: spec, added: time.Now(),
		breaker: &resilience.Breaker{Failures: stable.res.BreakerFailures, Cooldown: stable.res.BreakerCooldown}}
	cand.shadow = newShadowState(cand, sh)
	if cand.p, err = h.makeCandidate(ctx, cand); err != nil {
		h.recordRefused([]error{&refusal{name: name, version: version, path: c.Path, err: err}})
		h.log.Error("candidate refused", "plugin", name, "version", version, "error", err)
		return "", err
	}
	d := &h.deploy
	d.mu.Lock()
	if err := h.checkRoom(b, version); err != nil || d.closed {
		d.mu.Unlock()
		_ = cand.p.Close(context.WithoutCancel(ctx))
		if err == nil {
			err = errors.New("host is closing")
		}
		return "", err
	}
	if c.Mode == CandidateShadow {
		cand.shadow.start(h)
	}
	b.cands.Store(b.cands.Load().with(func(cs *candidateSet) {
		cs.all = append(cs.all, cand)
		if c.Mode == CandidateShadow {
			cs.shadows = append(cs.shadows, cand)
		}
		h.keepStableStats(b, cs)
	}))
	d.mu.Unlock()
	h.log.Info("candidate added", "plugin", name, "version", version, "stable", stable.version, "mode", c.Mode)
	h.events.add(Event{Kind: EventCandidate, Plugin: name, Version: version, Detail: "added as " + string(c.Mode)})
	return version, nil
}

// checkRoom refuses a version b already has as a candidate, and a
// candidate past MaxCandidates.
func (h *Host) checkRoom(b *binding, version string) error {
	cs := b.cands.Load()
	if cs.find(version) != nil {
		return fmt.Errorf("plugin %q: version %s is a candidate already", b.name, version)
	}
	if cs != nil && len(cs.all) >= MaxCandidates {
		return fmt.Errorf("plugin %q: %d candidates already, the most one plugin may have (MaxCandidates); remove one first", b.name, MaxCandidates)
	}
	return nil
}

// keepStableStats makes sure cs counts the stable version serving now,
// starting afresh when the stable version changed.
func (h *Host) keepStableStats(b *binding, cs *candidateSet) {
	v := b.snap.Load().version
	if cs.stable == nil || cs.stableVersion != v {
		cs.stable, cs.stableVersion = &versionStats{}, v
	}
}

// makeCandidate verifies, compiles and starts a candidate's version, with
// an outbox and a KV that perform its side effects only while it is live
// or the operator allows them (see sandbox).
func (h *Host) makeCandidate(ctx context.Context, c *candidate) (*plugin.Plugin, error) {
	name := c.b.name
	if h.opts.RequireSigned {
		if _, err := sign.Verify(c.wasm, h.opts.TrustedKeys); err != nil {
			return nil, fmt.Errorf("plugin %q: candidate %s: refused, signed plugins are required: %w", name, c.version, err)
		}
	}
	unlock := h.lockVersion(c.version)
	defer unlock()
	spec := c.spec
	// What a canary sends and writes is timed, counted and traced under
	// the plugin's name like the stable's; what a shadow keeps from
	// happening never reaches these.
	ns := kvNamespace(spec)
	sb := &sandbox{c: c, out: h.instrumentOutbox(name, h.outboxFor(name)), kv: h.instrumentKV(name, ns, h.kv.Namespace(ns))}
	p, err := plugin.Load(ctx, c.wasm, plugin.Options{
		Name:        name,
		Config:      spec.Config,
		PoolSize:    spec.PoolSize,
		Timeout:     spec.Timeout,
		InitTimeout: spec.InitTimeout,
		MemoryLimit: spec.MemoryLimit,
		Grants:      spec.Granted(),
		Logger:      h.log.Named(name).With("version", c.version, "candidate", true),
		Outbox:      sb,
		KV:          sandboxKV{sb},
		Cache:       h.cache,
	})
	if err != nil {
		return nil, err
	}
	if !p.IsHandler() {
		_ = p.Close(ctx)
		return nil, fmt.Errorf("plugin %q: candidate %s does not export trellis_handle, so it cannot replace a handler", name, c.version)
	}
	return p, nil
}

// RemoveCandidate stops a candidate's traffic at once and closes it once
// its calls in flight have finished (or ctx ends). A canary under a
// rollout is rolled back, which says why.
func (h *Host) RemoveCandidate(ctx context.Context, name, version string) error {
	if ro := h.runningRollout(name); ro != nil && ro.c.version == version {
		return h.AbortRollout(ctx, name, "candidate removed by the operator")
	}
	b, err := h.handlerBinding(name)
	if err != nil {
		return err
	}
	c, done := h.dropCandidate(b, version)
	if c == nil {
		return fmt.Errorf("plugin %q: version %s: %w", name, version, ErrNoCandidate)
	}
	h.log.Info("candidate removed", "plugin", name, "version", version)
	h.events.add(Event{Kind: EventCandidate, Plugin: name, Version: version, Detail: "removed"})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropCandidate takes version out of b's candidates, so that no new
// message reaches it, and closes it on a goroutine Close waits for; the
// channel reports the close. It returns nil when there is no such
// candidate.
func (h *Host) dropCandidate(b *binding, version string) (*candidate, <-chan error) {
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := b.cands.Load()
	c := cs.find(version)
	if c == nil {
		return nil, nil
	}
	next := cs.with(func(cs *candidateSet) {
		cs.all = remove(cs.all, c)
		cs.shadows = remove(cs.shadows, c)
		if cs.canary == c {
			cs.canary, cs.share = nil, 0
		}
	})
	if len(next.all) == 0 {
		next = nil
	}
	b.cands.Store(next)
	done := make(chan error, 1)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		done <- c.close(h.life)
	}()
	return c, done
}

func remove(list []*candidate, c *candidate) []*candidate {
	out := list[:0]
	for _, x := range list {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

// close stops the candidate's shadow workers and closes its version once
// its calls in flight finish.
func (c *candidate) close(ctx context.Context) error {
	c.shadow.stop()
	return c.p.Close(ctx)
}

// closeCandidates closes every candidate of b: called when b closes.
func (b *binding) closeCandidates(ctx context.Context) error {
	d := &b.h.deploy
	d.mu.Lock()
	cs := b.cands.Swap(nil)
	d.mu.Unlock()
	if cs == nil {
		return nil
	}
	var errs []error
	for _, c := range cs.all {
		if err := c.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("candidate %s: %w", c.version, err))
		}
	}
	return errors.Join(errs...)
}

// SetCandidateMode makes a candidate idle or a shadow. A canary changes
// mode only by its rollout's end (AbortRollout, Promote).
func (h *Host) SetCandidateMode(name, version string, mode CandidateMode, opts ShadowOptions) error {
	if mode != CandidateIdle && mode != CandidateShadow {
		return fmt.Errorf("plugin %q: candidate mode %q: want idle or shadow", name, mode)
	}
	sh, err := opts.withDefaults()
	if err != nil {
		return fmt.Errorf("plugin %q: %w", name, err)
	}
	b, err := h.handlerBinding(name)
	if err != nil {
		return err
	}
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := b.cands.Load()
	c := cs.find(version)
	switch {
	case c == nil:
		return fmt.Errorf("plugin %q: version %s: %w", name, version, ErrNoCandidate)
	case cs.canary == c:
		return fmt.Errorf("plugin %q: version %s is a canary; abort its rollout or promote it", name, version)
	}
	b.cands.Store(cs.with(func(cs *candidateSet) {
		cs.shadows = remove(cs.shadows, c)
		if mode == CandidateShadow {
			cs.shadows = append(cs.shadows, c)
		}
	}))
	if mode == CandidateShadow {
		c.shadow.reconfigure(sh)
		c.shadow.start(h)
	}
	h.log.Info("candidate mode", "plugin", name, "version", version, "mode", mode)
	h.events.add(Event{Kind: EventCandidate, Plugin: name, Version: version, Detail: "now " + string(mode)})
	return nil
}

// Candidates describes plugin name's candidate versions, oldest first.
func (h *Host) Candidates(name string) []CandidateInfo {
	h.mu.Lock()
	b := h.bindings[name]
	h.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.candidateInfo()
}

func (b *binding) candidateInfo() []CandidateInfo {
	cs := b.cands.Load()
	if cs == nil {
		return nil
	}
	out := make([]CandidateInfo, 0, len(cs.all))
	for _, c := range cs.all {
		r := c.stats.read()
		ci := CandidateInfo{Version: c.version, Mode: cs.mode(c), Messages: r.msgs, Errors: r.errs,
			P50: r.quantile(0.5).Seconds(), P99: r.quantile(0.99).Seconds()}
		if cs.canary == c {
			ci.Share = float64(cs.share) / shareScale
		}
		ci.InUse, ci.Idle, ci.PoolSize = c.p.PoolStats()
		if c.shadow.used() {
			rep := c.shadow.report()
			ci.Shadow = &rep
		}
		out = append(out, ci)
	}
	return out
}

// serveCandidates serves a message of a binding with candidates: it picks
// the version that answers (a canary, by its share, or the stable), and,
// when the stable answers, hands a copy of the message as its handler saw
// it, with the stable's answer, to each shadow that admits it.
func (b *binding) serveCandidates(a arrival, snap *snapshot, cs *candidateSet, w *worker) {
	m := a.m
	serving, stats := snap, cs.stable
	if c := cs.canary; c != nil && cs.share > 0 && (cs.share >= shareScale || rand.Uint32N(shareScale) < cs.share) {
		s := *snap
		s.plugin, s.version, s.breaker = c.p, c.version, c.breaker
		serving, stats = &s, &c.stats
	}
	var t *tap
	if serving == snap && len(cs.shadows) > 0 {
		t = newTap(cs.shadows, snap, m.Reply)
	}
	if serving == snap {
		t = b.withRecording(t, snap, m)
	}
	w.tap = t
	obs := b.observe(m, a, serving)
	start := deadline.Now()
	out, resp, _ := b.handle(a, serving, m, false, w)
	w.tap = nil
	if t != nil && out.sent && t.capt.out != nil {
		// The tap took the handler's reply to compare it: send it now.
		out = *t.capt.out
	}
	b.h.sendNATS(m.Reply, resp, out)
	b.observed(obs, out, 0)
	if stats != nil {
		// From when a worker took it: the inbox's wait is the same for
		// every version and would only blur their difference.
		stats.record(deadline.Now()-start, out.status >= 500)
	}
	if t != nil && t.seen != nil {
		t.send(out)
	}
}

// versionStats counts one version's messages, failures and latencies,
// with atomics only, so that recording takes no lock and allocates
// nothing. Latencies fall in buckets a quarter of an octave wide (each
// about 19% wider than the one before), from nanoseconds to half an hour.
type versionStats struct {
	msgs, errs atomic.Uint64
	sum        atomic.Int64 // nanoseconds
	lat        [latBuckets]atomic.Uint64
}

const latBuckets = 4 * 41

// latBucket returns the bucket of d: 4 per power of two, by d's top three bits.
func latBucket(d time.Duration) int {
	if d < 8 {
		return 0
	}
	x := uint64(d)
	l := bits.Len64(x)
	return min((l-1)*4+int((x>>(l-3))&3), latBuckets-1)
}

// latUpper is the upper bound of bucket i.
func latUpper(i int) time.Duration {
	if i < 12 {
		return 8
	}
	l := i/4 + 1
	return time.Duration(uint64(5+i%4) << (l - 3))
}

func (s *versionStats) record(d time.Duration, failed bool) {
	s.msgs.Add(1)
	if failed {
		s.errs.Add(1)
	}
	s.sum.Add(int64(d))
	s.lat[latBucket(d)].Add(1)
}

// statsReading is a versionStats read at one time, or the difference of
// two readings: what happened in between.
type statsReading struct {
	msgs, errs uint64
	sum        time.Duration
	lat        [latBuckets]uint64
}

func (s *versionStats) read() statsReading {
	var r statsReading
	if s == nil {
		return r
	}
	r.msgs, r.errs, r.sum = s.msgs.Load(), s.errs.Load(), time.Duration(s.sum.Load())
	for i := range s.lat {
		r.lat[i] = s.lat[i].Load()
	}
	return r
}

// since returns what happened between earlier and r.
func (r statsReading) since(earlier statsReading) statsReading {
	out := statsReading{msgs: r.msgs - earlier.msgs, errs: r.errs - earlier.errs, sum: r.sum - earlier.sum}
	for i := range r.lat {
		out.lat[i] = r.lat[i] - earlier.lat[i]
	}
	return out
}

// errorRatio is errs/msgs, 0 with no message.
func (r statsReading) errorRatio() float64 {
	if r.msgs == 0 {
		return 0
	}
	return float64(r.errs) / float64(r.msgs)
}

// quantile returns the upper bound of the bucket holding the q-quantile
// (0 with no message): an estimate at most 19% above the true value.
func (r statsReading) quantile(q float64) time.Duration {
	var n uint64
	for _, c := range r.lat {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range r.lat {
		seen += c
		if seen >= rank {
			return latUpper(i)
		}
	}
	return latUpper(latBuckets - 1)
}

// sandbox is a candidate's outbox. While the candidate is a canary it
// sends for real; otherwise what it would publish or request is recorded
// in its shadow report and not sent, unless the operator allowed it
// (ShadowOptions). A reply never comes this way from a shadow: its
// replies are captured (plugin.Message.Respond).
type sandbox struct {
	c   *candidate
	out plugin.Outbox
	kv  plugin.KV
}

// allowed reports whether a side effect of kind is to be made, and
// records it unless the candidate is live (a canary's are its own).
func (s *sandbox) allowed(kind effectKind, target string) bool {
	if s.c.live.Load() {
		return true
	}
	o := s.c.shadow.opts()
	allow := [numEffects]bool{o.AllowPublish, o.AllowRequest, o.AllowKVWrite}[kind]
	s.c.shadow.effect(kind, target, allow)
	return allow
}

// Publish sends, or records, one publish.
func (s *sandbox) Publish(ctx context.Context, subject string, hdr map[string][]string, data []byte) error {
	if s.allowed(effectPublish, subject) {
		return s.out.Publish(ctx, subject, hdr, data)
	}
	return nil
}

// Request sends one request, or records it and answers "no responders":
// a request not sent has no answer to give the candidate.
func (s *sandbox) Request(ctx context.Context, subject string, hdr map[string][]string, data []byte, timeout time.Duration) (*plugin.Message, error) {
	if s.allowed(effectRequest, subject) {
		return s.out.Request(ctx, subject, hdr, data, timeout)
	}
	return nil, plugin.ErrNoResponders
}

// sandboxKV is a candidate's KV: reads go to the plugin's namespace;
// writes are recorded and not made unless the candidate is live or the
// operator allowed them. A write not made succeeds as if made, and an
// increment answers what the value would have become.
type sandboxKV struct{ s *sandbox }

func (k sandboxKV) write(key string) bool { return k.s.allowed(effectKV, key) }

func (k sandboxKV) Get(ctx context.Context, key string) ([]byte, error) { return k.s.kv.Get(ctx, key) }

func (k sandboxKV) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if k.write(key) {
		return k.s.kv.Set(ctx, key, value, ttl)
	}
	if !plugin.ValidKey(key) {
		return plugin.ErrKVBadKey
	}
	return nil
}

func (k sandboxKV) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if k.write(key) {
		return k.s.kv.Incr(ctx, key, delta, ttl)
	}
	cur, err := k.s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, plugin.ErrKVNotFound):
		return delta, nil
	case err != nil:
		return 0, err
	}
	var n int64
	if _, err := fmt.Sscan(string(cur), &n); err != nil {
		return 0, plugin.ErrKVNotInteger
	}
	return n + delta, nil
}

func (k sandboxKV) Delete(ctx context.Context, key string) error {
	if k.write(key) {
		return k.s.kv.Delete(ctx, key)
	}
	return nil
}

func (k sandboxKV) CAS(ctx context.Context, key string, expected, value []byte, ttl time.Duration) error {
	if k.write(key) {
		return k.s.kv.CAS(ctx, key, expected, value, ttl)
	}
	return nil
}
