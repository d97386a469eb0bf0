package jwks

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxBackoffSteps caps the backoff after failed fetches at MinRefresh
// times 2^maxBackoffSteps (and at MaxRefresh): a provider that is down is
// asked again within minutes of coming back.
const maxBackoffSteps = 3

// Watcher keeps one key set fresh. Its methods are safe for concurrent use.
type Watcher struct {
	src      Source
	log      hclog.Logger
	onChange func(Set)
	refresh  chan struct{}

	mu      sync.Mutex
	current Set
	have    bool
	last    time.Time // the last fetch attempt
	fails   int       // failed fetches in a row

	// Fetches, Failures and Changes count fetch attempts, failed ones
	// (the last good set kept), and sets that differed from the one before.
	Fetches, Failures, Changes atomic.Int64
}

// NewWatcher returns a Watcher of src that calls onChange, from Run's
// goroutine, with each set that differs from the one before it (the first
// one included). It fetches nothing until Fetch or Run.
func NewWatcher(src Source, log hclog.Logger, onChange func(Set)) *Watcher {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Watcher{src: src.withDefaults(), log: log, onChange: onChange, refresh: make(chan struct{}, 1)}
}

// Current returns the last good set, and false before the first.
func (w *Watcher) Current() (Set, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current, w.have
}

// Refresh asks Run to fetch the set again soon: at once if the last fetch
// was at least MinRefresh ago, else when it will be. Calls in between
// make one fetch. It never blocks.
func (w *Watcher) Refresh() {
	select {
	case w.refresh <- struct{}{}:
	default:
	}
}

// Fetch fetches the set now and reports whether it changed; on failure the
// last good set stays. onChange is not called: the caller has the answer.
func (w *Watcher) Fetch(ctx context.Context) (Set, bool, error) {
	w.Fetches.Add(1)
	set, err := Fetch(ctx, w.src)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = time.Now()
	if err != nil {
		w.fails++
		w.Failures.Add(1)
		w.log.Warn("key set fetch failed; the last good set stays", "uri", w.src.URI, "issuer", w.src.Issuer, "failures", w.fails, "error", err)
		return w.current, false, err
	}
	w.fails = 0
	changed := !w.have || !bytes.Equal(set.JSON, w.current.JSON)
	w.current, w.have = set, true
	if changed {
		w.Changes.Add(1)
		w.log.Info("key set fetched", "uri", w.src.URI, "issuer", w.src.Issuer, "keys", set.Keys, "dropped", set.Dropped, "max_age", set.MaxAge)
	}
	return set, changed, nil
}

// next is when the next fetch is due: the set's max-age after the last
// fetch, within MinRefresh and MaxRefresh; after failures, a backoff from
// MinRefresh doubling up to maxBackoffSteps times.
func (w *Watcher) next() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fails > 0 {
		d := w.src.MinRefresh << min(w.fails-1, maxBackoffSteps)
		return w.last.Add(min(d, w.src.MaxRefresh))
	}
	d := w.current.MaxAge
	if d <= 0 {
		d = w.src.MaxRefresh
	}
	return w.last.Add(max(w.src.MinRefresh, min(d, w.src.MaxRefresh)))
}

func (w *Watcher) earliest() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last.Add(w.src.MinRefresh)
}

// Run refetches the set when it is due or asked to (Refresh) until ctx
// ends, calling onChange with each new set.
func (w *Watcher) Run(ctx context.Context) {
	for {
		due, asked := w.next(), false
		select {
		case <-ctx.Done():
			return
		case <-w.refresh:
			due, asked = w.earliest(), true
		case <-time.After(time.Until(due)):
		}
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		set, changed, err := w.Fetch(ctx)
		if asked && err == nil {
			// At most once per MinRefresh: a flood of forged kids makes
			// one line per interval.
			w.log.Info("key set refetched: a token named a key it lacked", "uri", w.src.URI, "issuer", w.src.Issuer, "changed", changed)
		}
		if err == nil && changed && w.onChange != nil {
			w.onChange(set)
		}
	}
}
