package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/internal/deadline"
)

// BenchmarkServePath measures the host's own part of a message's path,
// from the subscription's callback's hand-off to the reply published:
// binding.serve with a message taken from NATS, a WAT echo, deadlines on.
// NATS's own work (parsing, the client's request) is outside it. The one
// allocation per request it reports is the embedded server's, counted
// because the process is one: processInboundClientMsg, on the reply it
// receives (-memprofile shows it); the host's path allocates nothing.
//
//	go test -run '^$' -bench ServePath -benchmem ./host/
func BenchmarkServePath(b *testing.B) {
	wasm, err := watEcho()
	if err != nil {
		b.Skip(err)
	}
	h := plainHost(b)
	for _, tc := range []struct {
		name     string
		policies []PolicyRef
		reply    bool
	}{
		{"event", nil, false},
		{"request", nil, true},
		{"request+policy", []PolicyRef{{Name: "allow"}}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.policies != nil {
				allow, err := watAllow()
				if err != nil {
					b.Skip(err)
				}
				if err := h.Load(context.Background(), Spec{Name: "allow", Wasm: allow, Policy: true}); err != nil {
					b.Fatal(err)
				}
			}
			if err := h.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Subjects: []string{"bench.serve"}, Policies: tc.policies}); err != nil {
				b.Fatal(err)
			}
			h.mu.Lock()
			bd := h.bindings["echo"]
			h.mu.Unlock()
			m := &nats.Msg{Subject: "bench.serve", Data: bytes.Repeat([]byte("x"), 100)}
			if tc.reply {
				m.Reply = "_INBOX.nobody"
			}
			w := new(worker)
			b.ReportAllocs()
			// The subscription's subject's metrics, as subscriber.onMsg has them.
			sj := bd.metrics.Subject("bench.serve")
			b.ResetTimer()
			for range b.N {
				now := deadline.Now()
				bd.serve(arrival{m: m, at: now, sj: sj}, w, now)
			}
		})
	}
}

func watEcho() ([]byte, error) { return os.ReadFile("testdata/echo.wasm") }

// watAllow builds testdata/allow.wat, a policy that lets everything pass.
func watAllow() ([]byte, error) {
	out := filepath.Join(os.TempDir(), "trellis-bench-allow.wasm")
	if err := exec.Command("wat2wasm", "testdata/allow.wat", "-o", out).Run(); err != nil {
		return nil, fmt.Errorf("wat2wasm: %w", err)
	}
	return os.ReadFile(out)
}

// TestServePathAllocatesNothing holds BenchmarkServePath's figure: an
// event served through a binding, deadline on, with and without a policy
// before the handler, allocates nothing on the host's side.
func TestServePathAllocatesNothing(t *testing.T) {
	wasm, err := watEcho()
	if err != nil {
		t.Skip(err)
	}
	allow, err := watAllow()
	if err != nil {
		t.Skip(err)
	}
	h := plainHost(t)
	if err := h.Load(context.Background(), Spec{Name: "allow", Wasm: allow, Policy: true}); err != nil {
		t.Fatal(err)
	}
	for _, policies := range [][]PolicyRef{nil, {{Name: "allow"}}} {
		if err := h.Load(context.Background(), Spec{Name: "echo", Wasm: wasm, Subjects: []string{"alloc.serve"}, Policies: policies}); err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		bd := h.bindings["echo"]
		h.mu.Unlock()
		m := &nats.Msg{Subject: "alloc.serve", Data: bytes.Repeat([]byte("x"), 100)}
		w := new(worker)
		sj := bd.metrics.Subject("alloc.serve")
		serve := func() {
			now := deadline.Now()
			bd.serve(arrival{m: m, at: now, sj: sj}, w, now)
		}
		serve() // the instance made, the pool warm
		if n := testing.AllocsPerRun(200, serve); n != 0 {
			t.Errorf("policies %v: %v allocations per event", policies, n)
		}
	}
}
