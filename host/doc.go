// Package host is the Trellis runtime: it owns the bus, the loaded plugins and
// the subscriptions that feed messages to them. A Go program embeds Trellis
// by making a Host with New and loading plugins into it with Load or Apply.
//
// # What is public
//
// An embedder needs these packages, and only these are importable:
//
//	host              the runtime: New, Options, Spec, Load, Apply, Unload, Close
//	host/bus          which NATS the host uses: embedded (the default), a URL,
//	                  or the caller's own connection or server; and its auth
//	host/config       the HCL config file (trellis.hcl) and the loop that
//	                  keeps a host in step with it
//	host/sign         signing modules and verifying their signatures
//	host/admin        the admin endpoint: metrics, probes, pprof, the JSON
//	                  API and the dashboard, to run or to mount
//	host/trellistest  running a plugin against a real embedded host in a test
//	host/dev/...      developer tooling: the dev loop over a directory
//	                  (host/dev), building plugins from source (host/dev/build),
//	                  new plugin skeletons (host/dev/scaffold)
//	abi               the wire contract: host function names, statuses,
//	                  headers and limits (its own module)
//	sdk/go            the guest SDK for Go plugins (its own module)
//
// Everything else is under host/internal and may change without notice: the
// Wasm runtime for one plugin version (internal/plugin, with its module
// checks and interrupt rewrite), the instance pool (internal/pool), the KV
// store (internal/kv), circuit breaker and backoff (internal/resilience),
// the reconciler that reloads changed plugins (internal/reload), the file
// watcher (internal/watch), the SDK conformance suite
// (internal/conformance) and the metrics' handles (internal/metrics). The
// developer tooling sits apart from the runtime: nothing under host/ but
// the dev packages, host/config and host/trellistest imports
// host/dev/build, and the runtime imports none of it.
//
// # A message's path
//
// A message takes one straight path: its subscription's callback puts it in
// the plugin's bounded inbox (when the inbox is full the callback waits, so a
// flood backs up into NATS's pending buffers rather than into memory), and
// one of the plugin's workers, one per pool instance, reads the binding's
// current snapshot (one atomic load: the plugin version, its policies
// resolved to their versions, its resilience settings and breaker) and runs
// the message through the policies and the handler. Loading a new version
// makes it, and the new snapshots of every binding it touches, before it
// publishes them, one atomic store per binding; the old version is closed
// once its calls in flight finish; the subscriptions do not move, so no
// message is lost or handled twice.
package host
