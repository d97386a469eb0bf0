package host

import (
	"sort"
	"sync"
	"time"
)

// Readiness says whether a host takes traffic and, when something is not
// ready, what and why: the answer behind the admin endpoint's /readyz.
type Readiness struct {
	// Ready is Host.Ready and a connected bus: the host takes traffic.
	Ready bool `json:"ready"`
	// Held is set while a host started with Options.HoldTraffic waits for
	// MarkReady (trellis run: its configuration's first apply).
	Held bool `json:"held,omitempty"`
	// BusConnected is false while the host's NATS connection is down.
	BusConnected bool `json:"bus_connected"`
	// Plugins are the plugins not ready, sorted by name: each one an
	// Apply is preparing now, and each one whose last version was refused
	// with no version serving.
	Plugins []PluginReadiness `json:"plugins,omitempty"`
}

// PluginReadiness is one plugin that is not serving yet, and why.
type PluginReadiness struct {
	Plugin string `json:"plugin"`
	// State is one of the PluginState constants.
	State PluginState `json:"state"`
	// Since is when the plugin entered State.
	Since time.Time `json:"since"`
	// Reason is why a plugin was refused: the refusal's text, which names
	// the file and what is wrong.
	Reason string `json:"reason,omitempty"`
}

// PluginState is where a plugin that is not serving stands.
type PluginState string

// The states of a plugin not serving.
const (
	// StateQueued: an Apply will prepare it once a preparation slot frees
	// (at most GOMAXPROCS prepare at once).
	StateQueued PluginState = "queued"
	// StateLoading: being verified, compiled and started.
	StateLoading PluginState = "loading"
	// StateBinding: prepared, its subscriptions or durable consumer being
	// made, about to serve.
	StateBinding PluginState = "binding"
	// StateRefused: its last version was refused and none serves.
	StateRefused PluginState = "refused"
)

// preparations tracks the plugins Applies are preparing, for Readiness.
// Two Applies may prepare one name at once, so entries are keyed by the
// preparation, not the name.
type preparations struct {
	mu sync.Mutex
	m  map[*prepared]*preparation
	// refused holds each plugin's last refusal until a version of it
	// serves or it is unloaded.
	refused map[string]Event
}

type preparation struct {
	state PluginState
	since time.Time
}

func (ps *preparations) set(todo []*prepared, state PluginState) {
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = map[*prepared]*preparation{}
	}
	for _, pr := range todo {
		ps.m[pr] = &preparation{state: state, since: now}
	}
}

// refuse records e, a refusal of e.Plugin.
func (ps *preparations) refuse(e Event) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.refused == nil {
		ps.refused = map[string]Event{}
	}
	ps.refused[e.Plugin] = e
}

// forget drops name's refusal: a version of it serves, or it is gone.
func (ps *preparations) forget(name string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.refused, name)
}

// wasRefused reports whether name's last version was refused and no
// version of it has served or been unloaded since.
func (ps *preparations) wasRefused(name string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, ok := ps.refused[name]
	return ok
}

func (ps *preparations) done(todo []*prepared) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, pr := range todo {
		delete(ps.m, pr)
	}
}

// Readiness reports whether the host takes traffic and lists the plugins
// that do not serve yet, with why. It takes the host's locks briefly and
// is meant for probes and dashboards, not a message's path.
func (h *Host) Readiness() Readiness {
	r := Readiness{Held: !h.ready.Load(), BusConnected: h.bus.Connected()}
	r.Ready = !r.Held && r.BusConnected
	seen := map[string]bool{}
	h.preparing.mu.Lock()
	for pr, p := range h.preparing.m {
		name := pr.spec.Name
		if seen[name] {
			continue
		}
		seen[name] = true
		r.Plugins = append(r.Plugins, PluginReadiness{Plugin: name, State: p.state, Since: p.since})
	}
	var refused []Event
	for name, e := range h.preparing.refused {
		if !seen[name] {
			refused = append(refused, e)
		}
	}
	h.preparing.mu.Unlock()
	h.mu.Lock()
	for _, e := range refused {
		if h.bindings[e.Plugin] == nil {
			r.Plugins = append(r.Plugins, PluginReadiness{Plugin: e.Plugin, State: StateRefused, Since: e.Time, Reason: e.Detail})
		}
	}
	h.mu.Unlock()
	sort.Slice(r.Plugins, func(i, j int) bool { return r.Plugins[i].Plugin < r.Plugins[j].Plugin })
	return r
}
