package metrics

import (
	"strconv"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/abi"
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

// TestRefusalsAreBoundedPerPolicy: a policy that names a new reason for
// every rejection gets abi.MaxRefusalReasons series, the rest counted
// under OtherReason; a known reason costs no allocation.
func TestRefusalsAreBoundedPerPolicy(t *testing.T) {
	s := New()
	p := s.Policy("auth")
	for i := range 3 * abi.MaxRefusalReasons {
		p.Refused("r" + strconv.Itoa(i))
	}
	p.Refused("r0")
	series := map[string]float64{}
	mfs, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "trellis_policy_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					series[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if len(series) != abi.MaxRefusalReasons+1 {
		t.Fatalf("%d series, want %d", len(series), abi.MaxRefusalReasons+1)
	}
	if series["r0"] != 2 || series[OtherReason] != 2*abi.MaxRefusalReasons {
		t.Fatalf("r0 %v, %s %v", series["r0"], OtherReason, series[OtherReason])
	}
	if allocs := testing.AllocsPerRun(1000, func() { p.Refused("r1") }); allocs != 0 {
		t.Fatalf("%v allocations per known reason", allocs)
	}
	var none *Policy
	none.Refused("x")
}
