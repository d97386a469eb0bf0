package host

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Rollouts across a cluster. When several hosts share a bus and run the
// same plugin, a rollout started on one of them is carried out by all:
//
//   - The plan and its state live in the JetStream KV bucket
//     RolloutsBucket, under "plan.PLUGIN" (a clusterRecord in JSON). The
//     candidate's module goes to the object store ModulesBucket, named by
//     its SHA-256; a host that lacks the candidate fetches it, checks its
//     size and hash against the record, and adds the same candidate.
//   - Each host gives the canary the current step's share of its own
//     traffic and publishes its figures for the step under
//     "figures.PLUGIN.HOST" every Interval.
//   - One host decides at a time: the holder of "lease.PLUGIN", taken by
//     compare-and-set (the host a rollout starts on tries first) and
//     renewed every third of Options.RolloutLease. The decider sums every
//     host's figures for the step, applies the same breach rules as a
//     single host (Rollout.breach), and writes the next state by
//     compare-and-set on the record's revision; every host watches the
//     bucket and follows: a new share, a promotion through its own Apply,
//     or a rollback that drops its candidate.
//   - A decider that closes deletes the lease, and another host takes it
//     at once; one that stops renewing it (a cut connection, a crash) is
//     replaced once the lease has gone unrenewed for RolloutLease. The new
//     decider continues from the stored state: the step and when it began.
//   - A promotion's record and module stay after it: a host that starts
//     later running the version it replaced catches up with it (catchUp),
//     until the plugin's next rollout replaces the record.
//
// Everything read from the bucket is untrusted: another client of the bus
// may write there. A value that does not parse or is out of bounds is
// refused with a log line that names the key and why; a running
// rollout's record replaced by such a value is rolled back by the decider,
// since no host can say any more what the plan is. A lease no host can
// read is taken over like a lapsed one. One goroutine per host owns all
// of this; a message's path reads only the candidate set it publishes.

// RolloutMode says who carries out a rollout: see Options.Rollouts.
type RolloutMode string

// The modes of Options.Rollouts.
const (
	// RolloutsLocal (the default): the host a rollout is started on
	// carries it out alone, with its own figures.
	RolloutsLocal RolloutMode = "local"
	// RolloutsCluster: every host on the bus with the plugin loaded
	// carries it out, one deciding at a time (see rollout_cluster.go).
	RolloutsCluster RolloutMode = "cluster"
)

// Names, defaults and limits of rollouts across a cluster.
const (
	// RolloutsBucket is the JetStream KV bucket holding plans, leases and
	// per-host figures.
	RolloutsBucket = "TRELLIS_ROLLOUTS"
	// ModulesBucket is the JetStream object store holding candidates'
	// modules, named by their SHA-256 in hex.
	ModulesBucket = "TRELLIS_MODULES"
	// DefaultRolloutLease is Options.RolloutLease when zero;
	// MinRolloutLease and MaxRolloutLease bound it.
	DefaultRolloutLease = 5 * time.Second
	MinRolloutLease     = 100 * time.Millisecond
	MaxRolloutLease     = 5 * time.Minute
	// MaxRolloutRecord bounds a value in RolloutsBucket.
	MaxRolloutRecord = 64 << 10
	// MaxClusterModule bounds a module carried through ModulesBucket, and
	// MaxModulesBytes the whole object store.
	MaxClusterModule = 64 << 20
	MaxModulesBytes  = 1 << 30
	// maxRefusal bounds the reason a host gives for refusing a candidate.
	maxRefusal = 1024
	// maxClusterKeys bounds the plugins the bucket's keys may name, and
	// maxClusterHosts the hosts whose figures a host keeps for one of its
	// plugins (it keeps none for a plugin it does not run), so that keys
	// written by another client cannot grow a host's memory without bound.
	// fetchTimeout bounds the fetch of a module from ModulesBucket.
	fetchTimeout    = 20 * time.Second
	maxClusterKeys  = 1024
	maxClusterHosts = 256
)

// clusterName is what a plugin or host name must be to appear in a key.
var clusterName = regexp.MustCompile(`^[-_=A-Za-z0-9]{1,200}$`)

// checkRolloutOptions checks Options.Rollouts and RolloutLease and fills
// in their defaults.
func (o *Options) checkRolloutOptions() error {
	switch o.Rollouts {
	case "":
		o.Rollouts = RolloutsLocal
	case RolloutsLocal, RolloutsCluster:
	default:
		return fmt.Errorf("rollouts %q: want %q or %q", o.Rollouts, RolloutsLocal, RolloutsCluster)
	}
	if o.RolloutLease == 0 {
		o.RolloutLease = DefaultRolloutLease
	}
	if o.RolloutLease < MinRolloutLease || o.RolloutLease > MaxRolloutLease {
		return fmt.Errorf("rollout lease %s: want %s to %s", o.RolloutLease, MinRolloutLease, MaxRolloutLease)
	}
	return nil
}

// clusterRecord is a rollout's plan and state, "plan.PLUGIN" in
// RolloutsBucket.
type clusterRecord struct {
	ID      string `json:"id"`
	Plugin  string `json:"plugin"`
	Version string `json:"version"`
	// Module is the module's SHA-256 in hex (its name in ModulesBucket),
	// Size its length.
	Module string            `json:"module"`
	Size   int64             `json:"size"`
	Config map[string]string `json:"config,omitempty"`
	Stable string            `json:"stable"`

	State       RolloutState `json:"state"`
	Step        int          `json:"step"`
	Share       float64      `json:"share"`
	Reason      string       `json:"reason,omitempty"`
	Started     time.Time    `json:"started"`
	StepStarted time.Time    `json:"step_started"`
	Ended       time.Time    `json:"ended,omitzero"`
	Plan        Rollout      `json:"plan"`
	// Decider is the host that wrote this state.
	Decider string `json:"decider"`
}

var (
	hexID      = regexp.MustCompile(`^[0-9a-f]{8,64}$`)
	hexVersion = regexp.MustCompile(`^[0-9a-f]{12}$`)
	hexSum     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// decodeRecord parses and checks the record stored for plugin.
func decodeRecord(data []byte, plugin string) (*clusterRecord, error) {
	if len(data) > MaxRolloutRecord {
		return nil, fmt.Errorf("%d bytes, more than %d (MaxRolloutRecord)", len(data), MaxRolloutRecord)
	}
	var r clusterRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("not a rollout record: %w", err)
	}
	plan, err := r.Plan.withDefaults()
	switch {
	case err != nil:
		return nil, err
	case !hexID.MatchString(r.ID):
		return nil, fmt.Errorf("id %.80q: want 8 to 64 hex digits", r.ID)
	case r.Plugin != plugin:
		return nil, fmt.Errorf("plugin %.80q under the key of plugin %q", r.Plugin, plugin)
	case !hexSum.MatchString(r.Module) || r.Version != r.Module[:12]:
		return nil, fmt.Errorf("module %.80q, version %.80q: want a SHA-256 in hex and its first 12 digits", r.Module, r.Version)
	case r.Size < 1 || r.Size > MaxClusterModule:
		return nil, fmt.Errorf("module size %d: want 1 to %d (MaxClusterModule)", r.Size, MaxClusterModule)
	case !hexVersion.MatchString(r.Stable):
		return nil, fmt.Errorf("stable version %.80q: want 12 hex digits", r.Stable)
	case r.Step < 1 || r.Step > len(plan.Steps):
		return nil, fmt.Errorf("step %d of a plan of %d", r.Step, len(plan.Steps))
	case r.Started.IsZero() || r.StepStarted.IsZero():
		return nil, errors.New("no start time")
	case len(r.Reason) > 4*maxRefusal || len(r.Decider) > 200:
		return nil, errors.New("reason or decider too long")
	}
	switch r.State {
	case RolloutRunning:
		if r.Share != plan.Steps[r.Step-1] {
			return nil, fmt.Errorf("share %v at step %d, whose share is %v", r.Share, r.Step, plan.Steps[r.Step-1])
		}
	case RolloutPromoted, RolloutRolledBack, RolloutStopped:
	default:
		return nil, fmt.Errorf("state %.40q: want running, promoted, rolled_back or stopped", r.State)
	}
	r.Plan = plan
	return &r, nil
}

// status is the record as a RolloutStatus.
func (r *clusterRecord) status() RolloutStatus {
	st := RolloutStatus{Plugin: r.Plugin, Version: r.Version, Stable: r.Stable, State: r.State, Step: r.Step,
		Share: r.Share, Reason: r.Reason, Started: r.Started, StepStarted: r.StepStarted, Ended: r.Ended, Plan: r.Plan}
	st.Plan.Steps = append([]float64(nil), r.Plan.Steps...)
	return st
}

// ended returns a copy of r ended in state, why, decided by host.
func (r *clusterRecord) ended(state RolloutState, why, host string) *clusterRecord {
	next := *r
	next.State, next.Reason, next.Ended, next.Decider = state, why, time.Now(), host
	if state != RolloutPromoted {
		next.Share = 0
	}
	return &next
}

// leaseRecord is "lease.PLUGIN": who decides.
type leaseRecord struct {
	Holder  string    `json:"holder"`
	Rollout string    `json:"rollout"`
	Renewed time.Time `json:"renewed"`
}

// windowFigures is a version's figures over a host's window, latencies as
// [bucket, count] pairs of the non-empty buckets.
type windowFigures struct {
	Msgs  uint64      `json:"msgs"`
	Errs  uint64      `json:"errs"`
	SumNS int64       `json:"sum_ns"`
	Lat   [][2]uint64 `json:"lat,omitempty"`
}

func windowOf(r statsReading) windowFigures {
	w := windowFigures{Msgs: r.msgs, Errs: r.errs, SumNS: int64(r.sum)}
	for i, n := range r.lat {
		if n > 0 {
			w.Lat = append(w.Lat, [2]uint64{uint64(i), n})
		}
	}
	return w
}

func (w windowFigures) check() error {
	if w.Errs > w.Msgs || len(w.Lat) > latBuckets {
		return errors.New("more errors than messages, or too many latency buckets")
	}
	var n uint64
	for _, b := range w.Lat {
		if b[0] >= latBuckets {
			return fmt.Errorf("latency bucket %d: want below %d", b[0], latBuckets)
		}
		n += b[1]
		if n < b[1] {
			return errors.New("latency counts overflow")
		}
	}
	if n != w.Msgs {
		return fmt.Errorf("latency counts add up to %d, not to the %d messages", n, w.Msgs)
	}
	return nil
}

func (w windowFigures) reading() statsReading {
	r := statsReading{msgs: w.Msgs, errs: w.Errs, sum: time.Duration(w.SumNS)}
	for _, b := range w.Lat {
		r.lat[b[0]] += b[1]
	}
	return r
}

// plus adds o's counts to r.
func (r statsReading) plus(o statsReading) statsReading {
	r.msgs, r.errs, r.sum = r.msgs+o.msgs, r.errs+o.errs, r.sum+o.sum
	for i := range r.lat {
		r.lat[i] += o.lat[i]
	}
	return r
}

// hostFigures is "figures.PLUGIN.HOST": one host's part of a step.
type hostFigures struct {
	Host    string        `json:"host"`
	Rollout string        `json:"rollout"`
	Step    int           `json:"step"`
	Canary  windowFigures `json:"canary"`
	Stable  windowFigures `json:"stable"`
	// Refused says why the host could not follow the rollout: the decider
	// rolls it back.
	Refused string `json:"refused,omitempty"`
	// Joining says the host is still fetching, compiling or warming the
	// candidate: no step ends before it has applied it.
	Joining bool `json:"joining,omitempty"`
}

func decodeFigures(data []byte, host string) (*hostFigures, error) {
	if len(data) > MaxRolloutRecord {
		return nil, fmt.Errorf("%d bytes, more than %d (MaxRolloutRecord)", len(data), MaxRolloutRecord)
	}
	var f hostFigures
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a host's figures: %w", err)
	}
	if f.Host != host || !hexID.MatchString(f.Rollout) || f.Step < 1 || f.Step > MaxRolloutSteps || len(f.Refused) > maxRefusal {
		return nil, fmt.Errorf("host %.80q, rollout %.80q, step %d: out of bounds", f.Host, f.Rollout, f.Step)
	}
	if err := f.Canary.check(); err != nil {
		return nil, fmt.Errorf("canary: %w", err)
	}
	if err := f.Stable.check(); err != nil {
		return nil, fmt.Errorf("stable: %w", err)
	}
	return &f, nil
}

// Keys of RolloutsBucket.
func planKey(plugin string) string          { return "plan." + plugin }
func leaseKey(plugin string) string         { return "lease." + plugin }
func figuresKey(plugin, host string) string { return "figures." + plugin + "." + host }

// parseKey splits a key of RolloutsBucket into its kind, plugin and host.
func parseKey(key string) (kind, plugin, host string, ok bool) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 2 && (parts[0] == "plan" || parts[0] == "lease") && clusterName.MatchString(parts[1]):
		return parts[0], parts[1], "", true
	case len(parts) == 3 && parts[0] == "figures" && clusterName.MatchString(parts[1]) && clusterName.MatchString(parts[2]):
		return parts[0], parts[1], parts[2], true
	}
	return "", "", "", false
}

// clusterRollouts is a host's part in rollouts across the cluster.
type clusterRollouts struct {
	h     *Host
	id    string
	lease time.Duration
	ctx   context.Context
	stop  context.CancelFunc
	// ready is closed once kv and obj are open; they are not changed after.
	ready chan struct{}
	kv    jetstream.KeyValue
	obj   jetstream.ObjectStore

	// joined brings joins' results to run's goroutine.
	joined chan joinResult

	// What follows is owned by run's goroutine.
	plugins map[string]*follow
	warned  map[string]uint64 // key → the revision last refused, so each is logged once
}

// follow is what a host knows of one plugin's rollout, and its part in it.
type follow struct {
	name    string
	rec     *clusterRecord // the last valid record
	rev     uint64         // the plan key's last revision, valid or not
	corrupt string         // why the latest value was refused, while rec is running
	lease   leaseSeen
	figs    map[string]figSeen

	// This host's part in rollout id.
	id             string
	ro             *rollout // its view, in h.deploy.rollouts
	c              *candidate
	stable         *versionStats
	refused        string
	joining        bool // a join runs
	cancelJoin     context.CancelFunc
	step           int
	startC, startS statsReading
	baseline       *statsReading // the stable's last sum over enough messages; see tally
	nextFigures    time.Time
	nextDecide     time.Time
	renewed        time.Time
	done           bool
}

type leaseSeen struct {
	holder string // "" when there is none, or it is unreadable
	bad    bool   // unreadable: taken over at once
	rev    uint64
	seen   time.Time // when this revision was seen
}

type figSeen struct {
	f    *hostFigures
	seen time.Time
}

// startClusterRollouts starts the host's part in rollouts across the
// cluster, with Options.Rollouts set to RolloutsCluster.
func (h *Host) startClusterRollouts() {
	if h.opts.Rollouts != RolloutsCluster {
		return
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	cr := &clusterRollouts{h: h, id: hex.EncodeToString(id[:]), lease: h.opts.RolloutLease, ready: make(chan struct{}),
		joined: make(chan joinResult), plugins: map[string]*follow{}, warned: map[string]uint64{}}
	cr.ctx, cr.stop = context.WithCancel(h.life)
	h.cluster = cr
	h.deploy.wg.Add(1)
	go cr.run()
}

// HostID is the name this host goes by in rollouts across the cluster
// (Options.Rollouts), in logs and in RolloutStatus.Decider; "" when
// rollouts are local.
func (h *Host) HostID() string {
	if h.cluster == nil {
		return ""
	}
	return h.cluster.id
}

// open creates or opens the bucket and the object store, trying again
// until it works or the host closes.
func (cr *clusterRollouts) open() bool {
	wait := 100 * time.Millisecond
	for logged := false; ; {
		err := cr.tryOpen()
		if err == nil {
			cr.h.log.Info("cluster rollouts", "host_id", cr.id, "bucket", RolloutsBucket, "modules", ModulesBucket, "lease", cr.lease)
			return true
		}
		if !logged {
			cr.h.log.Warn("cluster rollouts: cannot open their bucket yet; trying again", "error", err)
			logged = true
		}
		select {
		case <-cr.h.stopping:
			return false
		case <-cr.ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (cr *clusterRollouts) tryOpen() error {
	ctx, cancel := context.WithTimeout(cr.ctx, 10*time.Second)
	defer cancel()
	replicas := max(cr.h.bus.Replicas(), 1)
	kv, err := cr.h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: RolloutsBucket,
		Description: "Trellis rollouts: plans, leases, per-host figures", History: 1,
		MaxValueSize: MaxRolloutRecord, Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return fmt.Errorf("kv bucket %s: %w", RolloutsBucket, placement(err))
	}
	obj, err := cr.h.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ModulesBucket,
		Description: "Trellis candidate modules, by SHA-256", MaxBytes: MaxModulesBytes,
		Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return fmt.Errorf("object store %s: %w", ModulesBucket, placement(err))
	}
	cr.kv, cr.obj = kv, obj
	return nil
}

// opened returns whether the bucket is open, and why not.
func (cr *clusterRollouts) opened() error {
	select {
	case <-cr.ready:
		return nil
	default:
		return fmt.Errorf("cluster rollouts: bucket %s not open yet (is JetStream reachable?)", RolloutsBucket)
	}
}

// run watches the bucket and plays the host's part; it owns every follow.
func (cr *clusterRollouts) run() {
	defer cr.h.deploy.wg.Done()
	defer cr.stop()
	if !cr.open() {
		return
	}
	close(cr.ready)
	var w jetstream.KeyWatcher
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if w == nil {
			var err error
			if w, err = cr.kv.WatchAll(cr.ctx); err != nil {
				cr.h.log.Warn("cluster rollouts: cannot watch the bucket; trying again", "error", err)
				w = nil
			}
		}
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-cr.ctx.Done():
			// New failed after starting it, or Close's context ended.
			select {
			case <-cr.h.stopping:
				cr.shutdown()
			default:
			}
			if w != nil {
				_ = w.Stop()
			}
			return
		case <-cr.h.stopping:
			cr.shutdown()
			if w != nil {
				_ = w.Stop()
			}
			return
		case e, ok := <-updates:
			if !ok {
				w = nil
				continue
			}
			if e != nil {
				cr.update(e, time.Now())
			}
			// Everything the watch has brought so far is taken in before
			// acting on it: after a long join, say, the lease seen last
			// may have been renewed many times since.
			for drained := false; !drained; {
				select {
				case e, ok := <-updates:
					if !ok {
						w, drained = nil, true
					} else if e != nil {
						cr.update(e, time.Now())
					}
				default:
					drained = true
				}
			}
		case r := <-cr.joined:
			cr.joinedAs(r)
		case <-timer.C:
		}
		timer.Reset(cr.pass(time.Now()))
	}
}

// refuse logs a value of the bucket refused, once per key and revision.
func (cr *clusterRollouts) refuse(key string, rev uint64, err error) {
	if cr.warned[key] == rev {
		return
	}
	if len(cr.warned) >= maxClusterKeys {
		clear(cr.warned)
	}
	cr.warned[key] = rev
	cr.h.log.Error("cluster rollouts: value refused", "bucket", RolloutsBucket, "key", key, "revision", rev, "error", err)
}

func (cr *clusterRollouts) follow(plugin string) *follow {
	f := cr.plugins[plugin]
	if f == nil && len(cr.plugins) < maxClusterKeys {
		f = &follow{name: plugin, figs: map[string]figSeen{}}
		cr.plugins[plugin] = f
	}
	return f
}

// update takes in one change of the bucket.
func (cr *clusterRollouts) update(e jetstream.KeyValueEntry, now time.Time) {
	key, rev := e.Key(), e.Revision()
	kind, plugin, host, ok := parseKey(key)
	if !ok {
		cr.refuse(key, rev, fmt.Errorf("not a key of %s: want plan.PLUGIN, lease.PLUGIN or figures.PLUGIN.HOST with names of %s", RolloutsBucket, clusterName))
		return
	}
	f := cr.follow(plugin)
	if f == nil {
		cr.refuse(key, rev, fmt.Errorf("more than %d plugins in the bucket", maxClusterKeys))
		return
	}
	del := e.Operation() != jetstream.KeyValuePut
	switch kind {
	case "plan":
		if rev <= f.rev {
			return // our own write, seen again
		}
		f.rev = rev
		var err error
		if del {
			err = errors.New("deleted")
		} else {
			var rec *clusterRecord
			if rec, err = decodeRecord(e.Value(), plugin); err == nil {
				f.rec, f.corrupt = rec, ""
				return
			}
		}
		if !del {
			cr.refuse(key, rev, err)
		}
		if f.rec != nil && f.rec.State == RolloutRunning {
			f.corrupt = fmt.Sprintf("the rollout record was replaced by an invalid value (revision %d): %v", rev, err)
		}
	case "lease":
		if rev <= f.lease.rev {
			return
		}
		if del {
			f.lease = leaseSeen{rev: rev, seen: now}
			return
		}
		var l leaseRecord
		if err := json.Unmarshal(e.Value(), &l); err != nil || !clusterName.MatchString(l.Holder) {
			if err == nil {
				err = fmt.Errorf("holder %.80q: not a host name", l.Holder)
			}
			cr.refuse(key, rev, err)
			f.lease = leaseSeen{bad: true, rev: rev, seen: now}
			return
		}
		f.lease = leaseSeen{holder: l.Holder, rev: rev, seen: now}
	case "figures":
		if del {
			delete(f.figs, host)
			return
		}
		fig, err := decodeFigures(e.Value(), host)
		if err != nil {
			cr.refuse(key, rev, err)
			delete(f.figs, host)
			return
		}
		if cr.h.loadedHandler(plugin) == nil {
			return // only a host running the plugin may decide for it
		}
		if _, known := f.figs[host]; !known && len(f.figs) >= maxClusterHosts {
			cr.refuse(key, rev, fmt.Errorf("more than %d hosts' figures", maxClusterHosts))
			return
		}
		f.figs[host] = figSeen{f: fig, seen: now}
	}
}

// pass plays the host's part in every plugin's rollout and returns when
// to come back.
func (cr *clusterRollouts) pass(now time.Time) time.Duration {
	next := min(cr.lease/5, time.Second)
	for _, f := range cr.plugins {
		next = min(next, cr.tend(f, now))
	}
	return max(next, 5*time.Millisecond)
}

// loadedHandler returns the binding of handler name, or nil.
func (h *Host) loadedHandler(name string) *binding {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.bindings[name]; b != nil && !b.policy && !h.closing {
		return b
	}
	return nil
}

const idle = time.Hour

// tend plays the host's part in f's rollout.
func (cr *clusterRollouts) tend(f *follow, now time.Time) time.Duration {
	rec := f.rec
	if rec == nil {
		return idle
	}
	if f.id != rec.ID {
		if f.ro != nil && !f.done {
			cr.endView(f, RolloutStopped, "replaced by rollout "+rec.ID)
		}
		*f = follow{name: f.name, rec: f.rec, rev: f.rev, corrupt: f.corrupt, lease: f.lease, figs: f.figs, id: rec.ID}
	}
	if f.done {
		return idle
	}
	b := cr.h.loadedHandler(f.name)
	if b == nil {
		select {
		case <-cr.h.stopping:
			return idle // shutdown tells of it
		default:
		}
		if f.ro != nil {
			cr.endView(f, RolloutStopped, "the plugin is not loaded on this host")
		}
		return idle
	}
	if rec.State != RolloutRunning {
		if f.joining {
			if rec.State != RolloutPromoted {
				// Nothing to join any more: a fetch of a module the
				// decider deletes now would wait for chunks that are gone.
				f.cancelJoin()
			}
			return idle // the join's result comes back first
		}
		if f.ro == nil {
			f.ro = cr.existingView(f.name, rec.ID)
		}
		switch {
		case f.ro != nil:
			cr.finish(f, b)
		case rec.State == RolloutPromoted:
			cr.catchUp(rec, b)
		}
		f.done = true
		return idle
	}
	if f.ro == nil {
		f.ro = cr.view(f.name, rec)
	}
	if f.c == nil && f.refused == "" && !f.joining {
		f.joining = true
		var ctx context.Context
		ctx, f.cancelJoin = context.WithTimeout(cr.ctx, time.Minute)
		cr.h.deploy.wg.Add(1)
		go cr.join(ctx, rec, b)
	}
	if f.c != nil && f.refused == "" {
		if why := cr.check(f, b); why != "" {
			cr.refused(f, why)
		}
	}
	if f.c != nil && f.refused == "" && f.step != rec.Step {
		cr.applyStep(f, b)
	}
	{
		if !now.Before(f.nextFigures) {
			cr.publishFigures(f)
			f.nextFigures = now.Add(rec.Plan.Interval)
		}
	}
	cr.tendLease(f, now)
	if !now.Before(f.nextDecide) {
		if f.lease.holder == cr.id {
			cr.decide(f, now)
		} else {
			cr.tally(f, now) // for f.baseline, should this host decide later
		}
		f.nextDecide = now.Add(rec.Plan.Interval)
	}
	if f.rec.State != RolloutRunning {
		return 0 // decided: follow at once
	}
	return rec.Plan.Interval
}

// existingView returns plugin's view of rollout id, made by StartRollout,
// or nil.
func (cr *clusterRollouts) existingView(plugin, id string) *rollout {
	d := &cr.h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	if ro := d.rollouts[plugin]; ro != nil && ro.clusterID == id && ro.st.State == RolloutRunning {
		return ro
	}
	return nil
}

// view returns plugin's view of rec's rollout, made if need be: what
// Rollout, WaitRollout, Plugins and the metrics read.
func (cr *clusterRollouts) view(plugin string, rec *clusterRecord) *rollout {
	d := &cr.h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	if ro := d.rollouts[plugin]; ro != nil && ro.clusterID == rec.ID {
		return ro
	}
	ro := cr.newView(rec)
	if d.rollouts == nil {
		d.rollouts = map[string]*rollout{}
	}
	d.rollouts[plugin] = ro
	return ro
}

func (cr *clusterRollouts) newView(rec *clusterRecord) *rollout {
	// A stand-in names the candidate's version, which is all that
	// RemoveCandidate and Promote read of a view; the candidate itself is
	// the watch loop's (follow.c).
	ro := &rollout{h: cr.h, c: &candidate{version: rec.Version}, plan: rec.Plan, done: make(chan struct{}),
		clusterID: rec.ID, st: rec.status()}
	ro.st.Step, ro.st.Share = 0, 0
	return ro
}

// joinResult is what a join brings back to run's goroutine.
type joinResult struct {
	plugin, id string
	c          *candidate
	stable     *versionStats
	refused    string
}

// join makes this host's candidate of rec's rollout a canary with no
// share yet, fetching its module first if the host lacks it, and warms
// it. It runs on a goroutine of its own, since fetching and compiling a
// module may take seconds, during which the host keeps renewing its
// leases and telling the decider it is joining.
func (cr *clusterRollouts) join(ctx context.Context, rec *clusterRecord, b *binding) {
	defer cr.h.deploy.wg.Done()
	res := joinResult{plugin: rec.Plugin, id: rec.ID}
	res.c, res.stable, res.refused = cr.joining(ctx, rec, b)
	select {
	case cr.joined <- res:
	case <-cr.ctx.Done():
	case <-cr.h.stopping:
	}
}

func (cr *clusterRollouts) joining(ctx context.Context, rec *clusterRecord, b *binding) (*candidate, *versionStats, string) {
	h, name := cr.h, rec.Plugin
	if v := b.snap.Load().version; v != rec.Stable {
		return nil, nil, fmt.Sprintf("this host's stable version is %s, the rollout's %s", v, rec.Stable)
	}
	c := b.cands.Load().find(rec.Version)
	if c == nil {
		// A fetch has its own bound, well within the join's: one that
		// stalls is refused, and the decider rolls back, in bounded time.
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		wasm, err := cr.fetch(fctx, rec)
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil, nil, "the rollout ended before this host joined it"
		}
		if err != nil {
			h.log.Error("cluster rollout: candidate module refused", "plugin", name, "version", rec.Version, "error", err)
			return nil, nil, err.Error()
		}
		if _, err := h.AddCandidate(ctx, name, Candidate{Wasm: wasm, Config: rec.Config}); err != nil {
			return nil, nil, "adding the candidate: " + err.Error()
		}
		if c = b.cands.Load().find(rec.Version); c == nil {
			return nil, nil, "the candidate was removed as it was added"
		}
		h.log.Info("cluster rollout: candidate fetched", "plugin", name, "version", rec.Version,
			"object", ModulesBucket+"/"+rec.Module, "bytes", len(wasm))
	}
	d := &h.deploy
	d.mu.Lock()
	cs := b.cands.Load()
	if cs.find(rec.Version) != c {
		d.mu.Unlock()
		return nil, nil, "the candidate was removed as it was added"
	}
	c.live.Store(true)
	cs = cs.with(func(cs *candidateSet) {
		cs.shadows = remove(cs.shadows, c)
		cs.canary, cs.share = c, 0
		h.keepStableStats(b, cs)
	})
	b.cands.Store(cs)
	d.mu.Unlock()
	// As on one host: its instances are made before it takes traffic.
	inUse, idleN, _ := b.snap.Load().plugin.PoolStats()
	if err := c.p.Warm(ctx, inUse+idleN); err != nil {
		return c, cs.stable, "its instances could not start: " + err.Error()
	}
	return c, cs.stable, ""
}

// catchUp brings this host up to rec's promotion, which it had no part in
// (it started, or loaded the plugin, after the rollout ended), when it
// runs the version the rollout replaced, b's stable: the module the
// record names is fetched and checked as a join does, and applied as a
// promotion is, with the record's config. A host running another version
// keeps it: its operator chose it after the rollout, or it never ran the
// rollout's stable. Each promotion is caught up with once, by a goroutine
// of its own, so that the fetch and the compilation do not hold up the
// host's part in other rollouts.
func (cr *clusterRollouts) catchUp(rec *clusterRecord, b *binding) {
	h := cr.h
	if v := b.snap.Load().version; v != rec.Stable {
		if v != rec.Version {
			h.log.Info("cluster rollout: keeping this host's version, not the one promoted across the cluster",
				"plugin", rec.Plugin, "version", v, "promoted", rec.Version, "replacing", rec.Stable)
		}
		return
	}
	h.deploy.wg.Add(1)
	go func() {
		defer h.deploy.wg.Done()
		ctx, cancel := context.WithTimeout(cr.ctx, time.Minute)
		defer cancel()
		fctx, fcancel := context.WithTimeout(ctx, fetchTimeout)
		wasm, err := cr.fetch(fctx, rec)
		fcancel()
		if err != nil {
			h.log.Warn("cluster rollout: cannot catch up with a promotion; keeping this host's version",
				"plugin", rec.Plugin, "version", rec.Stable, "promoted", rec.Version, "error", err)
			return
		}
		snap := b.snap.Load()
		if snap.version != rec.Stable {
			return // reloaded meanwhile: what was loaded wins
		}
		spec := snap.spec
		spec.Path, spec.Wasm = "", wasm
		if rec.Config != nil {
			spec.Config = rec.Config
		}
		if _, err := h.Apply(ctx, Change{Load: []Spec{spec}}); err != nil {
			h.log.Error("cluster rollout: catching up with a promotion failed; keeping this host's version",
				"plugin", rec.Plugin, "version", rec.Stable, "promoted", rec.Version, "error", err)
			return
		}
		h.log.Info("cluster rollout: caught up with a promotion", "plugin", rec.Plugin, "version", rec.Version,
			"replaced", rec.Stable, "promoted_at", rec.Ended, "decided_by", rec.Decider)
	}()
}

// joinedAs takes in a join's result.
func (cr *clusterRollouts) joinedAs(r joinResult) {
	f := cr.plugins[r.plugin]
	if f == nil || f.id != r.id || !f.joining {
		if r.c != nil {
			cr.h.dropCandidate(r.c.b, r.c.version) // a rollout gone meanwhile
		}
		return
	}
	f.joining = false
	f.cancelJoin()
	if r.c != nil {
		f.c, f.stable = r.c, r.stable
	}
	if r.refused != "" && f.rec.State == RolloutRunning {
		cr.refused(f, r.refused)
	}
}

// fetch reads rec's module from ModulesBucket and checks it: no larger
// than MaxClusterModule, of the size and SHA-256 the record names.
func (cr *clusterRollouts) fetch(ctx context.Context, rec *clusterRecord) ([]byte, error) {
	name := ModulesBucket + "/" + rec.Module
	info, err := cr.obj.GetInfo(ctx, rec.Module)
	if err != nil {
		return nil, fmt.Errorf("module object %s: %w", name, err)
	}
	if info.Size > MaxClusterModule || int64(info.Size) != rec.Size {
		return nil, fmt.Errorf("module object %s is %d bytes, the rollout says %d (at most %d, MaxClusterModule)",
			name, info.Size, rec.Size, MaxClusterModule)
	}
	r, err := cr.obj.Get(ctx, rec.Module)
	if err != nil {
		return nil, fmt.Errorf("module object %s: %w", name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, MaxClusterModule+1))
	if err != nil {
		return nil, fmt.Errorf("module object %s: %w", name, err)
	}
	if int64(len(data)) != rec.Size {
		return nil, fmt.Errorf("module object %s: read %d bytes, the rollout says %d", name, len(data), rec.Size)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != rec.Module {
		return nil, fmt.Errorf("module object %s: its SHA-256 is %s, not the one it is named by: refused (changed after it was stored?)", name, got)
	}
	return data, nil
}

// check says why this host can no longer follow f's rollout, if it cannot.
func (cr *clusterRollouts) check(f *follow, b *binding) string {
	if v := b.snap.Load().version; v != f.rec.Stable {
		return fmt.Sprintf("the stable version changed from %s to %s on this host during the rollout", f.rec.Stable, v)
	}
	if cs := b.cands.Load(); cs == nil || cs.canary != f.c {
		return "the candidate was removed on this host"
	}
	return ""
}

// refused records why this host cannot follow f's rollout: its figures
// say so, and the decider rolls the rollout back. Its canary, if any,
// gets no more traffic.
func (cr *clusterRollouts) refused(f *follow, why string) {
	if len(why) > maxRefusal {
		why = why[:maxRefusal]
	}
	f.refused = why
	f.nextFigures = time.Time{}
	if f.c != nil {
		cr.setShare(f.c.b, f.c, 0)
	}
	cr.h.log.Warn("cluster rollout: this host cannot follow it", "plugin", f.name, "version", f.rec.Version, "reason", why)
	cr.h.deploy.mu.Lock()
	f.ro.st.Reason = "this host cannot follow: " + why
	cr.h.deploy.mu.Unlock()
}

func (cr *clusterRollouts) setShare(b *binding, c *candidate, share float64) *candidateSet {
	d := &cr.h.deploy
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := b.cands.Load().with(func(cs *candidateSet) {
		if cs.canary == c {
			cs.share = uint32(share*shareScale + 0.5)
		}
	})
	b.cands.Store(cs)
	return cs
}

// applyStep gives the canary the record's share and starts this host's
// window.
func (cr *clusterRollouts) applyStep(f *follow, b *binding) {
	rec := f.rec
	cs := cr.setShare(b, f.c, rec.Share)
	f.stable = cs.stable
	f.startC, f.startS = f.c.stats.read(), f.stable.read()
	decision := "step"
	if f.step == 0 && rec.Step == 1 {
		decision = "started"
	}
	f.step = rec.Step
	f.nextFigures = time.Time{}
	d := &cr.h.deploy
	d.mu.Lock()
	f.ro.st.Step, f.ro.st.Share, f.ro.st.StepStarted = rec.Step, rec.Share, rec.StepStarted
	f.ro.st.Canary, f.ro.st.StableFigures, f.ro.st.Reason = Figures{}, Figures{}, ""
	d.mu.Unlock()
	cr.note(f, decision, "")
}

// publishFigures writes this host's figures for the step.
func (cr *clusterRollouts) publishFigures(f *follow) {
	hf := hostFigures{Host: cr.id, Rollout: f.rec.ID, Step: f.rec.Step, Refused: f.refused, Joining: f.c == nil && f.refused == ""}
	if f.c != nil && f.refused == "" && f.step == f.rec.Step {
		cw, sw := f.c.stats.read().since(f.startC), f.stable.read().since(f.startS)
		hf.Canary, hf.Stable = windowOf(cw), windowOf(sw)
		if f.lease.holder != cr.id {
			d := &cr.h.deploy
			d.mu.Lock()
			f.ro.st.Canary, f.ro.st.StableFigures = figuresOf(cw), figuresOf(sw)
			d.mu.Unlock()
		}
	}
	data, err := json.Marshal(hf)
	if err == nil {
		ctx, cancel := context.WithTimeout(cr.ctx, time.Second)
		_, err = cr.kv.Put(ctx, figuresKey(f.name, cr.id), data)
		cancel()
	}
	if err != nil {
		cr.h.log.Debug("cluster rollout: figures not published", "plugin", f.name, "error", err)
	}
}

// tendLease renews this host's lease on f's rollout, or takes the lease
// when no host holds it: none was taken, the holder gave it up, it cannot
// be read, or it went unrenewed for the lease's duration.
func (cr *clusterRollouts) tendLease(f *follow, now time.Time) {
	l := f.lease
	val, _ := json.Marshal(leaseRecord{Holder: cr.id, Rollout: f.rec.ID, Renewed: now})
	ctx, cancel := context.WithTimeout(cr.ctx, time.Second)
	defer cancel()
	key := leaseKey(f.name)
	switch {
	case l.holder == cr.id:
		if now.Sub(f.renewed) < cr.lease/3 {
			return
		}
		rev, err := cr.kv.Update(ctx, key, val, l.rev)
		if err != nil {
			cr.h.log.Warn("cluster rollout: lease lost", "plugin", f.name, "host_id", cr.id, "error", err)
			f.lease = leaseSeen{bad: true, rev: l.rev, seen: now} // its holder unknown until the watch says
			return
		}
		f.lease, f.renewed = leaseSeen{holder: cr.id, rev: rev, seen: now}, now
		cr.setDecider(f, cr.id)
	case l.holder == "" && !l.bad, l.bad, now.Sub(l.seen) > cr.lease:
		var rev uint64
		var err error
		if l.rev == 0 {
			rev, err = cr.kv.Create(ctx, key, val)
		} else {
			rev, err = cr.kv.Update(ctx, key, val, l.rev)
		}
		if err != nil {
			return // another host was quicker; the watch says which
		}
		kv := []any{"plugin", f.name, "version", f.rec.Version, "host_id", cr.id, "step", f.rec.Step}
		if l.holder != "" || l.bad {
			kv = append(kv, "previous", l.holder, "unrenewed_for", now.Sub(l.seen).Round(time.Millisecond))
		}
		cr.h.log.Info("cluster rollout: deciding", kv...)
		f.lease, f.renewed, f.nextDecide = leaseSeen{holder: cr.id, rev: rev, seen: now}, now, now
		cr.setDecider(f, cr.id)
	default:
		cr.setDecider(f, l.holder)
	}
}

func (cr *clusterRollouts) setDecider(f *follow, host string) {
	d := &cr.h.deploy
	d.mu.Lock()
	f.ro.st.Decider = host
	d.mu.Unlock()
}

// decide is the lease holder's: it sums the hosts' figures for the step
// and writes what follows, if anything does.
func (cr *clusterRollouts) decide(f *follow, now time.Time) {
	rec := f.rec
	if f.corrupt != "" {
		cr.write(f, rec.ended(RolloutRolledBack, f.corrupt, cr.id), "rolled_back")
		return
	}
	plan := rec.Plan
	t := cr.tally(f, now)
	if t.refused != "" {
		cr.write(f, rec.ended(RolloutRolledBack, fmt.Sprintf("host %s cannot follow: %s", t.refusedBy, t.refused), cr.id), "rolled_back")
		return
	}
	cw, sw, hosts, behind, ref := t.canary, t.stable, t.hosts, t.behind, f.baseline
	d := &cr.h.deploy
	d.mu.Lock()
	f.ro.st.Canary, f.ro.st.StableFigures = figuresOf(cw), figuresOf(sw)
	switch {
	case behind > 0:
		f.ro.st.Reason = fmt.Sprintf("waiting for %d hosts to join the step", behind)
	case cw.msgs < uint64(plan.MinMessages):
		f.ro.st.Reason = fmt.Sprintf("waiting for the canary to handle %d messages in this step (%d so far on %d hosts)", plan.MinMessages, cw.msgs, hosts)
	default:
		f.ro.st.Reason = ""
	}
	d.mu.Unlock()
	if why := plan.breach(cw, ref); why != "" {
		cr.write(f, rec.ended(RolloutRolledBack, fmt.Sprintf("%s, on %d hosts", why, hosts), cr.id), "rolled_back")
		return
	}
	if now.Sub(rec.StepStarted) < plan.StepDuration || cw.msgs < uint64(plan.MinMessages) || behind > 0 {
		return
	}
	if rec.Step == len(plan.Steps) {
		cr.write(f, rec.ended(RolloutPromoted, "every step passed", cr.id), "promoted")
		return
	}
	next := *rec
	next.Step++
	next.Share, next.StepStarted, next.Decider, next.Reason = plan.Steps[next.Step-1], now, cr.id, ""
	cr.write(f, &next, "step")
}

// tally is the sum of the figures the hosts published for a rollout's
// step.
type tally struct {
	canary, stable statsReading
	hosts          int // whose figures are in the sums
	behind         int // still joining the step
	// refusedBy is a host that cannot follow the rollout, and refused why.
	refusedBy, refused string
}

// tally sums the figures of f's step that are fresh, and keeps in
// f.baseline the stable's last sum over enough messages (MinMessages) to
// compare the canary with: at a share of 1 the stable gets none. Every
// host with the plugin tallies each Interval, not only the decider, so
// that one taking the lease over in the last step has that sum too.
func (cr *clusterRollouts) tally(f *follow, now time.Time) tally {
	rec := f.rec
	stale := max(5*rec.Plan.Interval, 2*cr.lease)
	var t tally
	for host, fs := range f.figs {
		switch {
		case fs.f.Rollout != rec.ID || now.Sub(fs.seen) > stale:
		case fs.f.Refused != "":
			t.refusedBy, t.refused = host, fs.f.Refused
		case fs.f.Joining || fs.f.Step != rec.Step:
			t.behind++
		default:
			t.canary, t.stable = t.canary.plus(fs.f.Canary.reading()), t.stable.plus(fs.f.Stable.reading())
			t.hosts++
		}
	}
	if t.stable.msgs >= uint64(rec.Plan.MinMessages) {
		s := t.stable
		f.baseline = &s
	}
	return t
}

// write stores next over f's record by compare-and-set, and tells of the
// decision on the deploy subject. The watch brings it back to every host,
// this one included, which follows it.
func (cr *clusterRollouts) write(f *follow, next *clusterRecord, decision string) {
	data, err := json.Marshal(next)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(cr.ctx, 2*time.Second)
	defer cancel()
	rev, err := cr.kv.Update(ctx, planKey(f.name), data, f.rev)
	if err != nil {
		cr.h.log.Warn("cluster rollout: decision not written", "plugin", f.name, "decision", decision, "error", err)
		return
	}
	f.rec, f.rev, f.corrupt = next, rev, ""
	cr.h.publishDeployEvent(next.status(), decision)
}

// finish follows the end of f's rollout on this host: promotion through
// Apply, or the candidate dropped.
func (cr *clusterRollouts) finish(f *follow, b *binding) {
	h, rec := cr.h, f.rec
	why := rec.Reason
	switch {
	case f.c == nil:
	case rec.State == RolloutPromoted:
		ctx, cancel := context.WithTimeout(cr.ctx, 2*time.Minute)
		err := h.promote(ctx, b, f.c)
		cancel()
		if err != nil {
			h.log.Error("cluster rollout: promotion failed on this host", "plugin", f.name, "version", rec.Version, "error", err)
			h.dropCandidate(b, rec.Version)
			why += "; on this host the promotion failed: " + err.Error()
		}
	default:
		h.dropCandidate(b, rec.Version)
	}
	ctx, cancel := context.WithTimeout(cr.ctx, 2*time.Second)
	defer cancel()
	if f.lease.holder == cr.id {
		_ = cr.kv.Delete(ctx, leaseKey(f.name), jetstream.LastRevision(f.lease.rev))
		f.lease.holder = ""
		if rec.State != RolloutPromoted {
			// The module stays for hosts still fetching it no longer:
			// the rollout is over. A promoted module stays for hosts
			// that start later (see catchUp), until the plugin's next
			// rollout replaces the record.
			_ = cr.obj.Delete(ctx, rec.Module)
		}
	}
	if f.c != nil || f.refused != "" {
		_ = cr.kv.Delete(ctx, figuresKey(f.name, cr.id))
	}
	cr.endView(f, rec.State, why)
}

// endView ends this host's view of f's rollout and tells of it.
func (cr *clusterRollouts) endView(f *follow, state RolloutState, why string) {
	d := &cr.h.deploy
	d.mu.Lock()
	ro := f.ro
	if ro.st.State != RolloutRunning {
		d.mu.Unlock()
		return
	}
	ro.st.State, ro.st.Reason, ro.st.Ended = state, why, time.Now()
	if state != RolloutPromoted {
		ro.st.Share = 0
	}
	if f.rec != nil && state != RolloutStopped {
		ro.st.Decider, ro.st.Step = f.rec.Decider, f.rec.Step
	}
	d.mu.Unlock()
	close(ro.done)
	f.done = true
	cr.note(f, string(state), why)
}

// note tells of a decision this host follows: a log line, a count in
// trellis_rollout_decisions_total and a host event. The DeployEvent is
// published once, by the host that decided.
func (cr *clusterRollouts) note(f *follow, decision, why string) {
	extra := []any{"host_id", cr.id}
	if f.rec != nil {
		extra = append(extra, "decided_by", f.rec.Decider)
	}
	cr.h.tellDecision(f.ro, decision, why, " (cluster)", extra...)
}

// publishDeployEvent publishes a DeployEvent on DeploySubjectPrefix + plugin.
func (h *Host) publishDeployEvent(st RolloutStatus, decision string) {
	data, err := json.Marshal(DeployEvent{Time: time.Now(), Decision: decision, RolloutStatus: st})
	if err == nil {
		err = h.bus.Conn().Publish(DeploySubjectPrefix+st.Plugin, data)
	}
	if err != nil {
		h.log.Warn("rollout event not published", "plugin", st.Plugin, "error", err)
	}
}

// shutdown is run's last act when the host closes: it gives up its leases,
// so that another host decides at once, and deletes its figures.
func (cr *clusterRollouts) shutdown() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cr.ctx), 2*time.Second)
	defer cancel()
	for _, f := range cr.plugins {
		if f.lease.holder == cr.id && f.rec != nil && f.rec.State == RolloutRunning {
			if err := cr.kv.Delete(ctx, leaseKey(f.name), jetstream.LastRevision(f.lease.rev)); err != nil {
				cr.h.log.Warn("cluster rollout: lease not given up; another host takes it once it lapses",
					"plugin", f.name, "error", err)
			} else {
				cr.h.log.Info("cluster rollout: lease given up", "plugin", f.name, "host_id", cr.id)
			}
		}
		if f.rec == nil || f.done || f.ro == nil {
			continue
		}
		if f.c != nil || f.refused != "" {
			_ = cr.kv.Delete(ctx, figuresKey(f.name, cr.id))
		}
		cr.endView(f, RolloutStopped, "the host is closing; the other hosts carry on")
	}
}

// start is StartRollout across the cluster: it stores the candidate's
// module and the plan, and takes the lease, so that this host decides
// first. Every host, this one included, follows from the watch.
func (cr *clusterRollouts) start(name, version string, plan Rollout) error {
	if err := cr.opened(); err != nil {
		return err
	}
	if !clusterName.MatchString(name) {
		return fmt.Errorf("plugin %q: a rollout across the cluster needs a name of %s", name, clusterName)
	}
	h := cr.h
	b, err := h.handlerBinding(name)
	if err != nil {
		return err
	}
	c := b.cands.Load().find(version)
	if c == nil {
		return fmt.Errorf("plugin %q: version %s: %w; add it first", name, version, ErrNoCandidate)
	}
	if len(c.wasm) > MaxClusterModule {
		return fmt.Errorf("plugin %q: candidate of %d bytes, more than %d (MaxClusterModule) to carry across the cluster", name, len(c.wasm), MaxClusterModule)
	}
	ctx, cancel := context.WithTimeout(cr.ctx, time.Minute)
	defer cancel()
	var rev uint64
	var old *clusterRecord // the record this rollout's replaces, if valid
	switch e, err := cr.kv.Get(ctx, planKey(name)); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("plugin %q: rollout record: %w", name, err)
	default:
		rev = e.Revision()
		old, _ = decodeRecord(e.Value(), name)
		if old != nil && old.State == RolloutRunning {
			return fmt.Errorf("plugin %q: the rollout of version %s is running; abort it first", name, old.Version)
		}
	}
	sum := sha256.Sum256(c.wasm)
	module := hex.EncodeToString(sum[:])
	digest := "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
	if info, err := cr.obj.GetInfo(ctx, module); err != nil || info.Digest != digest || info.Size != uint64(len(c.wasm)) {
		if _, err := cr.obj.PutBytes(ctx, module, c.wasm); err != nil {
			return fmt.Errorf("plugin %q: storing the candidate in %s: %w", name, ModulesBucket, err)
		}
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	now := time.Now()
	rec := &clusterRecord{ID: hex.EncodeToString(id[:]), Plugin: name, Version: version, Module: module, Size: int64(len(c.wasm)),
		Config: c.spec.Config, Stable: b.snap.Load().version, State: RolloutRunning, Step: 1, Share: plan.Steps[0],
		Started: now, StepStarted: now, Plan: plan, Decider: cr.id}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if len(data) > MaxRolloutRecord {
		return fmt.Errorf("plugin %q: rollout record of %d bytes, more than %d (MaxRolloutRecord): a smaller config", name, len(data), MaxRolloutRecord)
	}
	// The view first, so that WaitRollout finds it as soon as this returns.
	d := &h.deploy
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("host is closing")
	}
	prev := d.rollouts[name]
	if prev != nil && prev.st.State == RolloutRunning {
		d.mu.Unlock()
		return fmt.Errorf("plugin %q: the rollout of version %s is running; abort it first", name, prev.st.Version)
	}
	if d.rollouts == nil {
		d.rollouts = map[string]*rollout{}
	}
	d.rollouts[name] = cr.newView(rec)
	d.mu.Unlock()
	// This host decides first, unless a lease is still held: the lease is
	// taken before the record is written, which other hosts would
	// otherwise see without a lease and race for it.
	lease, _ := json.Marshal(leaseRecord{Holder: cr.id, Rollout: rec.ID, Renewed: now})
	leaseRev, err := cr.kv.Create(ctx, leaseKey(name), lease)
	if err != nil {
		h.log.Debug("cluster rollout: lease held by another host", "plugin", name, "error", err)
	}
	if rev == 0 {
		_, err = cr.kv.Create(ctx, planKey(name), data)
	} else {
		_, err = cr.kv.Update(ctx, planKey(name), data, rev)
	}
	if err != nil {
		if leaseRev != 0 {
			_ = cr.kv.Delete(ctx, leaseKey(name), jetstream.LastRevision(leaseRev))
		}
		d.mu.Lock()
		if prev == nil {
			delete(d.rollouts, name)
		} else {
			d.rollouts[name] = prev
		}
		d.mu.Unlock()
		return fmt.Errorf("plugin %q: writing the rollout record: %w", name, err)
	}
	if old != nil && old.State == RolloutPromoted && old.Module != module {
		// Kept for late hosts until now: the new record names another.
		_ = cr.obj.Delete(ctx, old.Module)
	}
	h.publishDeployEvent(rec.status(), "started")
	return nil
}

// end is AbortRollout and a Promote of the canary across the cluster: it
// writes the rollout's end over its record, which every host follows,
// and waits for this host to have followed it.
func (cr *clusterRollouts) end(ctx context.Context, name, version string, state RolloutState, why string) error {
	if err := cr.opened(); err != nil {
		return err
	}
	for range 8 {
		e, err := cr.kv.Get(ctx, planKey(name))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("plugin %q: no rollout running", name)
		}
		if err != nil {
			return fmt.Errorf("plugin %q: rollout record: %w", name, err)
		}
		rec, err := decodeRecord(e.Value(), name)
		if err != nil {
			return fmt.Errorf("plugin %q: the rollout record is refused (%v): its decider rolls it back", name, err)
		}
		if rec.State != RolloutRunning {
			return fmt.Errorf("plugin %q: no rollout running", name)
		}
		if version != "" && rec.Version != version {
			return fmt.Errorf("plugin %q: the rollout of version %s is running; abort it first", name, rec.Version)
		}
		next := rec.ended(state, why, cr.id)
		data, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if _, err := cr.kv.Update(ctx, planKey(name), data, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // the decider wrote meanwhile: read it again
			}
			return fmt.Errorf("plugin %q: writing the rollout record: %w", name, err)
		}
		decision := "rolled_back"
		if state == RolloutPromoted {
			decision = "promoted"
		}
		cr.h.publishDeployEvent(next.status(), decision)
		if ro := cr.existingView(name, rec.ID); ro != nil {
			select {
			case <-ro.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	return fmt.Errorf("plugin %q: the rollout record kept changing", name)
}
