package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A rollout proves a candidate on a growing share of real traffic. The
// host carries it out: at each step the candidate (the canary) answers
// that share of the plugin's messages, and every Interval its figures over
// the step so far are compared with the stable version's over the same
// window. A breach of the plan's thresholds takes the canary out of the
// traffic at once (one atomic store), closes it once its calls in flight
// end, and says why; a canary that went through every step is promoted
// through Apply, the normal make-before-break swap. Each message is served
// by exactly one version, chosen when a worker takes it, so none is lost
// or answered twice, whatever the decision.

// Limits and defaults of a Rollout.
const (
	// MaxRolloutSteps caps Rollout.Steps.
	MaxRolloutSteps = 10
	// MinStepDuration and MaxStepDuration bound Rollout.StepDuration.
	MinStepDuration = 10 * time.Millisecond
	MaxStepDuration = 24 * time.Hour
	// DefaultStepDuration is Rollout.StepDuration when zero.
	DefaultStepDuration = 2 * time.Minute
	// DefaultMaxErrorRatio is Rollout.MaxErrorRatio when zero.
	DefaultMaxErrorRatio = 0.01
	// DefaultMaxLatencyRatio is Rollout.MaxLatencyRatio when zero;
	// MaxLatencyRatioLimit bounds it.
	DefaultMaxLatencyRatio = 1.5
	MaxLatencyRatioLimit   = 100.0
	// DefaultLatencyFloor is Rollout.LatencyFloor when zero.
	DefaultLatencyFloor = 5 * time.Millisecond
	// DefaultMinMessages is Rollout.MinMessages when zero; MaxMinMessages
	// bounds it.
	DefaultMinMessages = 20
	MaxMinMessages     = 1_000_000
	// DeploySubjectPrefix is where the host publishes each rollout
	// decision, as a DeployEvent in JSON, on DeploySubjectPrefix + plugin.
	DeploySubjectPrefix = "trellis.deploy."
)

// DefaultRolloutSteps are Rollout.Steps when empty.
var DefaultRolloutSteps = []float64{0.05, 0.25, 1}

// Rollout is a plan for proving a candidate on live traffic.
type Rollout struct {
	// Steps are the canary's successive shares of the messages, above 0,
	// increasing, at most 1 (default DefaultRolloutSteps; at most
	// MaxRolloutSteps). The last need not be 1: promotion follows it.
	Steps []float64 `json:"steps"`
	// StepDuration is how long each step lasts at least (default
	// DefaultStepDuration, from MinStepDuration to MaxStepDuration). A step
	// also waits for the canary to have handled MinMessages in it.
	StepDuration time.Duration `json:"step_duration"`
	// MaxErrorRatio is how much higher the canary's error ratio may be
	// than the stable's in the same window, 0 to 1 (default
	// DefaultMaxErrorRatio: one point). An error is a status of 500 or
	// more, faults included.
	MaxErrorRatio float64 `json:"max_error_ratio"`
	// MaxLatencyRatio is how many times the stable's p99 the canary's may
	// be (latency counted from when a worker takes the message to its
	// answer: the wait in the plugin's inbox, which both share, is left out) (default DefaultMaxLatencyRatio, from 1 to MaxLatencyRatioLimit);
	// a difference under LatencyFloor (default DefaultLatencyFloor) is
	// never a breach, since p99s of microseconds are noise.
	MaxLatencyRatio float64       `json:"max_latency_ratio"`
	LatencyFloor    time.Duration `json:"latency_floor"`
	// MinMessages is how many messages a version must have handled in a
	// window before it is judged (default DefaultMinMessages, at most
	// MaxMinMessages).
	MinMessages int `json:"min_messages"`
	// Interval is how often the figures are compared (default a tenth of
	// StepDuration, from 10ms to 5s).
	Interval time.Duration `json:"interval"`
}

// withDefaults checks r and fills in its zero fields.
func (r Rollout) withDefaults() (Rollout, error) {
	if len(r.Steps) == 0 {
		r.Steps = DefaultRolloutSteps
	}
	if len(r.Steps) > MaxRolloutSteps {
		return r, fmt.Errorf("rollout: %d steps, more than %d (MaxRolloutSteps)", len(r.Steps), MaxRolloutSteps)
	}
	prev := 0.0
	for _, s := range r.Steps {
		if !(s > prev && s <= 1) {
			return r, fmt.Errorf("rollout steps %v: want shares above 0, increasing, at most 1 (100%%)", r.Steps)
		}
		if s*shareScale < 1 {
			return r, fmt.Errorf("rollout step %v: below 0.01%%, the smallest share", s)
		}
		prev = s
	}
	r.Steps = append([]float64(nil), r.Steps...)
	if r.StepDuration == 0 {
		r.StepDuration = DefaultStepDuration
	}
	if r.StepDuration < MinStepDuration || r.StepDuration > MaxStepDuration {
		return r, fmt.Errorf("rollout step duration %s: want %s to %s", r.StepDuration, MinStepDuration, MaxStepDuration)
	}
	if r.MaxErrorRatio == 0 {
		r.MaxErrorRatio = DefaultMaxErrorRatio
	}
	if !(r.MaxErrorRatio > 0 && r.MaxErrorRatio <= 1) {
		return r, fmt.Errorf("rollout max error ratio %v: want above 0 and at most 1", r.MaxErrorRatio)
	}
	if r.MaxLatencyRatio == 0 {
		r.MaxLatencyRatio = DefaultMaxLatencyRatio
	}
	if !(r.MaxLatencyRatio >= 1 && r.MaxLatencyRatio <= MaxLatencyRatioLimit) {
		return r, fmt.Errorf("rollout max latency ratio %v: want 1 to %v (MaxLatencyRatioLimit)", r.MaxLatencyRatio, MaxLatencyRatioLimit)
	}
	if r.LatencyFloor == 0 {
		r.LatencyFloor = DefaultLatencyFloor
	}
	if r.LatencyFloor < 0 || r.LatencyFloor > time.Minute {
		return r, fmt.Errorf("rollout latency floor %s: want 0 to 1m", r.LatencyFloor)
	}
	if r.MinMessages == 0 {
		r.MinMessages = DefaultMinMessages
	}
	if r.MinMessages < 1 || r.MinMessages > MaxMinMessages {
		return r, fmt.Errorf("rollout min messages %d: want 1 to %d (MaxMinMessages)", r.MinMessages, MaxMinMessages)
	}
	if r.Interval == 0 {
		r.Interval = min(max(r.StepDuration/10, 10*time.Millisecond), 5*time.Second)
	}
	if r.Interval < 10*time.Millisecond || r.Interval > r.StepDuration {
		return r, fmt.Errorf("rollout interval %s: want 10ms to the step duration (%s)", r.Interval, r.StepDuration)
	}
	return r, nil
}

// RolloutState is where a rollout is.
type RolloutState string

// The states of a rollout.
const (
	RolloutRunning    RolloutState = "running"
	RolloutPromoted   RolloutState = "promoted"
	RolloutRolledBack RolloutState = "rolled_back"
	// RolloutStopped ends a rollout whose host closed, or whose plugin was
	// unloaded, before it decided.
	RolloutStopped RolloutState = "stopped"
)

// Figures are a version's messages in a window.
type Figures struct {
	Messages   uint64  `json:"messages"`
	Errors     uint64  `json:"errors"`
	ErrorRatio float64 `json:"error_ratio"`
	P99        float64 `json:"p99_seconds"`
}

func figuresOf(r statsReading) Figures {
	return Figures{Messages: r.msgs, Errors: r.errs, ErrorRatio: r.errorRatio(), P99: r.quantile(0.99).Seconds()}
}

// RolloutStatus is a rollout's progress, or how it ended.
type RolloutStatus struct {
	Plugin  string       `json:"plugin"`
	Version string       `json:"version"`
	Stable  string       `json:"stable"`
	State   RolloutState `json:"state"`
	// Step is the step running (1 to len(Plan.Steps)), or the last one run.
	Step  int     `json:"step"`
	Share float64 `json:"share"`
	// Reason says why it ended, or what it waits for.
	Reason      string    `json:"reason,omitempty"`
	Started     time.Time `json:"started"`
	StepStarted time.Time `json:"step_started"`
	Ended       time.Time `json:"ended,omitzero"`
	// Canary and StableFigures are the figures of the step's window so far.
	Canary        Figures `json:"canary"`
	StableFigures Figures `json:"stable_figures"`
	Plan          Rollout `json:"plan"`
	// Decider is the host deciding a rollout across the cluster, by its
	// HostID (Options.Rollouts); "" for a rollout of one host.
	Decider string `json:"decider,omitempty"`
}

// DeployEvent is what the host publishes on DeploySubjectPrefix + plugin
// at each decision of a rollout: started, step, promoted, rolled_back,
// stopped.
type DeployEvent struct {
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"`
	RolloutStatus
}

// Event kinds of candidates and rollouts (see Event).
const (
	EventCandidate  EventKind = "candidate"   // a candidate version was added, removed or changed mode
	EventCanary     EventKind = "canary"      // a rollout started or moved to its next step
	EventPromoted   EventKind = "promoted"    // a canary became the stable version
	EventRolledBack EventKind = "rolled_back" // a canary was taken out of the traffic, with why
)

// rollout is one rollout the host carries out.
type rollout struct {
	h    *Host
	b    *binding
	c    *candidate
	plan Rollout
	cmd  chan rolloutCmd
	done chan struct{}
	// clusterID is the rollout across the cluster this is a host's view
	// of (rollout_cluster.go), or "" for a rollout of this host alone.
	clusterID string

	st RolloutStatus // under h.deploy.mu
}

type rolloutCmd struct {
	promote bool
	reason  string
}

// StartRollout makes candidate version of plugin name a canary and
// carries out plan: see Rollout. It returns once the rollout has begun;
// Rollout reports its progress and WaitRollout waits for its end. It
// fails for a plugin with a rollout running, a version that is not a
// candidate, or a plan out of bounds.
func (h *Host) StartRollout(name, version string, plan Rollout) error {
	plan, err := plan.withDefaults()
	if err != nil {
		return fmt.Errorf("plugin %q: %w", name, err)
	}
	if h.cluster != nil {
		return h.cluster.start(name, version, plan)
	}
	b, err := h.handlerBinding(name)
	if err != nil {
		return err
	}
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("host is closing")
	}
	if ro := d.rollouts[name]; ro != nil && ro.st.State == RolloutRunning {
		return fmt.Errorf("plugin %q: the rollout of version %s is running; abort it first", name, ro.st.Version)
	}
	cs := b.cands.Load()
	c := cs.find(version)
	if c == nil {
		return fmt.Errorf("plugin %q: version %s: %w; add it first", name, version, ErrNoCandidate)
	}
	c.live.Store(true)
	b.cands.Store(cs.with(func(cs *candidateSet) {
		cs.shadows = remove(cs.shadows, c) // a canary's side effects are real: it shadows no more
		cs.canary, cs.share = c, 0
		h.keepStableStats(b, cs)
	}))
	now := time.Now()
	ro := &rollout{h: h, b: b, c: c, plan: plan, cmd: make(chan rolloutCmd, 1), done: make(chan struct{}),
		st: RolloutStatus{Plugin: name, Version: version, Stable: b.snap.Load().version, State: RolloutRunning,
			Started: now, StepStarted: now, Plan: plan}}
	if d.rollouts == nil {
		d.rollouts = map[string]*rollout{}
	}
	d.rollouts[name] = ro
	d.wg.Add(1)
	go ro.run()
	return nil
}

// runningRollout returns plugin name's running rollout, or nil.
func (h *Host) runningRollout(name string) *rollout {
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	if ro := d.rollouts[name]; ro != nil && ro.st.State == RolloutRunning {
		return ro
	}
	return nil
}

// Rollout returns plugin name's rollout running, or the last one to end,
// and whether there is one.
func (h *Host) Rollout(name string) (RolloutStatus, bool) {
	if st := h.rolloutStatus(name); st != nil {
		return *st, true
	}
	return RolloutStatus{}, false
}

func (h *Host) rolloutStatus(name string) *RolloutStatus {
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	ro := d.rollouts[name]
	if ro == nil {
		return nil
	}
	st := ro.st
	st.Plan.Steps = append([]float64(nil), st.Plan.Steps...)
	return &st
}

// WaitRollout waits until plugin name's rollout ends (or ctx does) and
// returns how it ended.
func (h *Host) WaitRollout(ctx context.Context, name string) (RolloutStatus, error) {
	d := &h.deploy
	d.mu.Lock()
	ro := d.rollouts[name]
	d.mu.Unlock()
	if ro == nil {
		return RolloutStatus{}, fmt.Errorf("plugin %q: no rollout", name)
	}
	select {
	case <-ro.done:
	case <-ctx.Done():
		return RolloutStatus{}, ctx.Err()
	}
	st, _ := h.Rollout(name)
	return st, nil
}

// AbortRollout rolls plugin name's running rollout back, with reason, and
// waits for the canary to be out of the traffic.
func (h *Host) AbortRollout(ctx context.Context, name, reason string) error {
	if h.cluster != nil {
		return h.cluster.end(ctx, name, "", RolloutRolledBack, "aborted: "+reason)
	}
	return h.command(ctx, name, rolloutCmd{reason: "aborted: " + reason})
}

// Promote makes candidate version of plugin name the stable version now,
// through Apply: a running rollout of it skips its remaining steps; a
// candidate not under a rollout is promoted as it is.
func (h *Host) Promote(ctx context.Context, name, version string) error {
	if ro := h.runningRollout(name); ro != nil && h.cluster != nil {
		return h.cluster.end(ctx, name, version, RolloutPromoted, "promoted by the operator")
	}
	if ro := h.runningRollout(name); ro != nil {
		if ro.c.version != version {
			return fmt.Errorf("plugin %q: the rollout of version %s is running; abort it first", name, ro.c.version)
		}
		return h.command(ctx, name, rolloutCmd{promote: true, reason: "promoted by the operator"})
	}
	b, err := h.handlerBinding(name)
	if err != nil {
		return err
	}
	c := b.cands.Load().find(version)
	if c == nil {
		return fmt.Errorf("plugin %q: version %s: %w", name, version, ErrNoCandidate)
	}
	if err := h.promote(ctx, b, c); err != nil {
		return err
	}
	h.log.Info("candidate promoted", "plugin", name, "version", version, "reason", "promoted by the operator")
	h.events.add(Event{Kind: EventPromoted, Plugin: name, Version: version, Detail: "promoted by the operator"})
	return nil
}

func (h *Host) command(ctx context.Context, name string, cmd rolloutCmd) error {
	ro := h.runningRollout(name)
	if ro == nil {
		return fmt.Errorf("plugin %q: no rollout running", name)
	}
	select {
	case ro.cmd <- cmd:
	case <-ro.done:
		return nil // it ended on its own meanwhile
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ro.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopDeployments is Close's: no rollout or candidate starts from now,
// running rollouts stop (their canaries close with their bindings).
func (h *Host) stopDeployments() {
	d := &h.deploy
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
}

// run carries out the plan; it owns the rollout's progress.
func (ro *rollout) run() {
	h, b, c, plan := ro.h, ro.b, ro.c, ro.plan
	defer h.deploy.wg.Done()
	defer close(ro.done)
	stableVersion := ro.st.Stable
	// Its instances are made before it takes traffic, as many as the
	// stable has, so that making them does not count against it.
	inUse, idle, _ := b.snap.Load().plugin.PoolStats()
	wctx, cancel := context.WithTimeout(h.life, time.Minute)
	err := c.p.Warm(wctx, inUse+idle)
	cancel()
	if err != nil {
		ro.rollback("its instances could not start: " + err.Error())
		return
	}
	var baseline *statsReading // the stable's last window with enough messages
	tick := time.NewTicker(plan.Interval)
	defer tick.Stop()
	for i, share := range plan.Steps {
		cs := ro.setShare(i, share)
		stable := cs.stable
		startC, startS := c.stats.read(), stable.read()
		stepStart := time.Now()
		if i == 0 {
			ro.decide("started", "")
		} else {
			ro.decide("step", "")
		}
		for {
			select {
			case cmd := <-ro.cmd:
				if cmd.promote {
					ro.finishPromotion(cmd.reason)
				} else {
					ro.rollback(cmd.reason)
				}
				return
			case <-h.stopping:
				ro.end(RolloutStopped, "the host is closing", "stopped")
				return
			case <-tick.C:
			}
			now := b.cands.Load()
			if now == nil || now.canary != c {
				ro.end(RolloutStopped, "the candidate is gone: the plugin was unloaded", "stopped")
				return
			}
			if v := b.snap.Load().version; v != stableVersion {
				ro.rollback(fmt.Sprintf("the stable version changed from %s to %s during the rollout", stableVersion, v))
				return
			}
			cw, sw := c.stats.read().since(startC), stable.read().since(startS)
			ref := baseline
			if sw.msgs >= uint64(plan.MinMessages) {
				ref = &sw
				baseline = &sw
			}
			ro.figures(cw, sw)
			if why := plan.breach(cw, ref); why != "" {
				ro.rollback(why)
				return
			}
			if time.Since(stepStart) >= plan.StepDuration && cw.msgs >= uint64(plan.MinMessages) {
				break
			}
		}
	}
	ro.finishPromotion("every step passed")
}

// breach says how the canary's window cw is worse than the plan allows
// against the stable's ref (nil when the stable had too few messages in
// every window so far: then only the error ratio is judged, against 0),
// or "" when it is not, or cw is too small to judge.
func (plan Rollout) breach(cw statsReading, ref *statsReading) string {
	if cw.msgs < uint64(plan.MinMessages) {
		return ""
	}
	cr, sr, sn := cw.errorRatio(), 0.0, uint64(0)
	if ref != nil {
		sr, sn = ref.errorRatio(), ref.msgs
	}
	if cr > sr+plan.MaxErrorRatio {
		return fmt.Sprintf("error ratio %.2f%% over %d messages against the stable's %.2f%% over %d: more than %.2f points worse (max error ratio)",
			100*cr, cw.msgs, 100*sr, sn, 100*plan.MaxErrorRatio)
	}
	if ref == nil {
		return ""
	}
	cp, sp := cw.quantile(tailQuantile(cw.msgs)), ref.quantile(tailQuantile(ref.msgs))
	if float64(cp) > float64(sp)*plan.MaxLatencyRatio && cp-sp > plan.LatencyFloor {
		return fmt.Sprintf("p99 %s over %d messages against the stable's %s over %d: more than %.2f times and %s slower (max latency ratio)",
			cp, cw.msgs, sp, ref.msgs, plan.MaxLatencyRatio, plan.LatencyFloor)
	}
	return ""
}

// tailQuantile is the quantile the latency gate reads from a window of n
// messages: the p99, except in a window under 300 messages, where the p99
// would be one of its three slowest calls and a single garbage collection
// or scheduler pause could roll back a good version. There it is the
// quantile that leaves the three slowest calls out.
func tailQuantile(n uint64) float64 {
	if n <= 3 {
		return 0.5
	}
	if q := 1 - 3/float64(n); q < 0.99 {
		return q
	}
	return 0.99
}

// setShare gives the canary step i's share and returns the set published.
func (ro *rollout) setShare(i int, share float64) *candidateSet {
	d := &ro.h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := ro.b.cands.Load().with(func(cs *candidateSet) {
		if cs.canary == ro.c {
			cs.share = uint32(share*shareScale + 0.5)
		}
	})
	ro.b.cands.Store(cs)
	ro.st.Step, ro.st.Share, ro.st.StepStarted = i+1, share, time.Now()
	ro.st.Canary, ro.st.StableFigures = Figures{}, Figures{}
	ro.st.Reason = ""
	return cs
}

func (ro *rollout) figures(cw, sw statsReading) {
	d := &ro.h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	ro.st.Canary, ro.st.StableFigures = figuresOf(cw), figuresOf(sw)
	if cw.msgs < uint64(ro.plan.MinMessages) {
		ro.st.Reason = fmt.Sprintf("waiting for the canary to handle %d messages in this step (%d so far)", ro.plan.MinMessages, cw.msgs)
	} else {
		ro.st.Reason = ""
	}
}

// rollback takes the canary out of the traffic at once and closes it.
func (ro *rollout) rollback(why string) {
	ro.h.dropCandidate(ro.b, ro.c.version)
	ro.end(RolloutRolledBack, why, "rolled_back")
}

// finishPromotion promotes the canary, or rolls it back if that fails.
func (ro *rollout) finishPromotion(why string) {
	ctx, cancel := context.WithTimeout(ro.h.life, 2*time.Minute)
	defer cancel()
	if err := ro.h.promote(ctx, ro.b, ro.c); err != nil {
		ro.rollback("promotion failed: " + err.Error())
		return
	}
	ro.end(RolloutPromoted, why, "promoted")
}

// promote makes c the stable version of b through Apply, then drops it as
// a candidate: until the swap, c serves its share; after it, the stable
// runs the same module.
func (h *Host) promote(ctx context.Context, b *binding, c *candidate) error {
	spec := c.spec
	spec.Wasm, spec.Path = c.wasm, ""
	if _, err := h.Apply(ctx, Change{Load: []Spec{spec}}); err != nil {
		return err
	}
	h.dropCandidate(b, c.version)
	return nil
}

// end records the rollout's end.
func (ro *rollout) end(state RolloutState, why, decision string) {
	d := &ro.h.deploy
	d.mu.Lock()
	ro.st.State, ro.st.Reason, ro.st.Ended = state, why, time.Now()
	if state != RolloutPromoted {
		ro.st.Share = 0
	}
	d.mu.Unlock()
	ro.decide(decision, why)
}

// decide tells of a decision: a log line, a count in
// trellis_rollout_decisions_total, a host event and a DeployEvent on
// DeploySubjectPrefix + plugin.
func (ro *rollout) decide(decision, why string) {
	h := ro.h
	st := h.tellDecision(ro, decision, why, "")
	data, err := json.Marshal(DeployEvent{Time: time.Now(), Decision: decision, RolloutStatus: st})
	if err == nil {
		err = h.bus.Conn().Publish(DeploySubjectPrefix+st.Plugin, data)
	}
	if err != nil {
		h.log.Warn("rollout event not published", "plugin", st.Plugin, "error", err)
	}
}

// tellDecision counts a decision on ro in trellis_rollout_decisions_total,
// logs it (with extra key-value pairs) and adds a host event whose detail
// ends with suffix, and returns the status it told of.
func (h *Host) tellDecision(ro *rollout, decision, why, suffix string, extra ...any) RolloutStatus {
	d := &h.deploy
	d.mu.Lock()
	st := ro.st
	if d.decisions == nil {
		d.decisions = map[[2]string]uint64{}
	}
	d.decisions[[2]string{st.Plugin, decision}]++
	d.mu.Unlock()
	kv := append([]any{"plugin", st.Plugin, "version", st.Version, "stable", st.Stable, "decision", decision,
		"step", st.Step, "share", st.Share}, extra...)
	if why != "" {
		kv = append(kv, "reason", why)
	}
	kind := EventCanary
	switch decision {
	case "rolled_back":
		h.log.Warn("rollout", kv...)
		kind = EventRolledBack
	case "promoted":
		h.log.Info("rollout", kv...)
		kind = EventPromoted
	default:
		h.log.Info("rollout", kv...)
	}
	detail := decision
	if decision == "started" || decision == "step" {
		detail = fmt.Sprintf("%s: step %d of %d, %s of the traffic", decision, st.Step, len(st.Plan.Steps), percent(st.Share))
	}
	if why != "" {
		detail += ": " + why
	}
	h.events.add(Event{Kind: kind, Plugin: st.Plugin, Version: st.Version, Detail: detail + suffix})
	return st
}

func percent(share float64) string {
	return strconv.FormatFloat(100*share, 'f', -1, 64) + "%"
}

// ParseShares parses a list of percentages such as "5%,25%,100%" (the %
// optional) into rollout steps.
func ParseShares(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := ParsePercent(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ParsePercent parses "5%" or "5" as 0.05, and "0.5%" as 0.005. It
// refuses anything outside 0% to 100%.
func ParsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q: want a percentage from 0%% to 100%%", s)
	}
	return v / 100, nil
}

// deployCollector exports, at scrape time, each version's figures and
// share, shadows' comparisons and side effects, and rollout decisions.
type deployCollector struct{ h *Host }

var (
	descVersionMsgs = prometheus.NewDesc("trellis_version_messages_total",
		"Messages a version of a plugin handled while the plugin had candidates, by track (stable, canary, shadow, idle).",
		[]string{"plugin", "version", "track"}, nil)
	descVersionErrs = prometheus.NewDesc("trellis_version_errors_total",
		"Of trellis_version_messages_total, those that failed: a status of 500 or more, faults included.",
		[]string{"plugin", "version", "track"}, nil)
	descVersionSecs = prometheus.NewDesc("trellis_version_duration_seconds",
		"A version's latency while the plugin had candidates: from a worker taking the message to its answer (stable, canary), or the call (shadow).",
		[]string{"plugin", "version", "track"}, nil)
	descVersionShare = prometheus.NewDesc("trellis_version_share",
		"The share of a plugin's messages a canary answers, 0 to 1.", []string{"plugin", "version"}, nil)
	descShadow = prometheus.NewDesc("trellis_shadow_comparisons_total",
		"A shadow's copies by result: matched, differed, candidate_error (a difference where the shadow failed), skipped.",
		[]string{"plugin", "version", "result"}, nil)
	descShadowEffects = prometheus.NewDesc("trellis_shadow_side_effects_total",
		"Side effects a shadow tried, by kind (publish, request, kv_write), made or not.", []string{"plugin", "version", "kind"}, nil)
	descDecisions = prometheus.NewDesc("trellis_rollout_decisions_total",
		"Rollout decisions: started, step, promoted, rolled_back, stopped.", []string{"plugin", "decision"}, nil)
	descRolloutStep = prometheus.NewDesc("trellis_rollout_step",
		"The step a running rollout is at (1 for the first); 0 when it has ended.", []string{"plugin", "version"}, nil)
)

func (c deployCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVersionMsgs, descVersionErrs, descVersionSecs, descVersionShare,
		descShadow, descShadowEffects, descDecisions, descRolloutStep} {
		ch <- d
	}
}

func (c deployCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.h
	h.mu.Lock()
	bindings := make([]*binding, 0, len(h.bindings))
	for _, b := range h.bindings {
		bindings = append(bindings, b)
	}
	h.mu.Unlock()
	version := func(name, v, track string, s *versionStats) {
		r := s.read()
		ch <- prometheus.MustNewConstMetric(descVersionMsgs, prometheus.CounterValue, float64(r.msgs), name, v, track)
		ch <- prometheus.MustNewConstMetric(descVersionErrs, prometheus.CounterValue, float64(r.errs), name, v, track)
		ch <- prometheus.MustNewConstSummary(descVersionSecs, r.msgs, r.sum.Seconds(),
			map[float64]float64{0.5: r.quantile(0.5).Seconds(), 0.99: r.quantile(0.99).Seconds()}, name, v, track)
	}
	for _, b := range bindings {
		cs := b.cands.Load()
		if cs == nil {
			continue
		}
		if cs.stable != nil {
			version(b.name, cs.stableVersion, "stable", cs.stable)
		}
		for _, cand := range cs.all {
			mode := cs.mode(cand)
			version(b.name, cand.version, string(mode), &cand.stats)
			share := 0.0
			if mode == CandidateCanary {
				share = float64(cs.share) / shareScale
			}
			ch <- prometheus.MustNewConstMetric(descVersionShare, prometheus.GaugeValue, share, b.name, cand.version)
			if !cand.shadow.used() {
				continue
			}
			s := cand.shadow
			for result, v := range map[string]uint64{"matched": s.matched.Load(), "differed": s.differed.Load(),
				"candidate_error": s.candErrs.Load(), "skipped": s.skipped.Load()} {
				ch <- prometheus.MustNewConstMetric(descShadow, prometheus.CounterValue, float64(v), b.name, cand.version, result)
			}
			for k := range s.effects {
				ch <- prometheus.MustNewConstMetric(descShadowEffects, prometheus.CounterValue, float64(s.effects[k].Load()),
					b.name, cand.version, effectNames[k])
			}
		}
	}
	d := &h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, n := range d.decisions {
		ch <- prometheus.MustNewConstMetric(descDecisions, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	for name, ro := range d.rollouts {
		step := 0
		if ro.st.State == RolloutRunning {
			step = ro.st.Step
		}
		ch <- prometheus.MustNewConstMetric(descRolloutStep, prometheus.GaugeValue, float64(step), name, ro.st.Version)
	}
}
