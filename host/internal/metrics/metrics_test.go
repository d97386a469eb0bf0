package metrics

import (
	"testing"
	"time"
)

// TestHooksAllocateNothing checks the promise of the package: once a
// subject's, policy's and route's handles are made, what a message does
// to them allocates nothing.
func TestHooksAllocateNothing(t *testing.T) {
	s := New()
	p := s.Plugin("echo")
	pol := s.Policy("auth")
	rt := s.Route("GET /x")
	p.Subject("echo")
	p.Sent("out", false)
	rt.Done(200, time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() {
		sj := p.Subject("echo")
		p.Begin()
		pol.Decided(Allow, time.Microsecond)
		p.Handled(time.Microsecond)
		p.Sent("out", false)
		p.End(sj, OK, 0, time.Millisecond)
		rt.Done(200, time.Millisecond)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
	var none *Plugin
	none.Begin()
	none.End(nil, OK, 0, 0) // a host without metrics holds nil handles
}

func TestStatsMatchCounters(t *testing.T) {
	p := New().Plugin("echo")
	sj := p.Subject("echo.>")
	for _, o := range []Outcome{OK, OK, Status4xx, FaultTrap} {
		p.Begin()
		p.End(sj, o, 0, 2*time.Millisecond)
	}
	st := p.Stats()
	if len(st) != 1 || st[0].Requests != 4 || st[0].Errors != 2 || st[0].Time != 8*time.Millisecond {
		t.Fatalf("stats: %+v", st)
	}
}

// BenchmarkHooks is what the metrics add to one message with one policy:
// the handles' lookups and updates, without the clock reads around them.
func BenchmarkHooks(b *testing.B) {
	s := New()
	p := s.Plugin("echo")
	pol := s.Policy("auth")
	p.Subject("echo")
	b.ReportAllocs()
	for b.Loop() {
		sj := p.Subject("echo")
		p.Begin()
		s.Policy("auth")
		pol.Decided(Allow, time.Microsecond)
		p.Handled(time.Microsecond)
		p.End(sj, OK, 0, time.Millisecond)
	}
}
