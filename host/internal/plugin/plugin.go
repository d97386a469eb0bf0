// Package plugin loads one version of a Trellis plugin (a Wasm module that
// implements ABI v1, see abi/ABI.md) and runs messages through it.
//
// Each loaded version owns a wazero runtime, so its memory cap, compiled code
// and instances are released together when it is closed. The module is
// compiled once; a bounded pool of instances serves calls, one call per
// instance at a time, because a wazero module instance is not safe for
// concurrent use. An instance that faults (trap, deadline, wild pointer,
// exit) is thrown away, never reused.
//
// The package knows nothing of NATS: what a plugin sends goes through the
// Outbox the caller supplies, after the host has checked the plugin's grants.
package plugin

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/interrupt"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/limits"
	"github.com/trellis-mesh/trellis/host/internal/pool"
	"github.com/trellis-mesh/trellis/host/internal/regfile"
)

// Defaults for Options fields left zero.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMemoryLimit = 128 << 20 // bytes per instance
	// DefaultInitTimeout bounds the first instance's _initialize plus
	// trellis_init when Options.InitTimeout is zero.
	DefaultInitTimeout = 10 * time.Second
)

// DefaultPoolSize is the number of instances a plugin may have when Options
// does not say: two per CPU, at least four, so that handlers waiting on a
// request do not starve the CPUs.
func DefaultPoolSize() int {
	if n := 2 * runtime.GOMAXPROCS(0); n > 4 {
		return n
	}
	return 4
}

// Options configure one plugin version. The zero value of each field is a
// working default, except Name.
type Options struct {
	// Name names the plugin in logs, errors and its default queue group.
	Name string
	// Config holds the values the plugin reads with the config host function.
	Config map[string]string
	// PoolSize caps the instances alive at once (default DefaultPoolSize()).
	PoolSize int
	// Timeout is the wall-clock deadline of one invocation, including the wait
	// for a free instance (default DefaultTimeout). An instance made for a
	// call runs its _initialize and trellis_init within that deadline. A
	// negative Timeout turns
	// deadlines off, which saves a timer per call, and lets a guest that
	// never returns hold its instance for ever. Only for trusted plugins.
	Timeout time.Duration
	// MemoryLimit caps each instance's linear memory, in bytes, rounded down
	// to 64 KiB pages (default DefaultMemoryLimit).
	MemoryLimit uint64
	// InitTimeout bounds the first instance's _initialize plus
	// trellis_init, made when the plugin loads (default DefaultInitTimeout).
	// Past it, the version is refused at once, with an error that names
	// it. It is apart from Timeout because a runtime's start (Go's) may
	// take longer than a call should; no deadline applies when Timeout is
	// negative.
	InitTimeout time.Duration
	// Grants lists what the plugin may do beyond replying.
	Grants Grants
	// Logger receives the plugin's log calls and its stdout and stderr. It is
	// used as is: name it after the plugin (default: a discard logger).
	Logger hclog.Logger
	// Outbox carries the plugin's replies, publishes and requests. Without
	// one, those calls fail with StatusBus.
	Outbox Outbox
	// KV backs the kv_* host functions, already scoped to this plugin's
	// namespace. Without one, they fail with StatusBus.
	KV KV
	// Cache, if set, is a wazero compilation cache shared between plugins and
	// versions (for example on disk), so that unchanged code is not compiled again.
	Cache wazero.CompilationCache
}

// Plugin is one loaded, checked and primed version of a plugin. It is safe
// for concurrent use.
type Plugin struct {
	name     string
	version  string
	language string
	timeout  time.Duration
	config   map[string]string
	grants   Grants
	log      hclog.Logger
	outbox   Outbox

	rt            wazero.Runtime
	compiled      wazero.CompiledModule
	interruptible bool // compiled with package interrupt's checks
	modCfg        wazero.ModuleConfig
	hasInit       bool
	hasStart      bool // _initialize
	hasHandle     bool
	hasPolicy     bool
	hasResponse   bool
	kv            KV
	pool          *pool.Pool[*instance]
	stdout        *lineWriter
	stderr        *lineWriter

	subsMu   sync.Mutex
	subs     []Subscription
	declared bool // the first instance's trellis_init has run
	// deniedSub is the first subscription the first instance was refused,
	// named in Load's error: a plugin's init usually fails over it.
	deniedSub string

	// Instances made and discarded (after a fault), and the linear memory
	// of those alive; see InstanceStats.
	ncreated, ndiscarded atomic.Int64
	memBytes             atomic.Int64

	deniedMu sync.Mutex
	denied   map[string]struct{} // "call subject", logged once; at most maxDenialRecords
	ndenied  atomic.Int64
}

// maxDenialRecords bounds the distinct denials a plugin's log records one by
// one; past it, denials are only counted (Denied), so a plugin cannot grow
// the host's memory or its log by asking for ever new subjects.
const maxDenialRecords = 64

// Subscription is a subject a plugin declared in trellis_init.
type Subscription struct {
	Subject string
	// Queue is the queue group; empty means the plugin's name.
	Queue string
}

// MaxModuleSize is the largest module Load accepts, 1 GiB: the limit
// browsers apply. ReadModule refuses a larger file before reading it.
const MaxModuleSize = limits.MaxModuleSize

// ReadModule reads the module file at path, following symlinks. It refuses
// anything but a regular file (a FIFO, a device, a socket, a directory)
// without blocking or reading it, a file larger than MaxModuleSize, and a
// file whose size or modification time changed while it was read (a writer
// not finished yet); each error names the file and the reason. Every
// module the host reads from disk goes through it.
func ReadModule(path string) ([]byte, error) {
	return regfile.Read(path, MaxModuleSize, "plugin.MaxModuleSize")
}

// Version returns a short content hash of an encoded module, the version
// string the host logs and replies with.
func Version(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:6])
}

// Load compiles wasm, checks it against ABI v1, and makes its first
// instance (running _initialize and trellis_init), so that a plugin that
// cannot serve is refused here. Every error names the plugin and says what
// is wrong. Compiling a large (Go) module takes hundreds of milliseconds
// unless Options.Cache holds it.
func Load(ctx context.Context, wasm []byte, opts Options) (*Plugin, error) {
	p, err := load(ctx, wasm, opts)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", opts.Name, err)
	}
	return p, nil
}

func load(ctx context.Context, wasm []byte, opts Options) (*Plugin, error) {
	// The module is parsed once: its header checked, its sections located
	// and every count in them checked (wazero's decoder allocates what a
	// module declares before it reads it, so a few crafted bytes could
	// make it ask for gigabytes). The table cap and the interrupt rewrite
	// work on that parse, and write the module compiled in one buffer.
	mod, err := limits.Parse(wasm)
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		name:     opts.Name,
		version:  Version(wasm),
		language: Language(wasm),
		timeout:  opts.Timeout,
		config:   opts.Config,
		grants:   opts.Grants,
		log:      opts.Logger,
		outbox:   opts.Outbox,
		kv:       opts.KV,
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	if err := p.grants.validate(); err != nil {
		return nil, err
	}
	limit := opts.MemoryLimit
	if limit == 0 {
		limit = DefaultMemoryLimit
	}
	pages := limit / 65536
	if pages < 1 || pages > 65536 {
		return nil, fmt.Errorf("memory limit %d bytes is outside 64 KiB .. 4 GiB", limit)
	}

	// The module is compiled with the interrupt checks of package
	// interrupt, which stop a call at its deadline and let the Go runtime
	// stop the world while a guest loops. A module the rewriter cannot
	// handle runs as written, with wazero watching each call's context
	// instead: slower, and only with deadlines on.
	cfg := wazero.NewRuntimeConfig().WithMemoryLimitPages(uint32(pages))
	if opts.Cache != nil {
		cfg = cfg.WithCompilationCache(opts.Cache)
	}
	ok := false
	defer func() {
		if !ok && p.rt != nil {
			p.rt.Close(context.Background())
		}
	}()
	// Tables get a maximum, so that table.grow cannot take a gigabyte
	// outside the memory limit.
	if err := limits.CapModuleTables(mod); err != nil {
		return nil, err
	}
	code, err := interrupt.InstrumentModule(mod)
	if err == nil {
		p.interruptible = true
		if err = p.compile(ctx, cfg, code); err != nil {
			p.rt.Close(context.Background())
			p.interruptible = false
		}
	}
	if !p.interruptible {
		if p.log.IsDebug() {
			p.log.Debug("module runs without interrupt checks: deadlines cost a goroutine per call", "reason", err)
		}
		// Only here is the module written again, capped but not
		// instrumented: a second copy, for the rare module that needs it.
		if err := p.compile(ctx, cfg.WithCloseOnContextDone(p.timeout > 0), mod.Encode()); err != nil {
			return nil, err
		}
	}
	if err := p.check(); err != nil {
		return nil, err
	}

	p.stdout = &lineWriter{log: p.log, level: hclog.Info, stream: "stdout"}
	p.stderr = &lineWriter{log: p.log, level: hclog.Warn, stream: "stderr"}
	p.modCfg = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // we call _initialize ourselves, to report its failure
		WithStdout(p.stdout).
		WithStderr(p.stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(crand.Reader)
	for k, v := range opts.Grants.Env {
		p.modCfg = p.modCfg.WithEnv(k, v)
	}
	if len(opts.Grants.Dirs) > 0 {
		fs := wazero.NewFSConfig()
		for _, d := range opts.Grants.Dirs {
			if d.ReadOnly {
				fs = fs.WithReadOnlyDirMount(d.HostPath, d.GuestPath)
			} else {
				fs = fs.WithDirMount(d.HostPath, d.GuestPath)
			}
		}
		p.modCfg = p.modCfg.WithFSConfig(fs)
	}

	size := opts.PoolSize
	if size <= 0 {
		size = DefaultPoolSize()
	}
	p.pool = pool.New(size, p.newInstance, (*instance).close)
	// One instance, not the pool: its init failing (or running past the
	// deadline) refuses the version at once.
	initTimeout := opts.InitTimeout
	if initTimeout <= 0 {
		initTimeout = DefaultInitTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < initTimeout {
		initTimeout = time.Until(dl).Round(time.Millisecond)
	}
	primeCtx, cancel := p.deadline(ctx, initTimeout)
	defer cancel()
	primeCtx = context.WithValue(primeCtx, initDeadlineKey{}, initTimeout)
	if err := p.pool.Prime(primeCtx); err != nil {
		p.subsMu.Lock()
		denied := p.deniedSub
		p.subsMu.Unlock()
		switch {
		case denied != "" && abi.SystemSubject(denied):
			err = fmt.Errorf("%w (it subscribes to %q: system subjects are never granted to plugins)", err, denied)
		case denied != "":
			err = fmt.Errorf("%w (it subscribes to %q, which is not granted: list the subjects it serves in its config)", err, denied)
		}
		return nil, err
	}
	ok = true
	return p, nil
}

// compile makes the plugin's runtime with its host modules and compiles
// code in it.
func (p *Plugin) compile(ctx context.Context, cfg wazero.RuntimeConfig, code []byte) (err error) {
	p.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	if err := p.instantiateHostModule(ctx); err != nil {
		return err
	}
	if p.interruptible {
		if err := instantiateInterruptModule(ctx, p.rt); err != nil {
			return err
		}
	}
	defer func() {
		// wazero panics on some malformed modules instead of returning an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: compile: the module is malformed (%v)", ErrBadModule, r)
		}
	}()
	compiled, err := p.rt.CompileModule(ctx, code)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	p.compiled = compiled
	return nil
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Language names the language the plugin was written in, as Language
// reads it from its module: for people, never for behaviour.
func (p *Plugin) Language() string { return p.language }

// VersionHash returns the plugin's version: a short hash of its module.
func (p *Plugin) VersionHash() string { return p.version }

// Subscriptions returns the subjects the plugin declared in trellis_init.
func (p *Plugin) Subscriptions() []Subscription {
	p.subsMu.Lock()
	defer p.subsMu.Unlock()
	return append([]Subscription(nil), p.subs...)
}

// Denied counts the publishes, requests and reroutes refused because the
// operator did not grant their subject.
func (p *Plugin) Denied() int64 { return p.ndenied.Load() }

// PoolStats reports the instances in use and idle.
func (p *Plugin) PoolStats() (inUse, idle, max int) {
	return p.pool.InUse(), p.pool.Idle(), p.pool.Max()
}

// InstanceStats reports how many instances this version has made and
// discarded (each fault discards one), and the linear memory, in bytes,
// of the instances alive, as their last calls left it.
func (p *Plugin) InstanceStats() (created, discarded, memory int64) {
	return p.ncreated.Load(), p.ndiscarded.Load(), p.memBytes.Load()
}

// Created reports how many instances this version has made.
func (p *Plugin) Created() int64 { return p.ncreated.Load() }

// HasIdle reports whether an instance is idle now: a call made at once
// would neither wait for one nor make one (unless another call takes it
// first).
func (p *Plugin) HasIdle() bool { return p.pool.Idle() > 0 }

// Close waits until calls in flight finish (or ctx ends), then releases
// every instance and the compiled code. Calls after Close fail with
// pool.ErrClosed.
func (p *Plugin) Close(ctx context.Context) error {
	err := p.pool.Close(ctx)
	if cerr := p.rt.Close(context.Background()); err == nil {
		err = cerr
	}
	return err
}

// deadline bounds ctx by d unless deadlines are off.
func (p *Plugin) deadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if p.timeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// lineWriter sends a guest's stdout or stderr to its logger, one line at a
// time. Instances of one plugin share it.
type lineWriter struct {
	log    hclog.Logger
	level  hclog.Level
	stream string
	mu     sync.Mutex
	buf    []byte
}

const maxLine = 64 << 10

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := -1
		for j, c := range w.buf {
			if c == '\n' {
				i = j
				break
			}
		}
		if i < 0 {
			if len(w.buf) > maxLine {
				i = maxLine
			} else {
				return len(b), nil
			}
		}
		w.log.Log(w.level, string(w.buf[:i]), "stream", w.stream)
		if i < len(w.buf) && w.buf[i] == '\n' {
			i++
		}
		w.buf = append(w.buf[:0], w.buf[i:]...)
	}
}

// Timeout returns the invocation deadline in force (negative: none).
func (p *Plugin) Timeout() time.Duration { return p.timeout }

// MayRequest reports whether the plugin is granted any subject to send
// requests to: a call of it may wait for another message to be served.
func (p *Plugin) MayRequest() bool { return len(p.grants.Request) > 0 }
