package host

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
)

// BenchmarkServePathRecording is BenchmarkServePath's request with the
// plugin's recording loaded and off (what every message of a plugin with
// a record block pays while it is off), and on: the tap, the copy of the
// message and the hand-off to the writer. What the writer stores and what
// it drops when the store falls behind are reported per message.
//
//	go test -run '^$' -bench ServePathRecording -benchmem ./host/
func BenchmarkServePathRecording(b *testing.B) {
	wasm, err := watEcho()
	if err != nil {
		b.Skip(err)
	}
	h, err := New(context.Background(), Options{Bus: bus.Options{Listen: "127.0.0.1:0", StoreDir: b.TempDir()}, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	if err := h.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Subjects: []string{"bench.serve"}, Record: &Record{Off: true}}); err != nil {
		b.Fatal(err)
	}
	h.mu.Lock()
	bd := h.bindings["echo"]
	h.mu.Unlock()
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			if _, err := h.SetRecording(context.Background(), "echo", on); err != nil {
				b.Fatal(err)
			}
			c := h.recordCounts("echo")
			stored, dropped := c.recorded.Load(), c.queueFull.Load()
			m := &nats.Msg{Subject: "bench.serve", Reply: "_INBOX.nobody", Data: bytes.Repeat([]byte("x"), 100)}
			w := new(worker)
			b.ReportAllocs()
			// The subscription's subject's metrics, as subscriber.onMsg has them.
			sj := bd.metrics.Subject("bench.serve")
			b.ResetTimer()
			for range b.N {
				now := deadline.Now()
				bd.serve(arrival{m: m, at: now, sj: sj}, w, now)
			}
			b.StopTimer()
			b.ReportMetric(float64(c.queueFull.Load()-dropped)/float64(b.N), "dropped/op")
			b.ReportMetric(float64(c.recorded.Load()-stored)/float64(b.N), "stored/op")
		})
	}
}
