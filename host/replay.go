package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/resilience"
)

// A replay runs a plugin's recorded messages (record.go), in the order
// they were recorded, against a version of the plugin, and compares each
// answer with the one the stable version sent. The version runs as a
// temporary candidate of its own, loaded for the replay and closed after
// it, exactly as harmless as a shadow with no side effect allowed: its
// replies are captured, its publishes, requests and KV writes recorded and
// not made. It never touches the plugin's live traffic.

// Limits on a replay, checked where they enter.
const (
	// MaxReplays is how many replays one host runs at once.
	MaxReplays = 2
	// DefaultReplayLimit is ReplayOptions.Limit when zero; MaxReplayLimit
	// caps it.
	DefaultReplayLimit = 1000
	MaxReplayLimit     = 100000
	// MaxReplayRate caps ReplayOptions.Rate, in messages a second.
	MaxReplayRate = 10000
	// replayFetch is how many recorded messages are read at a time, and
	// replayWait how long a read waits for them.
	replayFetch = 64
	replayWait  = 2 * time.Second
)

// ReplayOptions say what to replay, against what and how fast.
type ReplayOptions struct {
	// Plugin is the loaded handler whose recording is replayed.
	Plugin string `json:"plugin"`
	// Version is one of the plugin's candidates, by version; or Path or
	// Wasm a module, loaded for the replay with the stable's spec. Give one.
	// Without any, the plugin's only candidate.
	Version string `json:"version,omitempty"`
	Path    string `json:"path,omitempty"`
	Wasm    []byte `json:"wasm,omitempty"`
	// Config, if not nil, replaces the stable's config for a module.
	Config map[string]string `json:"config,omitempty"`
	// Subject filters the recorded messages (NATS wildcards allowed);
	// empty means all.
	Subject string `json:"subject,omitempty"`
	// Since replays what was recorded in the last Since; 0 means all the
	// recording holds. At most MaxRecordAge.
	Since time.Duration `json:"since,omitempty"`
	// Rate is how many messages a second are replayed; 0 runs them one
	// after another as fast as the version answers. At most MaxReplayRate.
	Rate float64 `json:"rate,omitempty"`
	// Limit caps the messages replayed (default DefaultReplayLimit, at
	// most MaxReplayLimit).
	Limit int `json:"limit,omitempty"`
	// IgnoreFields and Diffs are as in ShadowOptions: JSON fields left out
	// of the comparison, and how many differences the report keeps.
	IgnoreFields []string `json:"ignore_fields,omitempty"`
	Diffs        int      `json:"diffs,omitempty"`
}

// ReplayReport is what a replay found.
type ReplayReport struct {
	Plugin  string `json:"plugin"`
	Version string `json:"version"`
	// Replayed counts messages run; Same and Different how their answers
	// compared with the recorded ones; NotCompared those whose recorded
	// answer went out unseen. Errors counts the version's failures (a
	// status of 500 or more, faults included), CandidateErrors those of
	// them where the stable did not fail.
	Replayed        uint64 `json:"replayed"`
	Same            uint64 `json:"same"`
	Different       uint64 `json:"different"`
	NotCompared     uint64 `json:"not_compared"`
	Errors          uint64 `json:"errors"`
	CandidateErrors uint64 `json:"candidate_errors"`
	// P50 and P99 are the version's call latencies in seconds; Seconds is
	// how long the replay took.
	P50     float64 `json:"p50_seconds"`
	P99     float64 `json:"p99_seconds"`
	Seconds float64 `json:"seconds"`
	// Stopped says why the replay ended before the messages did (its
	// context ended); empty when it ran them all.
	Stopped string `json:"stopped,omitempty"`
	// SideEffects and Effects are what the version tried to do: none of
	// it was made.
	SideEffects map[string]uint64 `json:"side_effects"`
	Effects     []SideEffect      `json:"effects,omitempty"`
	// Diffs are the last differences, oldest first.
	Diffs []ShadowDiff `json:"diffs"`
}

// check checks o and fills in its defaults.
func (o *ReplayOptions) check() (ShadowOptions, error) {
	sources := 0
	for _, set := range []bool{o.Version != "", o.Path != "", o.Wasm != nil} {
		if set {
			sources++
		}
	}
	switch {
	case o.Plugin == "":
		return ShadowOptions{}, errors.New("replay: no plugin")
	case sources > 1:
		return ShadowOptions{}, errors.New("replay: give a candidate's version or a module, not both")
	case o.Since < 0 || o.Since > MaxRecordAge:
		return ShadowOptions{}, fmt.Errorf("replay since %s: want 0 (all) to %s (MaxRecordAge)", o.Since, MaxRecordAge)
	case !(o.Rate >= 0 && o.Rate <= MaxReplayRate):
		return ShadowOptions{}, fmt.Errorf("replay rate %v a second: want 0 (as fast as it answers) to %d (MaxReplayRate)", o.Rate, MaxReplayRate)
	case o.Limit < 0 || o.Limit > MaxReplayLimit:
		return ShadowOptions{}, fmt.Errorf("replay limit %d: want 1 to %d (MaxReplayLimit)", o.Limit, MaxReplayLimit)
	}
	if o.Limit == 0 {
		o.Limit = DefaultReplayLimit
	}
	if o.Subject == "" {
		o.Subject = ">"
	}
	if err := subscribable(o.Subject); err != nil {
		return ShadowOptions{}, fmt.Errorf("replay subject %.64q: %w", o.Subject, err)
	}
	// No side effect is ever allowed: Allow* stay false.
	sh, err := ShadowOptions{IgnoreFields: o.IgnoreFields, Diffs: o.Diffs}.withDefaults()
	if err != nil {
		return ShadowOptions{}, fmt.Errorf("replay: %w", err)
	}
	return sh, nil
}

// Replay runs plugin o.Plugin's recorded messages against a version and
// compares the answers with the recorded ones (see ReplayOptions). It
// reads the messages recorded up to when it starts, in order, at most
// o.Limit. It returns when they have all run, or, with the report so far
// and Stopped set, when ctx ends. It fails for options out of bounds, a
// plugin not loaded or without a recording, a version that is not a
// candidate, a module that does not load, or MaxReplays replays running.
func (h *Host) Replay(ctx context.Context, o ReplayOptions) (ReplayReport, error) {
	sh, err := o.check()
	if err != nil {
		return ReplayReport{}, err
	}
	b, err := h.handlerBinding(o.Plugin)
	if err != nil {
		return ReplayReport{}, err
	}
	rc := &h.rec
	if rc.replays.Add(1) > MaxReplays {
		rc.replays.Add(-1)
		return ReplayReport{}, fmt.Errorf("replay: %d replays running already, the most one host runs (MaxReplays)", MaxReplays)
	}
	defer rc.replays.Add(-1)
	c, err := h.replayCandidate(ctx, b, o, sh)
	if err != nil {
		return ReplayReport{}, err
	}
	defer func() { _ = c.p.Close(context.WithoutCancel(ctx)) }()

	stream, err := h.js.Stream(ctx, RecordStreamPrefix+o.Plugin)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return ReplayReport{}, fmt.Errorf("plugin %q has no recording (stream %s): turn it on with a record block or SetRecording", o.Plugin, RecordStreamPrefix+o.Plugin)
		}
		return ReplayReport{}, fmt.Errorf("plugin %q: recording: %w", o.Plugin, err)
	}
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		FilterSubject:     RecordSubjectPrefix + o.Plugin + "." + o.Subject,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	}
	if o.Since > 0 {
		start := time.Now().Add(-o.Since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("plugin %q: read the recording: %w", o.Plugin, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	// What was recorded when the replay began, no more: a recording that
	// goes on meanwhile does not make it endless.
	todo := min(cons.CachedInfo().NumPending, uint64(o.Limit))

	rep := ReplayReport{Plugin: o.Plugin, Version: c.version}
	h.log.Info("replay started", "plugin", o.Plugin, "version", c.version, "subject", o.Subject, "messages", todo, "rate", o.Rate)
	began := time.Now()
	var pace *time.Ticker
	if o.Rate > 0 {
		pace = time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer pace.Stop()
	}
	var n uint64
read:
	for n < todo {
		fctx, cancel := context.WithTimeout(ctx, replayWait)
		batch, err := cons.Fetch(int(min(todo-n, replayFetch)), jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			rep.Stopped = "reading the recording: " + err.Error()
			break
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if n > 0 && pace != nil {
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				rep.Stopped = ctx.Err().Error()
				cancel()
				break read
			}
			var rm recordedMessage
			if err := json.Unmarshal(m.Data(), &rm); err != nil {
				h.log.Warn("replay: recorded message unreadable", "plugin", o.Plugin, "subject", m.Subject(), "error", err)
				continue
			}
			n++
			job := shadowJob{msg: &plugin.Message{Subject: rm.Subject, Header: rm.Header, Data: rm.Data},
				stable: answer{status: rm.Status, data: rm.Reply, known: rm.Known}}
			if rm.Request {
				job.reply = "_INBOX.trellis.replay"
			}
			c.shadow.run(h, job)
			if !rm.Known {
				rep.NotCompared++
			}
		}
		cancel()
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			rep.Stopped = "reading the recording: " + err.Error()
			break
		}
		if got == 0 {
			if ctx.Err() != nil {
				rep.Stopped = ctx.Err().Error()
			} else {
				rep.Stopped = "the recording ended early (its oldest messages aged out?)"
			}
			break
		}
	}
	sr := c.shadow.report()
	st := c.stats.read()
	rep.Replayed, rep.Same, rep.Different, rep.CandidateErrors = st.msgs, sr.Matched, sr.Differed, sr.CandidateErrors
	rep.Errors = st.errs
	rep.P50, rep.P99 = st.quantile(0.5).Seconds(), st.quantile(0.99).Seconds()
	rep.Seconds = time.Since(began).Seconds()
	rep.SideEffects, rep.Effects, rep.Diffs = sr.SideEffects, sr.Effects, sr.Diffs
	h.events.add(Event{Kind: EventReplayed, Plugin: o.Plugin, Version: c.version,
		Detail: fmt.Sprintf("%d replayed: %d same, %d different, %d errors", rep.Replayed, rep.Same, rep.Different, rep.Errors)})
	h.log.Info("replay done", "plugin", o.Plugin, "version", c.version, "replayed", rep.Replayed, "same", rep.Same,
		"different", rep.Different, "errors", rep.Errors, "stopped", rep.Stopped)
	return rep, nil
}

// replayCandidate loads the version a replay runs against, with its own
// pool of one instance, outside the plugin's candidates: nothing routes
// traffic to it, and it makes no side effect.
func (h *Host) replayCandidate(ctx context.Context, b *binding, o ReplayOptions, sh ShadowOptions) (*candidate, error) {
	stable := b.snap.Load()
	spec := stable.spec
	var wasm []byte
	switch {
	case o.Wasm != nil:
		wasm = o.Wasm
	case o.Path != "":
		var err error
		if wasm, err = plugin.ReadModule(o.Path); err != nil {
			return nil, fmt.Errorf("plugin %q: replay: %w", o.Plugin, err)
		}
		spec.Path = o.Path
	default:
		cs := b.cands.Load()
		var from *candidate
		switch {
		case o.Version != "":
			if from = cs.find(o.Version); from == nil {
				return nil, fmt.Errorf("plugin %q: version %s: %w; replay a module instead", o.Plugin, o.Version, ErrNoCandidate)
			}
		case cs != nil && len(cs.all) == 1:
			from = cs.all[0]
		default:
			return nil, fmt.Errorf("plugin %q: replay against which version? name a candidate or give a module", o.Plugin)
		}
		wasm, spec = from.wasm, from.spec
	}
	if o.Config != nil {
		spec.Config = o.Config
	}
	spec.Wasm, spec.PoolSize = nil, 1
	c := &candidate{b: b, version: plugin.Version(wasm), wasm: wasm, spec: spec, added: time.Now(),
		breaker: &resilience.Breaker{}}
	c.shadow = newShadowState(c, sh)
	var err error
	if c.p, err = h.makeCandidate(ctx, c); err != nil {
		return nil, fmt.Errorf("plugin %q: replay: %w", o.Plugin, err)
	}
	return c, nil
}
