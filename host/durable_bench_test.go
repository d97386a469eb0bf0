package host_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// BenchmarkDurableThroughput drains b.N stored events through a durable
// handler (the WAT echo, which does nothing with an event) and through a
// native Go JetStream consumer that acknowledges each, on the same
// embedded server, and reports both rates and their ratio.
//
//	go test -run '^$' -bench DurableThroughput -benchtime 20000x -count 5 ./host/
func BenchmarkDurableThroughput(b *testing.B) {
	h := trellistest.NewHost(b)
	js, err := jetstream.New(h.Client())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store := func(subject string) {
		b.Helper()
		for i := range b.N {
			if _, err := js.PublishAsync(subject, []byte(fmt.Sprintf("event %d", i))); err != nil {
				b.Fatal(err)
			}
			if i%500 == 499 || i == b.N-1 {
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(time.Minute):
					b.Fatal("publishes not acknowledged")
				}
			}
		}
	}

	// Native: a durable pull consumer acknowledging each event.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_NATIVE", Subjects: []string{"bench.native.events"}}); err != nil {
		b.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH_NATIVE", jetstream.ConsumerConfig{Durable: "native", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	store("bench.native.events")
	var got atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		m.Ack()
		if got.Add(1) == int64(b.N) {
			close(done)
		}
	}, jetstream.PullMaxMessages(16))
	if err != nil {
		b.Fatal(err)
	}
	<-done
	native := time.Since(start)
	cc.Stop()

	// Trellis: the handler's consumer, loaded once to make it, unloaded
	// while the events are stored, then loaded to drain them.
	spec := func(s *host.Spec) {
		s.Subjects = []string{"bench.wasm.events"}
		s.Durable = &host.Durable{Stream: "BENCH_WASM"}
		s.PoolSize = 8
	}
	echo := trellistest.Wasm(b, "../abi/echo.wat")
	h.Load("durable-echo", echo, spec)
	if err := h.Unload(ctx, "durable-echo"); err != nil {
		b.Fatal(err)
	}
	store("bench.wasm.events")
	b.ResetTimer()
	start = time.Now()
	h.Load("durable-echo", echo, spec)
	wc, err := js.Consumer(ctx, "BENCH_WASM", "durable-echo")
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := wc.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(b.N) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	wasm := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/native.Seconds(), "native-msgs/s")
	b.ReportMetric(float64(b.N)/wasm.Seconds(), "durable-msgs/s")
	b.ReportMetric(100*native.Seconds()/wasm.Seconds(), "%-of-native")
}

// BenchmarkHTTPEventStored posts events to an HTTP event route whose
// subject a durable handler's stream holds, so that each 202 waits for
// JetStream's acknowledgement, against a plain net/http handler doing the
// same JetStream publish and answering 202, on the same server, with 16
// concurrent clients.
//
//	go test -run '^$' -bench HTTPEventStored -count 5 ./host/
func BenchmarkHTTPEventStored(b *testing.B) {
	h := trellistest.NewHost(b, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{{Pattern: "POST /stored", Subject: "bench.stored.ingress", Event: true}}}
	})
	// The durable handler's stream holds both sides' subjects, and the
	// handler consumes what both store, so both pay for it alike.
	echo := trellistest.Wasm(b, "../abi/echo.wat")
	h.Load("stored", echo, func(s *host.Spec) {
		s.Subjects = []string{"bench.stored.>"}
		s.Durable = &host.Durable{Stream: "BENCH_STORED"}
	})
	js, err := jetstream.New(h.Conn())
	if err != nil {
		b.Fatal(err)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := js.Publish(r.Context(), "bench.stored.plain", body); err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		w.WriteHeader(202)
		w.Write([]byte(`{"status":"accepted"}`))
	}))
	defer plain.Close()
	postParallel(b, plain.URL+"/stored", "http://"+h.HTTPAddr()+"/stored", strings.Repeat("x", 100),
		func(status int, _ []byte) bool { return status == 202 })
}
