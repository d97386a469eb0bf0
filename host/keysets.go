package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/jwks"
)

// KeySource is a JSON Web Key Set the host fetches for a policy
// (Spec.KeySources), so that a plugin verifying tokens needs no network
// access: the host puts the set, reduced to public signature keys, in the
// plugin's config under KeySetConfigKey(Name), and the OpenID issuer, if
// given, under KeySetIssuerConfigKey(Name); a spec whose Config sets
// either itself is refused. When a refresh finds the set
// changed, the host loads the plugin again with the new config, as Load
// does any new version: atomically, losing no message. Until a first fetch
// succeeds the plugin gets an empty set.
type KeySource struct {
	// Name names the set in the plugin's config: 1 to 64 letters, digits,
	// '.', '_', '-', '@' or '+'.
	Name string
	// URI is the set's URL (an issuer's jwks_uri).
	URI string
	// Issuer is an OpenID Connect issuer: when URI is empty, the set is
	// found through its discovery document, whose issuer must match.
	Issuer string
	// MinRefresh and MaxRefresh bound the time between two fetches
	// (defaults 1m and 1h); within them a set is refetched when its
	// Cache-Control max-age runs out, and after a failure with backoff.
	// A policy's rejection for abi.RefusalUnknownKey (a token signed with
	// a key the set lacks) asks for a fetch too: at once when the last one
	// is MinRefresh old, else when it will be, one fetch however many
	// tokens ask.
	MinRefresh, MaxRefresh time.Duration
}

// KeySetConfigKey is the config key of the key set Name.
func KeySetConfigKey(name string) string { return "jwks." + name }

// KeySetIssuerConfigKey is the config key of the issuer of the key set Name.
func KeySetIssuerConfigKey(name string) string { return "jwks." + name + ".issuer" }

// keySetFetchTimeout bounds the first fetch of a set, which Load waits for.
const keySetFetchTimeout = 10 * time.Second

// keySets runs the key-set watchers of the host's plugins. Load calls
// prepare, Unload forget, Close close.
type keySets struct {
	mu      sync.Mutex
	byName  map[string]*keyWatch
	wg      sync.WaitGroup
	stopped bool
	// serving is a copy of byName, replaced whole under mu whenever byName
	// changes: a message's path (refreshKeys) reads it with no lock.
	serving atomic.Pointer[map[string]*keyWatch]
}

// publish makes serving a copy of byName; the caller holds mu.
func (ks *keySets) publish() {
	m := maps.Clone(ks.byName)
	ks.serving.Store(&m)
}

// refreshKeys asks every key set of policy name to be fetched again, at
// most once per its MinRefresh (jwks.Watcher.Refresh): a policy refused a
// token whose key none of them holds (abi.RefusalUnknownKey). It never
// blocks, and does nothing for a plugin without key sets.
func (h *Host) refreshKeys(name string) {
	m := h.keys.serving.Load()
	if m == nil {
		return
	}
	if w := (*m)[name]; w != nil {
		for _, jw := range w.watchers {
			jw.Refresh()
		}
	}
}

// keyWatch is one plugin's key sets.
type keyWatch struct {
	sources  []KeySource
	watchers []*jwks.Watcher
	stop     context.CancelFunc
	// loadMu orders the loads of the plugin: the one a refresh makes and
	// the one its caller makes never cross, so the spec loaded last wins.
	loadMu sync.Mutex
	// last is the spec last loaded, without the keys: a refresh loads it
	// again with new ones.
	last *Spec
	// changed is signalled when a set changed.
	changed chan struct{}
}

// CheckKeySources reports the first key source that cannot work: a bad
// name, a name given twice, no URL or one that is not http(s), refresh
// bounds in the wrong order.
func CheckKeySources(sources []KeySource) error {
	seen := map[string]bool{}
	for _, ks := range sources {
		if !validKeySetName(ks.Name) {
			return fmt.Errorf("key set %.64q: want 1 to 64 letters, digits, '.', '_', '-', '@' or '+'", ks.Name)
		}
		if seen[ks.Name] {
			return fmt.Errorf("key set %q given twice", ks.Name)
		}
		seen[ks.Name] = true
		if err := ks.source().Check(); err != nil {
			return fmt.Errorf("key set %q: %w", ks.Name, err)
		}
	}
	return nil
}

// validateKeySources checks spec's key sources, and that its config
// leaves the host's keys to the host.
func validateKeySources(spec Spec) error {
	if err := CheckKeySources(spec.KeySources); err != nil {
		return fmt.Errorf("plugin %q: %w", spec.Name, err)
	}
	for _, ks := range spec.KeySources {
		owned := []string{KeySetConfigKey(ks.Name)}
		if ks.Issuer != "" {
			owned = append(owned, KeySetIssuerConfigKey(ks.Name))
		}
		for _, key := range owned {
			if _, set := spec.Config[key]; set {
				return fmt.Errorf("plugin %q: config key %q is the host's to set from key set %q", spec.Name, key, ks.Name)
			}
		}
	}
	return nil
}

func validKeySetName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@' || c == '+') {
			return false
		}
	}
	return true
}

func (ks KeySource) source() jwks.Source {
	return jwks.Source{URI: ks.URI, Issuer: ks.Issuer, MinRefresh: ks.MinRefresh, MaxRefresh: ks.MaxRefresh}
}

// prepare is called by Load first. For a spec with key sources it starts
// (or keeps) the plugin's watchers, fetching each set the first time, and
// returns the spec with the sets in its config; a load a refresh asked for
// (spec.keyRefresh) gets the spec last loaded instead. The caller must
// call done with the outcome of its load.
func (h *Host) prepareKeys(ctx context.Context, spec Spec) (Spec, func(error), error) {
	ks := &h.keys
	ks.mu.Lock()
	w := ks.byName[spec.Name]
	ks.mu.Unlock()
	if spec.keyRefresh {
		if w == nil {
			return spec, nil, fmt.Errorf("plugin %q: key refresh after the plugin stopped using key sets", spec.Name)
		}
	} else if len(spec.KeySources) == 0 {
		if w == nil {
			return spec, func(error) {}, nil
		}
		// Keys no more: stop watching once this spec serves.
		return spec, func(err error) {
			if err == nil {
				h.forgetKeys(spec.Name, w)
			}
		}, nil
	} else {
		if err := validateKeySources(spec); err != nil {
			return spec, nil, err
		}
		if w == nil || !slices.Equal(w.sources, spec.KeySources) {
			nw, err := h.watchKeys(ctx, spec)
			if err != nil {
				return spec, nil, err
			}
			if w != nil {
				h.forgetKeys(spec.Name, w)
			}
			w = nw
		}
	}
	w.loadMu.Lock()
	base := spec
	if spec.keyRefresh {
		if w.last == nil {
			w.loadMu.Unlock()
			return spec, nil, fmt.Errorf("plugin %q: nothing loaded to refresh", spec.Name)
		}
		base = *w.last
	}
	filled := base
	filled.Config = maps.Clone(base.Config)
	if filled.Config == nil {
		filled.Config = map[string]string{}
	}
	for i, src := range w.sources {
		set, ok := w.watchers[i].Current()
		if ok {
			filled.Config[KeySetConfigKey(src.Name)] = string(set.JSON)
		} else {
			filled.Config[KeySetConfigKey(src.Name)] = string(jwks.Empty)
		}
		if src.Issuer != "" {
			filled.Config[KeySetIssuerConfigKey(src.Name)] = src.Issuer
		}
	}
	return filled, func(err error) {
		if err == nil {
			w.last = &base
		}
		w.loadMu.Unlock()
	}, nil
}

// watchKeys fetches spec's key sets once, waiting at most
// keySetFetchTimeout (a set that fails is empty until a refresh gets it),
// and starts the goroutine that refreshes them.
func (h *Host) watchKeys(ctx context.Context, spec Spec) (*keyWatch, error) {
	ks := &h.keys
	w := &keyWatch{sources: slices.Clone(spec.KeySources), changed: make(chan struct{}, 1)}
	log := h.log.Named(spec.Name)
	for _, src := range w.sources {
		jw := jwks.NewWatcher(src.source(), log.With("key_set", src.Name), func(jwks.Set) {
			select {
			case w.changed <- struct{}{}:
			default:
			}
		})
		fctx, cancel := context.WithTimeout(ctx, keySetFetchTimeout)
		if _, _, err := jw.Fetch(fctx); err != nil {
			log.Error("key set not fetched; its tokens are refused until it is", "key_set", src.Name, "error", err)
		}
		cancel()
		w.watchers = append(w.watchers, jw)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(h.life))
	w.stop = stop
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.stopped {
		stop()
		return nil, errors.New("host is closing")
	}
	if ks.byName == nil {
		ks.byName = map[string]*keyWatch{}
	}
	ks.byName[spec.Name] = w
	ks.publish()
	for _, jw := range w.watchers {
		ks.wg.Add(1)
		go func() { defer ks.wg.Done(); jw.Run(wctx) }()
	}
	ks.wg.Add(1)
	go func() { defer ks.wg.Done(); h.reloadOnKeyChange(wctx, spec.Name, w) }()
	return w, nil
}

// reloadOnKeyChange loads the plugin again whenever one of its sets
// changes, with the spec it was last loaded with.
func (h *Host) reloadOnKeyChange(ctx context.Context, name string, w *keyWatch) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		}
		err := h.Load(ctx, Spec{Name: name, keyRefresh: true})
		if err != nil && ctx.Err() == nil {
			h.log.Error("reload with new keys failed; the version serving keeps its keys", "plugin", name, "error", err)
		} else if err == nil {
			h.log.Info("plugin reloaded with new keys", "plugin", name)
		}
	}
}

// forgetKeys stops w, the watchers of plugin name, if they are still its.
func (h *Host) forgetKeys(name string, w *keyWatch) {
	ks := &h.keys
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if w == nil {
		w = ks.byName[name]
	}
	if w != nil && ks.byName[name] == w {
		delete(ks.byName, name)
		ks.publish()
	}
	if w != nil {
		w.stop()
	}
}

// closeKeys stops every watcher and waits for their goroutines.
func (h *Host) closeKeys() {
	ks := &h.keys
	ks.mu.Lock()
	ks.stopped = true
	for name, w := range ks.byName {
		w.stop()
		delete(ks.byName, name)
	}
	ks.publish()
	ks.mu.Unlock()
	ks.wg.Wait()
}

// fillKeys runs prepareKeys for every spec c loads, in name order (each
// holds its plugin's load lock until the change is done), and returns c
// with the key sets in their configs and the function to call with the
// change's outcome. A name given twice is refused here, before any lock.
func (h *Host) fillKeys(ctx context.Context, c Change) (Change, func(error), error) {
	order := make([]int, len(c.Load))
	seen := map[string]bool{}
	for i, spec := range c.Load {
		if seen[spec.Name] {
			return c, nil, fmt.Errorf("plugin %q: named twice in one change", spec.Name)
		}
		seen[spec.Name] = true
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(c.Load[a].Name, c.Load[b].Name) })
	load := slices.Clone(c.Load)
	var dones []func(error)
	finish := func(err error) {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i](err)
		}
	}
	for _, i := range order {
		filled, done, err := h.prepareKeys(ctx, load[i])
		if err != nil {
			finish(err)
			return c, nil, err
		}
		load[i] = filled
		dones = append(dones, done)
	}
	c.Load = load
	return c, finish, nil
}
