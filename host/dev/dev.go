// Package dev is `trellis dev`: serve every plugin found under a directory,
// building sources first, with no configuration, and keep serving what is
// there as files are saved, built, copied or deleted.
package dev

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/dev/build"
	"github.com/trellis-mesh/trellis/host/dev/internal/scan"
	"github.com/trellis-mesh/trellis/host/internal/reload"
	"github.com/trellis-mesh/trellis/host/internal/watch"
)

// Options configure dev mode.
type Options struct {
	// BuildDir receives the modules built from sources.
	BuildDir string
	// Strict grants plugins nothing beyond replying, as in production.
	// By default dev mode lets every plugin publish and request on any
	// subject, so that pipelines work without a config file.
	Strict bool
	// Spec is applied to every plugin: pool size, timeout, memory limit.
	Spec host.Spec
	// Debounce is how long file events must pause before a rescan
	// (default watch.DefaultDebounce).
	Debounce time.Duration
	// Logger (default: discard).
	Logger hclog.Logger
}

// Dev serves a directory's plugins on a host.
type Dev struct {
	h    *host.Host
	dir  string
	opts Options
	log  hclog.Logger
	rec  *reload.Reconciler

	mu       sync.Mutex        // orders scans: scan and Start one at a time
	skip     map[string]string // skipped path -> reason, to log each once
	policies string            // the last PoliciesFile problem logged
	waits    sync.WaitGroup    // goroutines waiting for syncs to finish
}

// New prepares dev mode for dir on h. Nothing is loaded until Sync or Run.
func New(h *host.Host, dir string, opts Options) *Dev {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Dev{h: h, dir: dir, opts: opts, log: log, rec: reload.New(h, log), skip: map[string]string{}}
}

// Sync scans the directory once and makes the host serve what it finds:
// new plugins are built and loaded, changed ones rebuilt and reloaded,
// vanished ones unloaded. A plugin that fails keeps its last good version.
func (d *Dev) Sync(ctx context.Context) (Result, error) {
	pass, err := d.start(ctx)
	if err != nil {
		return Result{}, err
	}
	return d.finish(pass), nil
}

// start scans the directory and starts bringing the host up to date.
func (d *Dev) start(ctx context.Context) (*reload.Pass, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	found, skipped, err := scan.Dir(d.dir)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		if d.skip[s.Path] != s.Reason {
			d.skip[s.Path] = s.Reason
			if s.Expected {
				d.log.Info("not served by dev", "path", s.Path, "reason", s.Reason)
			} else {
				d.log.Warn("skipped", "path", s.Path, "reason", s.Reason)
			}
		}
	}
	policies := d.readPolicies(found)
	isPolicy := map[string]bool{}
	for _, n := range policies.names() {
		isPolicy[n] = true
	}
	wants := make([]reload.Want, 0, len(found))
	for _, p := range found {
		spec := d.opts.Spec
		spec.Name = p.Name
		spec.Path = p.Wasm
		spec.Policies = policies.refs(p.Name)
		// A dev directory has no config to grant subjects in: each plugin
		// serves what it subscribes to (system subjects never). Strict
		// grants nothing else, as in production.
		spec.Grants.Subscribe = []string{">"}
		if !d.opts.Strict {
			spec.Grants.Publish = []string{">"}
			spec.Grants.Request = []string{">"}
		}
		// A module that exports trellis_policy and no trellis_handle is
		// loaded as a policy, and so is one the PoliciesFile names as a
		// policy (a Go module exports both).
		spec.Policy = isPolicy[p.Name]
		w := reload.Want{Spec: spec, AutoPolicy: true}
		if p.Source != "" {
			w.Source = p.Source
			w.Spec.Path = filepath.Join(d.opts.BuildDir, p.Name+".wasm")
		}
		wants = append(wants, w)
	}
	return d.rec.Start(ctx, wants), nil
}

// readPolicies reads the PoliciesFile, logging a problem with it once (the
// last good reading is not kept: a broken file puts no policy anywhere, and
// says so) and each policy it names that is not in the directory.
func (d *Dev) readPolicies(found []scan.Plugin) policyLines {
	p, err := readPolicies(d.dir)
	msg := ""
	if err != nil {
		msg = err.Error()
	} else {
		have := map[string]bool{}
		for _, f := range found {
			have[f.Name] = true
		}
		var missing []string
		for _, n := range p.names() {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			msg = PoliciesFile + " names policies not in " + d.dir + ": " + strings.Join(missing, ", ") + "; the handlers behind them refuse messages (503) until they are"
		}
	}
	if msg != d.policies {
		d.policies = msg
		if msg != "" {
			d.log.Error("policies", "error", msg)
		}
	}
	if err != nil {
		return policyLines{}
	}
	return p
}

func (d *Dev) finish(pass *reload.Pass) Result {
	res := pass.Wait()
	warnSharedSubjects(d.h, d.log)
	return res
}

// Run syncs, then watches the directory and syncs again after every
// settled change, until ctx ends. started is called after the first sync.
// Later syncs are not waited for before the next change is looked at, so a
// plugin that is slow to load does not hold up another's reload. Run
// returns once every sync it began has ended.
func (d *Dev) Run(ctx context.Context, started func(Result)) error {
	defer d.waits.Wait()
	if !d.opts.Strict {
		// Info, not a warning: it is what dev is for, and a newcomer's first
		// run should show nothing that looks like a fault.
		d.log.Info("dev mode: plugins may publish and request on any subject (--strict grants nothing); use `trellis run --config` for least privilege")
	}
	w, err := watch.New(watch.Options{Paths: []string{d.dir}, Recursive: true, Debounce: d.opts.Debounce, Logger: d.log})
	if err != nil {
		return err
	}
	deps := &depWatch{}
	defer deps.stop()
	rescan := func(ctx context.Context) {
		pass, err := d.start(ctx)
		if err != nil {
			d.log.Error("rescan failed", "dir", d.dir, "error", err)
			return
		}
		d.waits.Add(1)
		go func() {
			defer d.waits.Done()
			d.finish(pass)
		}()
	}
	// Watch what sources are built from before the first build, so that no
	// change to it goes unseen. A change in the directory may change what
	// sources depend on (a new plugin, an edited Cargo.toml): look again
	// after each. The dependency watch's own changes only rescan, so it
	// never waits for itself.
	d.watchDependencies(ctx, deps, rescan)
	res, err := d.Sync(ctx)
	if err != nil {
		w.Close()
		return err
	}
	if started != nil {
		started(res)
	}
	err = w.Run(ctx, func(ctx context.Context) {
		rescan(ctx)
		d.watchDependencies(ctx, deps, rescan)
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// depWatch watches the directories outside the served one that sources
// are built from (an SDK, a path dependency), so that editing sdk/c/trellis.h
// rebuilds the C plugins that include it.
type depWatch struct {
	mu     sync.Mutex
	dirs   string // the directories watched, joined
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *depWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopLocked()
}

func (w *depWatch) stopLocked() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel, w.dirs = nil, ""
	}
}

// watchDependencies (re)starts the dependency watch when the set of
// directories the sources depend on changed; each change in them rescans.
func (d *Dev) watchDependencies(ctx context.Context, w *depWatch, rescan func(context.Context)) {
	found, _, err := scan.Dir(d.dir)
	if err != nil {
		return
	}
	abs, _ := filepath.Abs(d.dir)
	set := map[string]bool{}
	for _, p := range found {
		if p.Source == "" {
			continue
		}
		deps, err := build.Dependencies(p.Source)
		if err != nil {
			continue
		}
		for _, dep := range deps {
			if dep != abs && !strings.HasPrefix(dep, abs+string(filepath.Separator)) {
				set[dep] = true
			}
		}
	}
	dirs := make([]string, 0, len(set))
	for dep := range set {
		dirs = append(dirs, dep)
	}
	sort.Strings(dirs)
	joined := strings.Join(dirs, "\x00")
	w.mu.Lock()
	defer w.mu.Unlock()
	if joined == w.dirs || ctx.Err() != nil {
		return
	}
	w.stopLocked()
	if len(dirs) == 0 {
		return
	}
	dw, err := watch.New(watch.Options{Paths: dirs, Recursive: true, Debounce: d.opts.Debounce, Logger: d.log})
	if err != nil {
		d.log.Warn("cannot watch what plugins are built from; a change there is seen at the next restart", "dirs", strings.Join(dirs, ","), "error", err)
		return
	}
	d.log.Debug("watching what plugins are built from", "dirs", strings.Join(dirs, ","))
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	w.dirs, w.cancel, w.done = joined, cancel, done
	go func() {
		defer close(done)
		// Rescans run under Run's context: replacing this watch must not
		// cancel a build it started.
		dw.Run(wctx, func(context.Context) { rescan(ctx) })
	}()
}

// warnSharedSubjects says when two plugins serve one subject: each has its
// own queue group, so each gets every message and a requester gets the
// fastest answer.
func warnSharedSubjects(h *host.Host, log hclog.Logger) {
	by := map[string][]string{}
	for _, info := range h.Plugins() {
		for _, s := range info.Subjects {
			by[s] = append(by[s], info.Name)
		}
	}
	for s, names := range by {
		if len(names) > 1 {
			log.Debug("several plugins serve one subject; each gets every message", "subject", s, "plugins", strings.Join(names, ","))
		}
	}
}

// Result says what one pass over the directory did.
type Result = reload.Result
