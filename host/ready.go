package host

// Readiness, for an orchestrator's readiness probe (the admin endpoint's
// /readyz): a host is ready once it serves what it was started to serve.
// A host started with Options.HoldTraffic is not ready until its owner
// says so with MarkReady, which `trellis run` does once the config's
// first generation is applied and `trellis dev` once the directory's
// plugins are loaded; any other host is ready from New on.

// MarkReady marks the host ready: Ready reports true from now on (until
// Close). It may be called more than once.
func (h *Host) MarkReady() { h.ready.Store(true) }

// Ready reports whether the host serves: marked ready (see
// Options.HoldTraffic), not closing, and connected to its bus.
func (h *Host) Ready() bool {
	if !h.ready.Load() {
		return false
	}
	h.mu.Lock()
	closing := h.closing
	h.mu.Unlock()
	return !closing && h.bus.Connected()
}
