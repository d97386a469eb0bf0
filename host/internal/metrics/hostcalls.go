package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HostCall is a host function that leaves the plugin: a round trip to the
// bus or the key-value store. trellis_host_call_duration_seconds labels
// each with its ABI name.
type HostCall uint8

// The host calls timed.
const (
	CallPublish HostCall = iota
	CallRequest
	CallKVGet
	CallKVSet
	CallKVIncr
	CallKVDelete
	CallKVCAS
	numHostCalls
)

var hostCallNames = [numHostCalls]string{"publish", "request", "kv_get", "kv_set", "kv_incr", "kv_delete", "kv_cas"}

// String is the call's ABI name (abi.FuncPublish and so on).
func (c HostCall) String() string { return hostCallNames[c] }

// KVOp returns the op label of a kv_* call (get, set, incr, delete, cas),
// or "" for another call.
func (c HostCall) KVOp() string {
	if c < CallKVGet {
		return ""
	}
	return hostCallNames[c][len("kv_"):]
}

// KVResult is how a KV operation ended, as trellis_kv_operations_total
// labels it.
type KVResult uint8

// The KV results.
const (
	KVOK       KVResult = iota // done
	KVNotFound                 // no such key (a get, incr of nothing is ok)
	KVConflict                 // a cas whose expected value did not match
	KVError                    // anything else: a bad value, a timeout, the bus
	numKVResults
)

var kvResultNames = [numKVResults]string{"ok", "not_found", "conflict", "error"}

// HostCalls is one plugin's host-call handles, made when the plugin loads
// so that a call looks nothing up. Its methods do nothing on a nil
// HostCalls (metrics off).
type HostCalls struct {
	seconds [numHostCalls]prometheus.Observer
	kv      [numHostCalls - CallKVGet][numKVResults]prometheus.Counter
}

// HostCalls returns the host-call handles of plugin name (a handler or a
// policy), made on first use; nil when s is nil.
func (s *Set) HostCalls(name string) *HostCalls {
	if s == nil {
		return nil
	}
	s.hostCallsOnce.Do(func() {
		s.hostCallSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "trellis_host_call_duration_seconds",
			Help:    "Time of one host call that leaves the plugin (publish, request, kv_get, kv_set, kv_incr, kv_delete, kv_cas), by plugin and call.",
			Buckets: latencyBuckets,
		}, []string{"plugin", "call"})
		s.kvOps = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_kv_operations_total",
			Help: "Key-value operations plugins made, by plugin, op (get, set, incr, delete, cas) and result (ok, not_found, conflict, error).",
		}, []string{"plugin", "op", "result"})
		s.Registry.MustRegister(s.hostCallSeconds, s.kvOps)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if hc := s.hostCalls[name]; hc != nil {
		return hc
	}
	hc := &HostCalls{}
	for c := HostCall(0); c < numHostCalls; c++ {
		hc.seconds[c] = s.hostCallSeconds.WithLabelValues(name, c.String())
		if op := c.KVOp(); op != "" {
			for r := KVResult(0); r < numKVResults; r++ {
				hc.kv[c-CallKVGet][r] = s.kvOps.WithLabelValues(name, op, kvResultNames[r])
			}
		}
	}
	if s.hostCalls == nil {
		s.hostCalls = map[string]*HostCalls{}
	}
	s.hostCalls[name] = hc
	return hc
}

// Done observes call c, which took d.
func (hc *HostCalls) Done(c HostCall, d time.Duration) {
	if hc != nil {
		hc.seconds[c].Observe(d.Seconds())
	}
}

// KV observes kv_* call c, which took d and ended with r.
func (hc *HostCalls) KV(c HostCall, r KVResult, d time.Duration) {
	if hc == nil || c < CallKVGet {
		return
	}
	hc.seconds[c].Observe(d.Seconds())
	hc.kv[c-CallKVGet][r].Inc()
}
