package metrics

import (
	"testing"
	"time"
)

// Timing a host call and counting a KV operation allocate nothing, and a
// plugin's handles are made once: asking again returns the same.
func TestHostCallsAllocateNothing(t *testing.T) {
	s := New()
	hc := s.HostCalls("relay")
	if s.HostCalls("relay") != hc {
		t.Fatal("a plugin's host-call handles were made twice")
	}
	allocs := testing.AllocsPerRun(1000, func() {
		hc.Done(CallPublish, time.Microsecond)
		hc.KV(CallKVGet, KVNotFound, time.Microsecond)
		hc.KV(CallKVCAS, KVConflict, time.Microsecond)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per call", allocs)
	}
	var none *HostCalls // a host without metrics
	none.Done(CallRequest, 0)
	none.KV(CallKVSet, KVOK, 0)
	if CallKVIncr.KVOp() != "incr" || CallPublish.KVOp() != "" || CallKVDelete.String() != "kv_delete" {
		t.Fatal("call names")
	}
	var nilSet *Set
	if nilSet.HostCalls("x") != nil {
		t.Fatal("handles from a nil set")
	}
}
