// Package reload keeps a host's plugins in step with what should run: a list
// of wanted plugins (from a config file or a scanned directory) is compared
// with what is loaded, and only the differences are applied.
//
// A plugin is reloaded when its module's content or its spec changed; its
// source (if it has one) is rebuilt when any file under it changed. A
// version the host refused, or a source that failed to build, is not tried
// again until its content changes, so a broken file costs one log line, not
// one per event. Whatever fails, the version already serving keeps serving.
package reload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/regfile"
	"github.com/trellis-mesh/trellis/host/internal/watch"
)

// Want is one plugin that should run.
type Want struct {
	// Spec is the plugin's spec; Spec.Path is the module to load.
	Spec host.Spec
	// Source, if set, is built into Spec.Path first.
	Source string
	// AutoPolicy loads the module as a policy (Spec.Policy set) when it
	// exports trellis_policy and no trellis_handle, and as Spec says
	// otherwise: what a built module is can only be known once it is built,
	// and dev mode has no config to say it. A module loaded as a policy has
	// no Policies and no subscription grant of its own.
	AutoPolicy bool
}

// Host is what the Reconciler drives; *host.Host implements it. Load and
// Unload are called concurrently for different names, never for one name.
type Host interface {
	Load(ctx context.Context, spec host.Spec) error
	Unload(ctx context.Context, name string) error
}

// Reconciler applies lists of wanted plugins to a host. It is safe to call
// from several goroutines.
//
// Each plugin name is reconciled on its own: changed plugins are built and
// loaded concurrently, at most GOMAXPROCS at a time (see loadSlots), and one name is never
// worked on by two goroutines at once. No lock is held across a build or a
// load, so a plugin whose load is slow (a trellis_init that loops until its
// deadline) delays nobody else's reload: a later Start sees it busy, hands
// it the newer want, and goes on with the others.
type Reconciler struct {
	h      Host
	log    hclog.Logger
	slot   chan struct{} // one per build or load running; GOMAXPROCS of them
	builds *Builder

	mu      sync.Mutex // guards gen, plugins and entries' shared fields; never held across a load
	gen     uint64
	plugins map[string]*entry
}

// entry is one plugin name. Its fields up to st are guarded by
// Reconciler.mu; st belongs to the entry's worker (at most one at a time).
type entry struct {
	name    string
	want    *Want  // what should run; nil: nothing (unload)
	wantGen uint64 // the Start that set want
	doneGen uint64 // the Start whose want the last finished pass applied
	busy    bool   // a worker is running for this entry
	outcome string // of the last finished pass
	err     error

	st state
}

// state is what the Reconciler knows of one plugin name.
type state struct {
	spec      host.Spec // as loaded, Wasm cleared
	version   string    // content hash of the module serving now
	refused   string    // content hash last refused, with spec refusedAt
	refusedAt host.Spec
	readErr   string // the last error reading the module, logged once
}

// New returns a Reconciler for h.
func New(h Host, log hclog.Logger) *Reconciler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Reconciler{h: h, log: log, slot: make(chan struct{}, loadSlots()), builds: NewBuilder(log), plugins: map[string]*entry{}}
}

// loadSlots is how many builds and loads run at once: GOMAXPROCS, since
// compiling and a guest's init are CPU work, but at least two, so that on
// one CPU a plugin stuck in init until its deadline does not stop every
// other load. Each plugin stuck that way holds a slot until its deadline.
func loadSlots() int {
	return max(runtime.GOMAXPROCS(0), 2)
}

// Result says what one Apply did.
type Result struct {
	Loaded, Reloaded, Unloaded, Unchanged []string
	// Failed maps a plugin name to why it could not be (re)loaded; if an
	// older version was serving, it still is.
	Failed map[string]error
	// Pending names plugins that an earlier, unfinished Start was still
	// working on: they get this call's want when that work ends, and their
	// outcome is logged rather than reported here.
	Pending []string
}

// Apply makes the host run exactly wants and returns what it did: Start
// followed by Wait.
func (r *Reconciler) Apply(ctx context.Context, wants []Want) Result {
	return r.Start(ctx, wants).Wait()
}

// Pass is the work one Start began.
type Pass struct {
	started []*entry
	pending []string
	wg      sync.WaitGroup
	r       *Reconciler
}

// Start records wants as what should run, in place of what earlier calls
// asked for, and starts bringing every plugin whose name is free up to date;
// it does not wait. Builds and loads run under ctx. The Pass's Wait must be
// called: it is what waits for the goroutines Start began. Calls to Start
// take effect in the order they are made, so a caller that must keep two
// lists in order (an old config and a new one) makes its calls in order and
// may wait for them in any.
func (r *Reconciler) Start(ctx context.Context, wants []Want) *Pass {
	pass := &Pass{r: r}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	seen := make(map[string]bool, len(wants))
	for _, w := range wants {
		name := w.Spec.Name
		if seen[name] {
			continue
		}
		seen[name] = true
		e := r.plugins[name]
		if e == nil {
			e = &entry{name: name}
			r.plugins[name] = e
		}
		want := w
		e.want, e.wantGen = &want, r.gen
		r.kick(ctx, e, pass)
	}
	for name, e := range r.plugins {
		if !seen[name] {
			e.want, e.wantGen = nil, r.gen
			r.kick(ctx, e, pass)
		}
	}
	return pass
}

// kick starts a worker for e, or leaves e's new want to the worker already
// running. r.mu is held.
func (r *Reconciler) kick(ctx context.Context, e *entry, pass *Pass) {
	if e.busy {
		pass.pending = append(pass.pending, e.name)
		return
	}
	e.busy = true
	pass.started = append(pass.started, e)
	pass.wg.Add(1)
	go func() {
		defer pass.wg.Done()
		r.work(ctx, e)
	}()
}

// work applies e's want until it has applied the newest, then leaves.
func (r *Reconciler) work(ctx context.Context, e *entry) {
	for {
		r.mu.Lock()
		if e.doneGen >= e.wantGen || ctx.Err() != nil {
			// Leaving on a cancelled ctx leaves doneGen behind: the next
			// Start works on the entry again.
			e.busy = false
			if e.want == nil && e.doneGen >= e.wantGen && r.plugins[e.name] == e {
				delete(r.plugins, e.name)
			}
			r.mu.Unlock()
			return
		}
		want, gen := e.want, e.wantGen
		r.mu.Unlock()

		var outcome string
		var err error
		if want == nil {
			outcome, err = r.unload(ctx, e)
		} else {
			outcome, err = r.apply(ctx, *want, &e.st)
		}

		r.mu.Lock()
		e.doneGen, e.outcome, e.err = gen, outcome, err
		r.mu.Unlock()
	}
}

// unload stops serving e's plugin, if it is loaded, and forgets it.
func (r *Reconciler) unload(ctx context.Context, e *entry) (string, error) {
	loaded, refused := e.st.version != "", e.st.refused != ""
	e.st = state{}
	if refused && !loaded {
		// The host lists a plugin refused and never served as not ready
		// until it is unloaded.
		return "", r.h.Unload(ctx, e.name)
	}
	if !loaded {
		return "", nil
	}
	return "unloaded", r.h.Unload(ctx, e.name)
}

// Wait waits until the plugins the Pass started on are up to date (with
// the newest want, should a later Start have changed it meanwhile) and
// reports what was done.
func (p *Pass) Wait() Result {
	p.wg.Wait()
	res := Result{Failed: map[string]error{}, Pending: p.pending}
	p.r.mu.Lock()
	for _, e := range p.started {
		if e.err != nil {
			res.Failed[e.name] = e.err
		}
		switch e.outcome {
		case "loaded":
			res.Loaded = append(res.Loaded, e.name)
		case "reloaded":
			res.Reloaded = append(res.Reloaded, e.name)
		case "unloaded":
			res.Unloaded = append(res.Unloaded, e.name)
		case "unchanged":
			res.Unchanged = append(res.Unchanged, e.name)
		}
	}
	p.r.mu.Unlock()
	for _, l := range [][]string{res.Loaded, res.Reloaded, res.Unloaded, res.Unchanged, res.Pending} {
		sort.Strings(l)
	}
	return res
}

// acquire takes a slot for a build or a load, waiting for one to be free.
func (r *Reconciler) acquire(ctx context.Context) error {
	select {
	case r.slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Reconciler) release() { <-r.slot }

func (r *Reconciler) apply(ctx context.Context, w Want, st *state) (string, error) {
	name := w.Spec.Name
	if w.Source != "" {
		if err := r.acquire(ctx); err != nil {
			return "", err
		}
		built, err := r.builds.Build(ctx, name, w.Source, w.Spec.Path)
		r.release()
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if built {
				msg := "build failed; the last good version keeps serving"
				if st.version == "" {
					msg = "build failed; the plugin is not loaded"
				}
				r.log.Error(msg, "plugin", name, "source", w.Source, "error", err)
			}
			return "", err
		}
	}
	wasm, err := plugin.ReadModule(w.Spec.Path)
	if err != nil {
		// Once per distinct error: a FIFO left in a watched directory
		// would otherwise cost a line per rescan.
		if msg := err.Error(); msg != st.readErr {
			st.readErr = msg
			switch {
			case errors.Is(err, regfile.ErrChanged):
				r.log.Debug("module still being written", "plugin", name, "path", w.Spec.Path)
			case st.version == "":
				r.log.Error("plugin refused", "plugin", name, "path", w.Spec.Path, "error", err)
			default:
				r.log.Error("plugin refused; the last good version keeps serving", "plugin", name, "path", w.Spec.Path, "error", err)
			}
		}
		return "", fmt.Errorf("plugin %q: %w", name, err)
	}
	st.readErr = ""
	version := plugin.Version(wasm)
	spec := w.Spec
	spec.Wasm = nil
	if w.AutoPolicy {
		if policy, handler := plugin.Roles(wasm); policy && !handler {
			spec.Policy = true
		}
		if spec.Policy {
			spec.Policies, spec.Grants.Subscribe = nil, nil
		}
	}
	if version == st.version && reflect.DeepEqual(spec, st.spec) {
		return "unchanged", nil
	}
	if version == st.refused && reflect.DeepEqual(spec, st.refusedAt) {
		return "", fmt.Errorf("plugin %q: version %s was refused before", name, version)
	}
	load := spec
	load.Wasm = wasm
	if err := r.acquire(ctx); err != nil {
		return "", err
	}
	err = r.h.Load(ctx, load)
	r.release()
	if err != nil {
		if ctx.Err() == nil { // a load cut short is no verdict on the version
			st.refused, st.refusedAt = version, spec
		}
		return "", err
	}
	outcome := "loaded"
	if st.version != "" {
		outcome = "reloaded"
	}
	st.version, st.spec = version, spec
	st.refused = ""
	return outcome, nil
}

// Stamp summarises a plugin file by its size and modification time, or a
// source directory as sourceStamp does: cheap, and it changes whenever a
// file is saved.
func Stamp(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return sourceStamp(path)
	}
	return fmt.Sprintf("%d.%d", info.Size(), info.ModTime().UnixNano()), nil
}

// sourceStamp summarises a source tree by its files' names, sizes and
// modification times: cheap, and it changes whenever a file is saved.
func sourceStamp(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && watch.DefaultSkip(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Ext(p) == ".wasm" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // vanished while we looked: the next event rescans
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)[:8]), err
}
