// Package watch tells when anything under a set of paths has changed, after
// the changes have settled.
//
// It does not say what changed: callers rescan and compare contents, which
// is what makes every way of replacing a file look the same — written in
// place, renamed over, deleted, a whole directory swapped, or a symlink
// re-pointed as Kubernetes does for ConfigMap volumes. A change is reported
// once no event has arrived for the debounce interval, so a file still being
// written is not read half-done (and callers check what they read anyway).
package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"
)

// DefaultDebounce is how long events must pause before a change is reported.
const DefaultDebounce = 150 * time.Millisecond

// Options configure a Watcher.
type Options struct {
	// Paths are files or directories to watch. A directory is watched with
	// everything below it when Recursive is set.
	Paths []string
	// Recursive watches every directory below a directory of Paths (or
	// below the directory of a path that does not exist yet), skipping
	// those Skip names. A file of Paths is watched through its directory
	// alone, not what is below it: a config file beside a JetStream store
	// must not have the store's every write watched.
	Recursive bool
	// Skip reports directories not to descend into (default: hidden ones,
	// node_modules, target).
	Skip func(name string) bool
	// Debounce is DefaultDebounce when zero.
	Debounce time.Duration
	// Poll, if positive, reports a change every Poll interval even without
	// events: a safety net for file systems that do not deliver them
	// (some network and overlay mounts).
	Poll time.Duration
	// Logger (default: discard).
	Logger hclog.Logger
}

// Watcher watches paths with fsnotify.
type Watcher struct {
	opts  Options
	fsw   *fsnotify.Watcher
	log   hclog.Logger
	dirs  map[string]os.FileInfo // directories watched now, and which ones they were
	roots []root                 // directories that must be watched, and their parents
}

// root is a directory to watch, with everything below it when deep.
type root struct {
	dir  string
	deep bool
}

// New starts watching. Close it, or end Run's context, to stop.
func New(opts Options) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Skip == nil {
		opts.Skip = DefaultSkip
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &Watcher{opts: opts, fsw: fsw, log: log, dirs: map[string]os.FileInfo{}}
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			fsw.Close()
			return nil, err
		}
		dir, deep := abs, opts.Recursive
		if st, err := os.Stat(abs); err != nil {
			// Not there yet: through its directory, and below it, where
			// it may appear as a file or a directory.
			dir = filepath.Dir(abs)
		} else if !st.IsDir() {
			// A file is watched through its directory: editors and tools
			// replace files by renaming, which a watch on the file would lose.
			dir, deep = filepath.Dir(abs), false
		}
		// The parent too, so that a directory removed and made again (or
		// swapped by rename) is noticed and watched afresh.
		w.roots = append(w.roots, root{dir: dir, deep: deep}, root{dir: filepath.Dir(dir)})
	}
	w.sync()
	return w, nil
}

// Close stops a watcher that Run is not running (Run closes it when it
// returns). It is safe to call more than once.
func (w *Watcher) Close() error { return w.fsw.Close() }

// DefaultSkip skips hidden directories and build or dependency folders.
func DefaultSkip(name string) bool {
	return strings.HasPrefix(name, ".") || name == "node_modules" || name == "target"
}

// sync adds watches for every directory that should have one and exists,
// forgets those that are gone, and watches afresh a path that now names
// another directory (one renamed over the old, say): inotify follows the
// directory, not the name.
func (w *Watcher) sync() {
	want := map[string]os.FileInfo{}
	for _, r := range w.roots {
		if !r.deep {
			if st, err := os.Stat(r.dir); err == nil && st.IsDir() {
				want[r.dir] = st
			}
			continue
		}
		_ = filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				if p != r.dir && w.opts.Skip(d.Name()) {
					return filepath.SkipDir
				}
				if st, err := os.Stat(p); err == nil {
					want[p] = st
				}
			}
			return nil
		})
	}
	for d, was := range w.dirs {
		if now, ok := want[d]; !ok || !os.SameFile(was, now) {
			_ = w.fsw.Remove(d)
			delete(w.dirs, d)
		}
	}
	for d, st := range want {
		if _, ok := w.dirs[d]; !ok {
			if err := w.fsw.Add(d); err != nil {
				w.log.Warn("cannot watch", "dir", d, "error", err)
				continue
			}
			w.dirs[d] = st
		}
	}
}

// Run calls onChange, on Run's goroutine, each time changes settle, until
// ctx ends or the watcher is closed. onChange may take its time: events
// that arrive meanwhile make one more call afterwards.
func (w *Watcher) Run(ctx context.Context, onChange func(context.Context)) error {
	defer w.fsw.Close()
	var settle *time.Timer
	var settled <-chan time.Time
	var poll <-chan time.Time
	if w.opts.Poll > 0 {
		t := time.NewTicker(w.opts.Poll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if settle == nil {
				settle = time.NewTimer(w.opts.Debounce)
			} else {
				settle.Reset(w.opts.Debounce)
			}
			settled = settle.C
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("watcher closed")
			}
			w.log.Warn("watch error", "error", err)
		case <-settled:
			settled = nil
			w.sync()
			onChange(ctx)
		case <-poll:
			w.sync()
			onChange(ctx)
		}
	}
}
