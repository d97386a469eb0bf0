package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/reload"
	"github.com/trellis-mesh/trellis/host/internal/watch"
)

// Host is what a Loop drives; *host.Host implements it.
type Host interface {
	Apply(ctx context.Context, c host.Change) (host.Applied, error)
	Plugins() []host.Info
}

// Result says what applying a config did: what Apply did to the host, or,
// with Err set, why nothing of the config was applied.
type Result struct {
	host.Applied
	// Err lists every reason the config was refused; the setup running
	// before it stays, untouched.
	Err error
}

// Loop keeps a host serving what a config file says: it reapplies the file
// when it, or any plugin file or source it names, changes, and when
// Trigger is called (SIGHUP). Each version of the file is applied whole or
// not at all (see host.Host.Apply): its sources are built, every plugin
// that changed is prepared and subscribed, and only then does it replace
// what runs. A config with errors is refused whole, with file:line:col for
// each problem in the file and the plugin named for each other, and the
// running setup stays. A newer version of the file supersedes one still
// being prepared: that one is abandoned, having changed nothing.
type Loop struct {
	host     Host
	file     string
	log      hclog.Logger
	debounce time.Duration
	trigger  chan struct{}
	builds   *reload.Builder

	mu      sync.Mutex // orders applies: one is prepared at a time
	wanted  *Config    // the newest config read: what is watched
	cancel  context.CancelFunc
	running chan struct{} // closed when the apply in the background ends
	// runningFP is the fingerprint of the config running applies.
	runningFP string

	// state is written by the apply running (one at a time, with or
	// without l.mu) and read by the next.
	stateMu sync.Mutex
	applied *Config // the last config applied
	refused string  // fingerprint of the last config refused
}

func (l *Loop) lastApplied() *Config {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.applied
}

// NewLoop returns a loop for file on h. debounce 0 means the default.
func NewLoop(h Host, file string, debounce time.Duration, log hclog.Logger) *Loop {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Loop{host: h, file: file, log: log, debounce: debounce, trigger: make(chan struct{}, 1),
		builds: reload.NewBuilder(log)}
}

// Apply applies c now, whole or not at all, and returns once it is done.
func (l *Loop) Apply(ctx context.Context, c *Config) Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.supersede()
	l.wanted = c
	return l.apply(ctx, c, "")
}

// supersede abandons the apply running in the background, if any, and
// waits for it to end. l.mu is held.
func (l *Loop) supersede() {
	if l.cancel != nil {
		l.cancel()
		<-l.running
		l.cancel, l.running = nil, nil
	}
}

// httpHost is the part of the host that serves HTTP routes.
type httpHost interface{ HTTPAddr() string }

// apply builds c's sources, then applies c to the host in one Apply.
// fingerprint, if not empty, identifies what c is made of: a config
// refused with the same fingerprint is not tried again. A config refused
// only because JetStream cannot place its durable streams yet (a member
// of a cluster whose other members are not up) is tried again, with a
// backoff of up to maxPlacementWait, until it applies or ctx ends.
func (l *Loop) apply(ctx context.Context, c *Config, fingerprint string) Result {
	for wait := time.Second; ; wait = min(2*wait, maxPlacementWait) {
		res := l.applyOnce(ctx, c, fingerprint)
		if res.Err == nil || !errors.Is(res.Err, host.ErrJetStreamUnavailable) || ctx.Err() != nil {
			return res
		}
		l.log.Warn("waiting for JetStream to place the durable streams; are the cluster's other members up?",
			"file", l.file, "retry_in", wait, "error", res.Err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return res
		}
	}
}

// maxPlacementWait is the longest wait between tries of a config whose
// durable streams JetStream could not place.
const maxPlacementWait = 10 * time.Second

func (l *Loop) applyOnce(ctx context.Context, c *Config, fingerprint string) Result {
	l.stateMu.Lock()
	refused := l.refused
	l.stateMu.Unlock()
	if fingerprint != "" && fingerprint == refused {
		l.log.Debug("config unchanged since it was refused", "file", l.file)
		return Result{Err: errors.New("unchanged since it was refused")}
	}
	refuse := func(err error) Result {
		if ctx.Err() != nil { // a config cut short is no verdict on it
			l.log.Info("config abandoned for a newer one", "file", l.file)
			return Result{Err: err}
		}
		if errors.Is(err, host.ErrJetStreamUnavailable) {
			return Result{Err: err} // no verdict either: apply tries again
		}
		l.stateMu.Lock()
		l.refused = fingerprint
		l.stateMu.Unlock()
		l.log.Error("config refused; the running setup stays", "file", l.file, "error", err)
		return Result{Err: err}
	}
	if err := l.build(ctx, c); err != nil {
		return refuse(err)
	}
	change := host.Change{}
	keep := map[string]bool{}
	for _, p := range c.Plugins {
		change.Load = append(change.Load, p.Spec)
		keep[p.Name] = true
	}
	if prev := l.lastApplied(); prev != nil {
		loaded := map[string]bool{}
		for _, info := range l.host.Plugins() {
			loaded[info.Name] = true
		}
		for _, p := range prev.Plugins {
			if !keep[p.Name] && loaded[p.Name] {
				change.Unload = append(change.Unload, p.Name)
			}
		}
	}
	// A plugin a refused config named and this one does not: unloading it
	// takes it off the host's list of plugins not ready.
	if rh, ok := l.host.(interface{ Readiness() host.Readiness }); ok {
		for _, p := range rh.Readiness().Plugins {
			if p.State == host.StateRefused && !keep[p.Plugin] && !slices.Contains(change.Unload, p.Plugin) {
				change.Unload = append(change.Unload, p.Plugin)
			}
		}
	}
	if hh, ok := l.host.(httpHost); ok && c.HTTP.Listen != "" && hh.HTTPAddr() != "" {
		change.HTTPRoutes, change.SetHTTPRoutes = c.HTTP.Routes, true
	}
	done, err := l.host.Apply(ctx, change)
	if err != nil {
		return refuse(err)
	}
	l.stateMu.Lock()
	l.applied, l.refused = c, ""
	l.stateMu.Unlock()
	return Result{Applied: done}
}

// build builds every source c names, two at a time; it returns every
// failure.
func (l *Loop) build(ctx context.Context, c *Config) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		slots = make(chan struct{}, 2)
	)
	for _, p := range c.Plugins {
		if p.Source == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if _, err := l.builds.Build(ctx, p.Name, p.Source, p.Path); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// Trigger asks for a reload at the next opportunity.
func (l *Loop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// reloadFile reads the file again and, if it is valid, starts applying it
// in the background, abandoning an apply of an older version still
// running: the newest version of the file is the one that counts, and a
// plugin of the older one that is slow to start holds nothing up. Unless
// forced (SIGHUP), a config refused before is not tried again until the
// file or a plugin it names changes.
func (l *Loop) reloadFile(ctx context.Context, force bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := Load(l.file)
	if err != nil {
		l.log.Error("config refused; the running setup stays", "file", l.file, "error", err)
		return
	}
	if prev := l.lastApplied(); prev != nil {
		warnStatic(l.log, l.file, prev, c)
	}
	fingerprint := l.fingerprint(c)
	if force {
		l.stateMu.Lock()
		l.refused = ""
		l.stateMu.Unlock()
	} else if l.running != nil && fingerprint == l.runningFP {
		select {
		case <-l.running:
		default:
			return // this very config is being applied
		}
	}
	l.supersede()
	l.wanted = c
	actx, cancel := context.WithCancel(ctx)
	running := make(chan struct{})
	l.cancel, l.running, l.runningFP = cancel, running, fingerprint
	go func() {
		defer close(running)
		res := l.apply(actx, c, fingerprint)
		if res.Err == nil && len(res.Loaded)+len(res.Reloaded)+len(res.Unloaded) > 0 {
			l.log.Info("config applied", "file", l.file, "loaded", res.Loaded, "reloaded", res.Reloaded,
				"unloaded", res.Unloaded, "unchanged", len(res.Unchanged))
		}
	}()
}

// warnStatic warns about settings that take effect only at the next start.
func warnStatic(log hclog.Logger, file string, prev, c *Config) {
	// Everything of the http block but its routes is the server's.
	newHTTP, oldHTTP := c.HTTP, prev.HTTP
	newHTTP.Routes, oldHTTP.Routes = nil, nil
	if !reflect.DeepEqual(c.NATS, prev.NATS) || c.DataDir != prev.DataDir ||
		!reflect.DeepEqual(newHTTP, oldHTTP) ||
		c.MaxInFlight != prev.MaxInFlight || c.LogLevel != prev.LogLevel || c.LogFormat != prev.LogFormat ||
		c.RequireSigned != prev.RequireSigned || !reflect.DeepEqual(c.TrustedKeys, prev.TrustedKeys) ||
		c.Rollouts != prev.Rollouts || c.RolloutLease != prev.RolloutLease {
		log.Warn("config: nats, the http block's settings (all but routes), data_dir, max_in_flight, log, trusted_keys, require_signed and rollouts settings apply at the next start", "file", file)
	}
}

// fingerprint identifies what c is made of: the file's content and each
// plugin file's and source's size and modification time.
func (l *Loop) fingerprint(c *Config) string {
	h := sha256.New()
	if b, err := os.ReadFile(l.file); err == nil {
		h.Write(b)
	}
	for _, p := range paths(l.file, c)[1:] {
		stamp, err := reload.Stamp(p)
		fmt.Fprintf(h, "%s\x00%s\x00%v\n", p, stamp, err)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// paths lists what the loop watches for c: the config file, every plugin
// file, every source directory, and every file its file() calls read.
func paths(file string, c *Config) []string {
	out := []string{file}
	out = append(out, c.Files...)
	for _, p := range c.Plugins {
		if p.Source != "" {
			out = append(out, p.Source)
		} else {
			out = append(out, p.Path)
		}
	}
	return out
}

// Run applies c, the config already loaded from the file, then watches
// until ctx ends. It returns once every reload it began has ended.
func (l *Loop) Run(ctx context.Context, c *Config, started func(Result)) error {
	defer func() {
		l.mu.Lock()
		if l.running != nil {
			<-l.running
		}
		l.mu.Unlock()
	}()
	res := l.Apply(ctx, c)
	if started != nil {
		started(res)
	}
	for ctx.Err() == nil {
		l.mu.Lock()
		watched := paths(l.file, l.wanted)
		l.mu.Unlock()
		w, err := watch.New(watch.Options{Paths: watched, Recursive: true, Debounce: l.debounce, Logger: l.log})
		if err != nil {
			return err
		}
		// Changes made while no watcher was running (before the first,
		// while c was applied, or while this one was made) would go unseen.
		l.reloadFile(ctx, false)
		wctx, cancel := context.WithCancel(ctx)
		triggered := make(chan struct{})
		go func() {
			defer close(triggered)
			select {
			case <-l.trigger:
				l.log.Info("reload requested", "file", l.file)
				l.reloadFile(ctx, true)
			case <-wctx.Done():
			}
			cancel() // rebuild the watcher: the config may name other paths now
		}()
		// Reloads run under ctx, not wctx: rebuilding the watcher must not
		// cut short a plugin's load.
		_ = w.Run(wctx, func(context.Context) {
			l.reloadFile(ctx, false)
			l.mu.Lock()
			now := paths(l.file, l.wanted)
			l.mu.Unlock()
			if !reflect.DeepEqual(now, watched) {
				cancel()
			}
		})
		cancel()
		<-triggered // a reload it began ends before the next watcher, or Run's return
	}
	return nil
}
