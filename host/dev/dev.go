// Package dev is `trellis dev`: serve every plugin found under a directory,
// building sources first, with no configuration, and keep serving what is
// there as files are saved, built, copied or deleted.
package dev

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
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

	mu    sync.Mutex        // orders scans: scan and Start one at a time
	skip  map[string]string // skipped path -> reason, to log each once
	waits sync.WaitGroup    // goroutines waiting for syncs to finish
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
			d.log.Warn("skipped", "path", s.Path, "reason", s.Reason)
		}
	}
	wants := make([]reload.Want, 0, len(found))
	for _, p := range found {
		spec := d.opts.Spec
		spec.Name = p.Name
		spec.Path = p.Wasm
		// A dev directory has no config to grant subjects in: each plugin
		// serves what it subscribes to (system subjects never). Strict
		// grants nothing else, as in production.
		spec.Grants.Subscribe = []string{">"}
		if !d.opts.Strict {
			spec.Grants.Publish = []string{">"}
			spec.Grants.Request = []string{">"}
		}
		w := reload.Want{Spec: spec}
		if p.Source != "" {
			w.Source = p.Source
			w.Spec.Path = filepath.Join(d.opts.BuildDir, p.Name+".wasm")
		}
		wants = append(wants, w)
	}
	return d.rec.Start(ctx, wants), nil
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
		d.log.Warn("dev mode: plugins may publish and request on any subject; use `trellis run --config` for least privilege")
	}
	w, err := watch.New(watch.Options{Paths: []string{d.dir}, Recursive: true, Debounce: d.opts.Debounce, Logger: d.log})
	if err != nil {
		return err
	}
	res, err := d.Sync(ctx)
	if err != nil {
		w.Close()
		return err
	}
	if started != nil {
		started(res)
	}
	err = w.Run(ctx, func(ctx context.Context) {
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
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
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
