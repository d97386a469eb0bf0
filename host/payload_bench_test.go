package host_test

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// BenchmarkLargePayload is request/reply through the host with large
// payloads: 4 requesters over TCP send 64 KiB or 1 MiB to the WAT echo and
// check each reply's length. At these sizes the garbage collector does
// much of the work (nats-server and nats.go allocate a few times each
// payload per request), so the benchmark is meant to be run under
// different GOGC and GOMEMLIMIT settings, which it reports as metrics
// (gogc, -1 for off; memlimit-MiB, 0 for none) with the GC cycles per
// 1,000 requests, the process's CPU time per request (client, server and
// host are all in it; steadier than the wall clock on a shared machine) and
// its peak resident memory (Linux).
//
//	GOGC=400 go test -run '^$' -bench LargePayload -benchtime 2000x ./host/
func BenchmarkLargePayload(b *testing.B) {
	h := trellistest.NewHost(b)
	h.Load("echo-wat", trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) { s.Subjects = []string{"bench.large"} })
	nc := h.Client()
	const requesters = 4
	for _, size := range []struct {
		name string
		n    int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			payload := bytes.Repeat([]byte("x"), size.n)
			var failed atomic.Int64
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu0 := cpuTime()
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := 0; g < requesters; g++ {
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					for ; k > 0; k-- {
						m, err := nc.Request("bench.large", payload, 10*time.Second)
						if err != nil || len(m.Data) != len(payload) {
							failed.Add(1)
						}
					}
				}((b.N + g) / requesters)
			}
			wg.Wait()
			b.StopTimer()
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&after)
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
			b.ReportMetric(1000*float64(after.NumGC-before.NumGC)/float64(b.N), "GCs/1k-req")
			if rss := peakRSS(); rss > 0 {
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			}
			b.ReportMetric(float64(gogc()), "gogc")
			b.ReportMetric(float64(memLimit())/(1<<20), "memlimit-MiB")
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns the process's peak resident memory in bytes (VmHWM), or
// 0 where /proc is not there.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// gogc returns the GC percent in force (-1: off), read by setting it and
// setting it back.
func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// memLimit returns the soft memory limit in force, 0 for none.
func memLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l != 1<<63-1 {
		return l
	}
	return 0
}
