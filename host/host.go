package host

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tetratelabs/wazero"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/kv"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/slots"
)

// Defaults for Options fields left zero.
const (
	// DefaultMaxInFlight caps plugin calls running at once across the host.
	DefaultMaxInFlight = 1024
	// DefaultQueueDepth is how many messages per plugin may wait for an
	// instance, each up to its deadline, before the subscription stops taking
	// more (and NATS buffers them).
	DefaultQueueDepth = 256
	// DefaultTimeout is Spec.Timeout when zero.
	DefaultTimeout = plugin.DefaultTimeout
	// DefaultInitTimeout is Spec.InitTimeout when zero.
	DefaultInitTimeout = plugin.DefaultInitTimeout
	// DefaultMemoryLimit is Spec.MemoryLimit when zero, in bytes.
	DefaultMemoryLimit = plugin.DefaultMemoryLimit
	// KVBucket is the JetStream key-value bucket plugins' keys live in,
	// each under its plugin's namespace (Spec.KVNamespace) and a dot:
	// `nats kv ls trellis` shows them.
	KVBucket = kv.DefaultBucket
)

// Options configure a Host.
type Options struct {
	// Bus says which NATS to use; the zero value embeds one.
	Bus bus.Options
	// DataDir holds the compilation cache (DataDir/cache) and, unless
	// Bus.StoreDir says otherwise, JetStream's files (DataDir/jetstream).
	// Empty means no cache on disk and a temporary JetStream directory.
	DataDir string
	// CacheDir, if set, holds the compilation cache instead of DataDir/cache.
	// Compiled code is keyed by content and wazero version, so hosts may share one.
	CacheDir string
	// Logger is the root logger; each plugin gets a sub-logger named after
	// it (default: discard).
	Logger hclog.Logger
	// MaxInFlight caps plugin calls running at once across all plugins
	// (default DefaultMaxInFlight). A call that cannot start before its
	// deadline is answered "busy" (503).
	MaxInFlight int
	// QueueDepth is DefaultQueueDepth when zero; see there.
	QueueDepth int
	// HTTP configures the HTTP ingress; without a Listen address there is none.
	HTTP HTTPOptions
	// ExclusiveSubjects makes Load refuse a handler whose subjects overlap
	// those of another loaded handler, unless both specs are Shared: two
	// handlers on one subject both get each message, and a requester sees
	// whichever answers first. trellis run sets it; trellis dev does not,
	// so that the examples' plugins in four languages can share a subject.
	ExclusiveSubjects bool
	// TrustedKeys are the Ed25519 keys whose signatures RequireSigned
	// accepts (see package sign).
	TrustedKeys []ed25519.PublicKey
	// HoldTraffic keeps the HTTP ingress from serving until MarkReady is
	// called: until then every request is answered 503 with Retry-After,
	// so that a client of a host still loading its plugins is told to come
	// back rather than refused by a policy not yet loaded. trellis run and
	// trellis dev set it and mark the host ready once the plugins they
	// start with are loaded.
	HoldTraffic bool
	// RequireSigned makes Load refuse, before compiling it, a module that
	// does not carry a valid signature by one of TrustedKeys. Without it,
	// signatures are not looked at. New fails if it is set with no key.
	RequireSigned bool
	// Rollouts says who carries out a rollout (StartRollout): RolloutsLocal
	// (the default), the host it is started on, alone; or RolloutsCluster,
	// every host on the bus running the plugin, with the plan in JetStream
	// KV and one host deciding at a time (see rollout_cluster.go and
	// docs/deploy.md). Every host running the plugin should say the same.
	Rollouts RolloutMode
	// RolloutLease is how long a decider's lease lasts unrenewed before
	// another host takes it, with RolloutsCluster (default
	// DefaultRolloutLease, from MinRolloutLease to MaxRolloutLease).
	RolloutLease time.Duration
	// DisableMetrics turns the host's Prometheus metrics off (Metrics
	// returns nil): what a message's path does for them is then a nil
	// check per hook. They are on by default; BENCHMARKS.md has their cost.
	DisableMetrics bool
	// TracerProvider, if set, traces every message's hops with
	// OpenTelemetry and carries W3C trace context in NATS and HTTP headers
	// (see trace.go; package tracing makes one from OTEL_* variables or
	// HCL). Nil, or OpenTelemetry's no-op provider, traces nothing at no
	// cost per message. The host does not shut it down. Under a span it
	// made that is not sampled, it makes no child span (their sampler
	// would drop them too, if it follows the parent or the trace ID as
	// every sampler package tracing makes does).
	TracerProvider trace.TracerProvider
}

// Spec says how to run one plugin.
type Spec struct {
	// Name identifies the plugin; it is also its default queue group.
	Name string
	// Path is the .wasm file to load, unless Wasm is set.
	Path string
	// Wasm is the module itself; it takes precedence over Path.
	Wasm []byte
	// Subjects, if set, replace the subjects the plugin declares.
	Subjects []string
	// Queue is the queue group for all subjects (default: Name). Hosts that
	// run the same plugin share its messages through the queue group.
	Queue string
	// Config is what the plugin reads with the config host function.
	Config map[string]string
	// PoolSize caps the plugin's instances alive at once (default: two per
	// CPU, at least four).
	PoolSize int
	// Timeout is the wall-clock deadline of one message's handling, counted
	// from its arrival, including the wait for a free instance (default
	// DefaultTimeout). A negative Timeout turns deadlines off: only for trusted plugins,
	// since a guest that never returns then holds its instance for ever.
	Timeout time.Duration
	// InitTimeout bounds the first instance's start (_initialize and
	// trellis_init) when the plugin loads (default DefaultInitTimeout);
	// past it the version is refused.
	InitTimeout time.Duration
	// MemoryLimit caps each instance's linear memory in bytes, rounded down
	// to 64 KiB pages (default DefaultMemoryLimit).
	MemoryLimit uint64
	// Grants is what the plugin may do beyond replying. When
	// Grants.Subscribe is nil, Subjects is the subscription grant: a plugin
	// with neither may not subscribe to anything.
	Grants Grants
	// Policy loads the module as a traffic policy: it subscribes to nothing
	// and runs where handlers or HTTP routes name it in their Policies.
	Policy bool
	// Policies run, in order, before this handler's every message.
	Policies []PolicyRef
	// KVNamespace is the plugin's key-value namespace (default: Name).
	// Plugins given the same namespace share their keys.
	KVNamespace string
	// Resilience sets this handler's retries, circuit breaker, fallback and
	// dead-letter subject.
	Resilience Resilience
	// Shared lets this handler serve subjects another Shared handler serves
	// too, where Options.ExclusiveSubjects would refuse it.
	Shared bool
	// Durable, if set, makes the handler consume its subjects from a
	// JetStream stream: events are stored and delivered until handled.
	Durable *Durable
	// KeySources are key sets the host fetches and keeps fresh in Config
	// (see KeySource, keysets.go).
	KeySources []KeySource
	// Record, if set, records the handler's messages on chosen subjects
	// for replay (see Record, record.go).
	Record *Record
	// keyRefresh marks the load a changed key set makes.
	keyRefresh bool
}

// Grants is what the operator allows a plugin beyond replying to the
// messages it handles: subjects it may publish to, request and subscribe to
// (NATS wildcards allowed), environment variables and directories it sees
// through WASI. The zero value grants nothing.
type Grants = plugin.Grants

// Dir is a host directory mounted into a plugin's WASI file system.
type Dir = plugin.Dir

// PolicyRef names a policy in a chain.
type PolicyRef struct {
	Name string
	// FailOpen lets messages through when the policy faults (traps, times
	// out) or is not loaded. By default such a message is rejected (503).
	FailOpen bool
}

// Resilience is the fault tolerance the host applies to a handler. A
// failure is a fault (trap, deadline, busy) or a status of 500 or more;
// statuses below 500 are answers, not failures.
type Resilience struct {
	// Idempotent marks the handler safe to call again with the same message.
	// Nothing is retried unless it is set.
	Idempotent bool
	// Retries is how many more times a failed call is tried. Every attempt
	// and every wait between them falls within the message's deadline
	// (Spec.Timeout from its arrival): a retry whose backoff would end past
	// it is not made, so a failure by deadline is not retried, and a
	// backoff ends at once when the host begins to close.
	Retries int
	// Backoff is the first retry's wait ceiling, doubling per retry up to
	// MaxBackoff, with full jitter (defaults 50ms and 2s).
	Backoff, MaxBackoff time.Duration
	// BreakerFailures opens the circuit breaker after that many consecutive
	// failures (0: no breaker); BreakerCooldown is how long it stays open
	// before one trial call (default 10s). While open, requests get 503 at once.
	BreakerFailures int
	BreakerCooldown time.Duration
	// Fallback, if not nil, answers a request whose handling failed
	// (retries spent or breaker open), with header Trellis-Fallback: true.
	Fallback []byte
	// DeadLetter, if set, receives each event (a message without a reply
	// subject) whose handling failed every attempt, with the error in
	// headers Trellis-Error, Trellis-Error-Code, Trellis-Attempts,
	// Trellis-Subject and Trellis-Plugin.
	DeadLetter string
}

// Host runs plugins on a bus. Its methods are safe for concurrent use.
type Host struct {
	opts     Options
	log      hclog.Logger
	bus      *bus.Bus
	cache    wazero.CompilationCache
	inflight *slots.Slots
	outbox   *natsOutbox
	js       jetstream.JetStream
	// storedSubjects are the durable handlers' stream subjects; see stored.
	storedSubjects atomic.Pointer[storedSubjects]
	kv             *kv.Store
	counters       Counters
	seal           identitySeal // see trusted.go
	keys           keySets      // see keysets.go
	metrics        *metrics.Set // nil when Options.DisableMetrics; see observe.go
	events         eventLog     // recent loads, reloads and faults; see observe.go
	svc            services     // the plugins as NATS services; see services.go
	deploy         deployments  // candidate versions and rollouts; see candidate.go
	rec            recording    // recording and replay; see record.go
	tracer         *tracer      // nil without Options.TracerProvider; see trace.go

	// cluster is nil unless Options.Rollouts is RolloutsCluster; see
	// rollout_cluster.go.
	cluster *clusterRollouts

	http     *http.Server
	httpAddr string
	httpOpts HTTPOptions
	httpMux  atomic.Pointer[http.ServeMux]

	// versions serializes loads of one module content; see lockVersion.
	versionsMu sync.Mutex
	versions   map[string]*versionLock

	// applyMu orders commits (see Apply); it is never taken on a
	// message's path.
	applyMu    sync.Mutex
	httpRoutes []HTTPRoute // as last applied; under applyMu
	// policies maps each policy's name to the version serving, published
	// with the bindings' snapshots; see servingPolicy.
	policies atomic.Pointer[map[string]*plugin.Plugin]

	ready     atomic.Bool  // see Options.HoldTraffic
	preparing preparations // plugins being prepared or refused; see Readiness

	mu       sync.Mutex // guards bindings and closing; not on a message's path
	bindings map[string]*binding
	closing  bool

	// stopping is closed when Close begins: a retry's backoff ends at once
	// and no retry starts, so that Close does not wait out a backoff.
	stopping chan struct{}
	// life is the context of what the host does on its own: serving a
	// message from the bus (whose deadline derives from it) and closing a
	// version swapped out. It ends when Close's context ends, or when
	// Close returns.
	life    context.Context
	endLife context.CancelFunc
	// retiring counts the goroutines closing versions swapped out and
	// plugins unloaded. Close waits for them before it closes the
	// compilation cache they use.
	retiring sync.WaitGroup
}

// New starts the bus and returns a host with no plugins.
func New(ctx context.Context, opts Options) (*Host, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = DefaultQueueDepth
	}
	if opts.RequireSigned && len(opts.TrustedKeys) == 0 {
		return nil, errors.New("signed plugins are required but no key is trusted: every plugin would be refused")
	}
	if err := opts.checkRolloutOptions(); err != nil {
		return nil, err
	}
	h := &Host{
		opts:     opts,
		log:      opts.Logger,
		inflight: slots.New(opts.MaxInFlight),
		bindings: map[string]*binding{},
		stopping: make(chan struct{}),
	}
	h.ready.Store(!opts.HoldTraffic)
	h.tracer = newTracer(opts.TracerProvider)
	// The host outlives New's context, which bounds only the start.
	h.life, h.endLife = context.WithCancel(context.WithoutCancel(ctx))
	cacheDir := opts.CacheDir
	if cacheDir == "" && opts.DataDir != "" {
		cacheDir = filepath.Join(opts.DataDir, "cache")
	}
	if opts.DataDir != "" && opts.Bus.StoreDir == "" && opts.Bus.URL == "" {
		opts.Bus.StoreDir = filepath.Join(opts.DataDir, "jetstream")
	}
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache in %s: %w", cacheDir, err)
		}
		h.cache = cache
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	if opts.Bus.Logger == nil {
		opts.Bus.Logger = h.log
	}
	b, err := bus.Start(ctx, opts.Bus)
	if err != nil {
		h.endLife()
		h.cache.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	h.bus = b
	h.outbox = &natsOutbox{nc: b.Conn(), h: h}
	if h.js, err = jetstream.New(b.Conn()); err != nil {
		h.endLife()
		b.Close()
		h.cache.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	h.kv = kv.New(b.Conn(), "", b.Replicas())
	h.startClusterRollouts()
	h.startMetrics()
	h.startServices()
	if err := h.startHTTP(opts.HTTP); err != nil {
		h.endLife()
		b.Close()
		h.cache.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return h, nil
}

// Conn returns the host's own NATS connection.
func (h *Host) Conn() *nats.Conn { return h.bus.Conn() }

// ClientURL is the URL NATS clients use to reach the host's bus.
func (h *Host) ClientURL() string { return h.bus.ClientURL() }

// Bus returns the host's bus.
func (h *Host) Bus() *bus.Bus { return h.bus }

// MarkReady makes a host started with Options.HoldTraffic take traffic.
func (h *Host) MarkReady() {
	if !h.ready.Swap(true) {
		h.log.Info("ready: taking traffic")
	}
}

// Ready reports whether the host takes traffic: always, unless it was
// started with Options.HoldTraffic and MarkReady has not been called.
func (h *Host) Ready() bool { return h.ready.Load() }

// Info describes a loaded plugin.
type Info struct {
	Name     string
	Version  string
	Subjects []string
	Queue    string
	// InUse and Idle count the plugin's instances; PoolSize is their cap.
	InUse, Idle, PoolSize int
	// Policy reports a plugin loaded as a policy.
	Policy bool
	// Language is the language the plugin was written in, as its module
	// says (abi.SectionLanguage), or "unknown".
	Language string
	// Denied counts calls refused for want of a grant.
	Denied int64
	// Policies are a handler's policies, in order.
	Policies []PolicyRef
	// Candidates are a handler's candidate versions (see AddCandidate),
	// and Rollout its rollout running or last ended (see StartRollout).
	Candidates []CandidateInfo
	Rollout    *RolloutStatus
	// Recording says the handler's traffic is being recorded (see
	// Spec.Record and SetRecording).
	Recording bool
}

// Plugins lists the loaded plugins, sorted by name.
func (h *Host) Plugins() []Info {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Info, 0, len(h.bindings))
	for _, b := range h.bindings {
		s := b.snap.Load()
		inUse, idle, max := s.plugin.PoolStats()
		out = append(out, Info{Name: b.name, Version: s.version, Subjects: append([]string(nil), s.subjects...),
			Queue: s.queue, InUse: inUse, Idle: idle, PoolSize: max, Policy: b.policy, Denied: s.plugin.Denied(), Language: s.plugin.Language(),
			Policies: append([]PolicyRef(nil), s.spec.Policies...), Candidates: b.candidateInfo(), Rollout: h.rolloutStatus(b.name),
			Recording: b.recording()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Load loads spec's plugin and starts serving its subjects: Apply with a
// Change of this one spec. If a plugin of that name is loaded, Load
// replaces it without losing a message: the new version is verified
// (Options.RequireSigned), compiled, checked and started first, and if any
// of that fails the old version keeps serving and Load returns the error.
// Loading the module and settings already serving changes nothing.
// Spec.Path must name a regular file (not a FIFO or a device); it is read
// whole and checked not to change while it is read.
func (h *Host) Load(ctx context.Context, spec Spec) error {
	_, err := h.Apply(ctx, Change{Load: []Spec{spec}})
	return err
}

// Unload stops serving a plugin: its subscriptions are drained, calls in
// flight finish, and its instances are closed. Handlers and HTTP routes
// that name it as a policy find it missing from then on (see
// PolicyRef.FailOpen).
func (h *Host) Unload(ctx context.Context, name string) error {
	_, err := h.Apply(ctx, Change{Unload: []string{name}})
	return err
}

// Close shuts the host down gracefully: it stops taking messages, lets
// in-flight calls finish (until ctx ends), closes every plugin and then the
// bus. Retries waiting for their backoff give up at once (the caller gets
// the last failure, or the fallback). When Close returns, every goroutine
// the host started has ended; if ctx ended first, calls still running are
// cut short by their contexts, which end with it, and end soon after.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil
	}
	h.closing = true
	close(h.stopping)
	h.mu.Unlock()
	h.closeKeys()
	h.stopDeployments()
	// If ctx ends before the old versions have drained, they are closed
	// without waiting any longer.
	stop := context.AfterFunc(ctx, h.endLife)
	defer stop()
	defer h.endLife()

	var errs []error
	// HTTP first: it stops accepting and waits for requests in flight, which
	// need the plugins and the bus.
	if err := h.stopHTTP(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http ingress: %w", err))
	}

	// An Apply committing now finishes first; any later one sees closing.
	h.applyMu.Lock()
	h.mu.Lock()
	bindings := make([]*binding, 0, len(h.bindings))
	for _, b := range h.bindings {
		bindings = append(bindings, b)
	}
	h.bindings = map[string]*binding{}
	h.mu.Unlock()
	h.applyMu.Unlock()

	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, b := range bindings {
		wg.Add(1)
		go func(b *binding) {
			defer wg.Done()
			if err := b.close(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("plugin %q: %w", b.name, err))
				mu.Unlock()
			}
		}(b)
	}
	wg.Wait()
	// Old versions share the compilation cache: it closes after them.
	h.retiring.Wait()
	h.deploy.wg.Wait()
	if err := h.bus.Close(); err != nil {
		errs = append(errs, err)
	}
	h.cache.Close(context.WithoutCancel(ctx))
	h.log.Info("host stopped")
	return errors.Join(errs...)
}

// Granted returns what the plugin is granted when it loads: Grants, with
// the subscription grant filled in when Grants.Subscribe is nil. When the
// spec names Subjects (a policy names none), those replace whatever the
// plugin subscribes to in trellis_init, so its subscribe calls are granted
// ">" (system subjects aside) to let its init succeed over subscriptions
// that are never made. Otherwise it may subscribe to nothing.
func (spec Spec) Granted() Grants {
	g := spec.Grants
	if g.Subscribe == nil && (len(spec.Subjects) > 0 || spec.Policy) {
		g.Subscribe = []string{">"}
	}
	return g
}

// Counters are totals since the host started, for tests and metrics.
type Counters struct {
	PolicyFailures  atomic.Int64 // policies that faulted or were missing
	PolicyRejects   atomic.Int64 // messages a policy rejected
	Retries         atomic.Int64 // backoffs begun before a handler call is tried again
	BreakerRejects  atomic.Int64 // requests refused while a breaker was open
	DeadLetters     atomic.Int64 // events sent to a dead-letter subject
	Fallbacks       atomic.Int64 // requests answered with a fallback
	HandlerFailures atomic.Int64 // handler calls that failed (after all retries)
	// Dropped counts messages refused where they arrived: a system subject
	// matched by a wildcard subscription, or a reply subject longer than
	// abi.MaxSubjectLen, to which the host could not safely answer.
	Dropped atomic.Int64
}

// Counters returns the host's counters.
func (h *Host) Counters() *Counters { return &h.counters }
