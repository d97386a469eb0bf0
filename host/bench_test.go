package host_test

import (
	"bytes"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// BenchmarkRequestReply compares request/reply through a Wasm echo plugin
// with a native Go responder on the same embedded server, in one run. The
// client is a nats.go client over TCP, as any outside program would be.
// "seq" is one requester; "par16" is 16 concurrent requesters.
func BenchmarkRequestReply(b *testing.B) {
	h := trellistest.NewHost(b)
	h.Load("echo-wat", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"bench.wat"} })
	h.Load("echo-go", trellistest.Wasm(b, echoSrc), func(s *host.Spec) { s.Subjects = []string{"bench.go"} })
	// The same WAT echo with deadlines off (timeout "none"): what an operator
	// trades for the per-call deadline.
	h.Load("echo-wat-nodeadline", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) {
		s.Subjects = []string{"bench.wat-nodeadline"}
		s.Timeout = -1
	})
	native, err := h.Conn().QueueSubscribe("bench.native", "native", func(m *nats.Msg) { m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer native.Unsubscribe()
	h.Conn().Flush()
	payload := bytes.Repeat([]byte("x"), 100)

	for _, target := range []string{"native", "wat", "wat-nodeadline", "go"} {
		subject := "bench." + target
		b.Run(target+"/seq", func(b *testing.B) {
			nc := h.Client()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m, err := nc.Request(subject, payload, 5*time.Second)
				if err != nil || len(m.Data) != len(payload) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(target+"/par16", func(b *testing.B) {
			nc := h.Client()
			var failed atomic.Int64
			b.SetParallelism(max(1, 16/nprocs())) // 16 goroutines in all
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m, err := nc.Request(subject, payload, 5*time.Second)
					if err != nil || len(m.Data) != len(payload) {
						failed.Add(1)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
		})
	}
}

// BenchmarkRequestReplyInterleaved is the 16-requester comparison of
// BenchmarkRequestReply made robust to a machine whose speed drifts: it
// alternates bursts of 1,600 requests to the native responder and to the
// Wasm echo, many times over, so both see the same machine, and reports
// each one's rate and the ratio. b.N requests go to each. The two take
// turns going first, since the second burst of a pair runs a little
// slower (after the first one's garbage): the sub-benchmark "native"
// compares the native responder with a second native responder on
// another subject, and shows what the method itself reads for two equal
// responders. With TRELLIS_BENCH_METRICS=off in the environment the host
// runs without its Prometheus metrics (Options.DisableMetrics), to see
// what they cost.
func BenchmarkRequestReplyInterleaved(b *testing.B) {
	h := trellistest.NewHost(b, func(o *host.Options) { o.DisableMetrics = os.Getenv("TRELLIS_BENCH_METRICS") == "off" })
	h.Load("echo-wat", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"bench.wat"} })
	h.Load("echo-go", trellistest.Wasm(b, echoSrc), func(s *host.Spec) { s.Subjects = []string{"bench.go"} })
	for _, subject := range []string{"bench.native", "bench.native2"} {
		sub, err := h.Conn().QueueSubscribe(subject, "native", func(m *nats.Msg) { m.Respond(m.Data) })
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	h.Conn().Flush()
	nc := h.Client()
	payload := bytes.Repeat([]byte("x"), 100)

	const requesters, burst = 16, 1600
	var failed atomic.Int64
	run := func(subject string, n int) time.Duration {
		return requestBurst(nc, subject, payload, n, requesters, &failed)
	}
	for _, target := range []string{"wat", "go", "native"} {
		name := target // the responder compared with the native one
		if target == "native" {
			name = "native2"
		}
		subject := "bench." + name
		b.Run(target, func(b *testing.B) {
			run("bench.native", burst) // warm both up
			run(subject, burst)
			var tNative, tOther time.Duration
			b.ResetTimer()
			for round, done := 0, 0; done < b.N; round, done = round+1, done+burst {
				n := min(burst, b.N-done)
				if round%2 == 0 {
					tNative += run("bench.native", n)
					tOther += run(subject, n)
				} else {
					tOther += run(subject, n)
					tNative += run("bench.native", n)
				}
			}
			b.ReportMetric(float64(b.N)/tNative.Seconds(), "native-msgs/s")
			b.ReportMetric(float64(b.N)/tOther.Seconds(), name+"-msgs/s")
			b.ReportMetric(100*tNative.Seconds()/tOther.Seconds(), "%-of-native")
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
		})
	}
}

// countedBurst is requestBurst that also returns how many heap
// allocations the whole process made meanwhile.
func countedBurst(nc *nats.Conn, subject string, payload []byte, n, g int, failed *atomic.Int64) (time.Duration, uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	took := requestBurst(nc, subject, payload, n, g, failed)
	runtime.ReadMemStats(&ms)
	return took, ms.Mallocs - mallocs
}

// requestBurst sends n requests of payload to subject over nc from g
// goroutines, counting in failed each that fails or comes back with
// another length, and returns how long that took.
func requestBurst(nc *nats.Conn, subject string, payload []byte, n, g int, failed *atomic.Int64) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for ; k > 0; k-- {
				m, err := nc.Request(subject, payload, 5*time.Second)
				if err != nil || len(m.Data) != len(payload) {
					failed.Add(1)
				}
			}
		}((n + i) / g)
	}
	wg.Wait()
	return time.Since(start)
}
