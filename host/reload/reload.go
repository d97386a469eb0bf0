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
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/build"
	"github.com/trellis-mesh/trellis/host/plugin"
	"github.com/trellis-mesh/trellis/host/watch"
)

// Want is one plugin that should run.
type Want struct {
	// Spec is the plugin's spec; Spec.Path is the module to load.
	Spec host.Spec
	// Source, if set, is built into Spec.Path first.
	Source string
}

// Host is what the Reconciler drives; *host.Host implements it.
type Host interface {
	Load(ctx context.Context, spec host.Spec) error
	Unload(ctx context.Context, name string) error
}

// Reconciler applies lists of wanted plugins to a host. Apply calls are
// serialised; it is safe to call from several goroutines.
type Reconciler struct {
	h   Host
	log hclog.Logger

	mu     sync.Mutex
	loaded map[string]*state
}

// state is what the Reconciler knows of one plugin name.
type state struct {
	spec      host.Spec // as loaded, Wasm cleared
	version   string    // content hash of the module serving now
	refused   string    // content hash last refused, with spec refusedAt
	refusedAt host.Spec
	srcStamp  string // source stamp of the last build attempt
	srcFailed bool
}

// New returns a Reconciler for h.
func New(h Host, log hclog.Logger) *Reconciler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Reconciler{h: h, log: log, loaded: map[string]*state{}}
}

// Result says what one Apply did.
type Result struct {
	Loaded, Reloaded, Unloaded, Unchanged []string
	// Failed maps a plugin name to why it could not be (re)loaded; if an
	// older version was serving, it still is.
	Failed map[string]error
}

// Apply makes the host run exactly wants.
func (r *Reconciler) Apply(ctx context.Context, wants []Want) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Failed: map[string]error{}}
	seen := map[string]bool{}
	for _, w := range wants {
		name := w.Spec.Name
		seen[name] = true
		st := r.loaded[name]
		if st == nil {
			st = &state{}
		}
		outcome, err := r.apply(ctx, w, st)
		switch {
		case err != nil:
			res.Failed[name] = err
		case outcome == "loaded":
			res.Loaded = append(res.Loaded, name)
		case outcome == "reloaded":
			res.Reloaded = append(res.Reloaded, name)
		default:
			res.Unchanged = append(res.Unchanged, name)
		}
		if st.version != "" || st.refused != "" || st.srcStamp != "" {
			r.loaded[name] = st
		}
	}
	names := make([]string, 0, len(r.loaded))
	for name := range r.loaded {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if seen[name] {
			continue
		}
		if r.loaded[name].version != "" {
			if err := r.h.Unload(ctx, name); err != nil {
				res.Failed[name] = err
			}
			res.Unloaded = append(res.Unloaded, name)
		}
		delete(r.loaded, name)
	}
	return res
}

func (r *Reconciler) apply(ctx context.Context, w Want, st *state) (string, error) {
	name := w.Spec.Name
	if w.Source != "" {
		stamp, err := sourceStamp(w.Source)
		if err != nil {
			return "", fmt.Errorf("plugin %q: source: %w", name, err)
		}
		_, statErr := os.Stat(w.Spec.Path)
		if stamp != st.srcStamp || (statErr != nil && !st.srcFailed) {
			st.srcStamp = stamp
			start := time.Now()
			if err := build.Build(ctx, w.Source, w.Spec.Path); err != nil {
				st.srcFailed = true
				msg := "build failed; the last good version keeps serving"
				if st.version == "" {
					msg = "build failed; the plugin is not loaded"
				}
				r.log.Error(msg, "plugin", name, "source", w.Source, "error", err)
				return "", err
			}
			st.srcFailed = false
			r.log.Info("built", "plugin", name, "source", w.Source, "time", time.Since(start).Round(time.Millisecond))
		} else if st.srcFailed {
			return "", fmt.Errorf("plugin %q: source unchanged since its build failed", name)
		}
	}
	wasm, err := plugin.ReadModule(w.Spec.Path)
	if err != nil {
		if st.version == "" {
			r.log.Error("plugin refused", "plugin", name, "path", w.Spec.Path, "error", err)
		}
		return "", fmt.Errorf("plugin %q: %w", name, err)
	}
	version := plugin.Version(wasm)
	spec := w.Spec
	spec.Wasm = nil
	if version == st.version && reflect.DeepEqual(spec, st.spec) {
		return "unchanged", nil
	}
	if version == st.refused && reflect.DeepEqual(spec, st.refusedAt) {
		return "", fmt.Errorf("plugin %q: version %s was refused before", name, version)
	}
	load := spec
	load.Wasm = wasm
	if err := r.h.Load(ctx, load); err != nil {
		st.refused, st.refusedAt = version, spec
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
