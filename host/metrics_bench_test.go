package host_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// BenchmarkMetricsOverhead measures what the host's metrics cost: two
// hosts, one with metrics and one with Options.DisableMetrics, serve the
// same WAT echo (alone, and behind one allow.wat policy), and the
// benchmark alternates bursts of requests to each so that both see the
// same machine. It reports each one's rate, the ratio (on as % of off)
// and the heap allocations per request of each, which must be equal: the
// metrics allocate nothing on a message's path.
func BenchmarkMetricsOverhead(b *testing.B) {
	type side struct {
		nc *nats.Conn
	}
	mk := func(disable bool) side {
		h := trellistest.NewHost(b, func(o *host.Options) { o.DisableMetrics = disable })
		h.Load("allow", trellistest.Wasm(b, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
		h.Load("echo", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"bench.echo"} })
		h.Load("chained", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) {
			s.Subjects = []string{"bench.chain"}
			s.Policies = []host.PolicyRef{{Name: "allow"}}
		})
		return side{nc: h.Client()}
	}
	on, off := mk(false), mk(true)
	payload := bytes.Repeat([]byte("x"), 100)
	var failed atomic.Int64

	run := func(nc *nats.Conn, subject string, n, g int) (time.Duration, uint64) {
		return countedBurst(nc, subject, payload, n, g, &failed)
	}
	for _, c := range []struct {
		name, subject string
		goroutines    int
	}{
		{"echo/seq", "bench.echo", 1},
		{"echo/par16", "bench.echo", 16},
		{"policy1/seq", "bench.chain", 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			burst := 200 * c.goroutines
			run(on.nc, c.subject, burst, c.goroutines) // warm both up
			run(off.nc, c.subject, burst, c.goroutines)
			var tOn, tOff time.Duration
			var aOn, aOff uint64
			b.ResetTimer()
			for done, i := 0, 0; done < b.N; done, i = done+burst, i+1 {
				n := min(burst, b.N-done)
				// Which goes first alternates, so that neither always
				// runs after the other's garbage.
				for j := range 2 {
					if (i+j)%2 == 0 {
						t, a := run(off.nc, c.subject, n, c.goroutines)
						tOff, aOff = tOff+t, aOff+a
					} else {
						t, a := run(on.nc, c.subject, n, c.goroutines)
						tOn, aOn = tOn+t, aOn+a
					}
				}
			}
			b.ReportMetric(float64(b.N)/tOn.Seconds(), "on-msgs/s")
			b.ReportMetric(float64(b.N)/tOff.Seconds(), "off-msgs/s")
			b.ReportMetric(100*tOff.Seconds()/tOn.Seconds(), "%-of-off")
			b.ReportMetric(float64(aOn)/float64(b.N), "on-allocs/req")
			b.ReportMetric(float64(aOff)/float64(b.N), "off-allocs/req")
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
		})
	}
}
