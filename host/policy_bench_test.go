package host_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// percentiles reports p50 and p99 of the samples as benchmark metrics.
func percentiles(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPolicyChain measures request/reply through the WAT echo handler
// behind chains of 0, 1 and 3 policies, over NATS from a TCP client. The
// policies are the smallest possible (allow.wat) so the figure is the host's
// cost per policy; the Go allow policy shows a typical SDK policy.
func BenchmarkPolicyChain(b *testing.B) {
	h := trellistest.NewHost(b)
	h.Load("allow", trellistest.Wasm(b, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
	h.Load("allow2", trellistest.Wasm(b, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
	h.Load("allow3", trellistest.Wasm(b, "testdata/allow.wat"), func(s *host.Spec) { s.Policy = true })
	h.Load("gopolicy", trellistest.Wasm(b, "testdata/testpolicy"), func(s *host.Spec) { s.Policy = true })
	chains := []struct {
		name string
		refs []host.PolicyRef
	}{
		{"policies=0", nil},
		{"policies=1", []host.PolicyRef{{Name: "allow"}}},
		{"policies=3", []host.PolicyRef{{Name: "allow"}, {Name: "allow2"}, {Name: "allow3"}}},
		{"policies=1-go", []host.PolicyRef{{Name: "gopolicy"}}},
	}
	for i, c := range chains {
		subject := fmt.Sprintf("chain%d", i)
		h.Load(subject, trellistest.Wasm(b, "../abi/echo.wat"), func(s *host.Spec) {
			s.Subjects = []string{subject}
			s.Policies = c.refs
		})
	}
	payload := make([]byte, 100)
	for i, c := range chains {
		subject := fmt.Sprintf("chain%d", i)
		b.Run(c.name, func(b *testing.B) {
			nc := h.Client()
			samples := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				m, err := nc.Request(subject, payload, 5*time.Second)
				if err != nil || len(m.Data) < len(payload) || m.Header.Get("Nats-Service-Error") != "" {
					b.Fatal(m, err)
				}
				samples = append(samples, time.Since(start))
			}
			b.StopTimer()
			percentiles(b, samples)
		})
	}
}

// BenchmarkHTTPIngress compares HTTP requests through the ingress to the WAT
// echo with a plain net/http handler that makes the same NATS request
// itself, on the same bus, 16 concurrent clients.
func BenchmarkHTTPIngress(b *testing.B) {
	h := trellistest.NewHost(b, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{{Pattern: "POST /echo", Subject: "echo"}}}
	})
	h.Load("echo", trellistest.Wasm(b, "../abi/echo.wat"))
	nc := h.Conn()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m, err := nc.Request("echo", body, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		w.Write(m.Data)
	}))
	defer plain.Close()
	payload := strings.Repeat("x", 100)
	postParallel(b, plain.URL+"/echo", "http://"+h.HTTPAddr()+"/echo", payload, func(status int, body []byte) bool {
		return status == 200 && len(body) == len(payload)
	})
}

// postParallel runs two sub-benchmarks, plain-nethttp/par16 and
// ingress/par16, each posting payload to its URL from 16 concurrent
// clients (over GOMAXPROCS) and reporting req/s; ok judges each answer.
func postParallel(b *testing.B, plainURL, ingressURL, payload string, ok func(status int, body []byte) bool) {
	for _, target := range []struct{ name, url string }{
		{"plain-nethttp", plainURL},
		{"ingress", ingressURL},
	} {
		b.Run(target.name+"/par16", func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(max(1, 16/nprocs()))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(target.url, "text/plain", strings.NewReader(payload))
					if err != nil {
						b.Error(err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !ok(resp.StatusCode, body) {
						b.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
