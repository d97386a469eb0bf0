package bus_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/bus"
)

func start(t *testing.T, opts bus.Options) *bus.Bus {
	t.Helper()
	b, err := bus.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestEmbeddedServerServesTCPClientsAndJetStream(t *testing.T) {
	b := start(t, bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if !b.Embedded() || !strings.HasPrefix(b.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(b.ClientURL(), ":4222") {
		t.Fatalf("ClientURL %q: want an embedded server on a random port", b.ClientURL())
	}
	// A TCP client (as any NATS tool would be) reaches the host's in-process connection.
	sub, err := b.Conn().Subscribe("ping", func(m *nats.Msg) { m.Respond([]byte("pong")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	b.Conn().Flush()
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.Request("ping", nil, 2*time.Second)
	if err != nil || string(m.Data) != "pong" {
		t.Fatalf("request over TCP: %v %v", m, err)
	}
	if _, err := b.Conn().JetStream(); err != nil {
		t.Fatal(err)
	}
	js, _ := b.Conn().JetStream()
	if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("JetStream is not on: %v", err)
	}
}

func TestMaxPayloadDefaultAllowsOneMiBMessages(t *testing.T) {
	b := start(t, bus.Options{Listen: "127.0.0.1:0"})
	if mp := b.Conn().MaxPayload(); mp < 2<<20 {
		t.Fatalf("max payload %d, want at least 2 MiB", mp)
	}
}

func TestExternalURL(t *testing.T) {
	a := start(t, bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true})
	b := start(t, bus.Options{URL: a.ClientURL()})
	if b.Embedded() {
		t.Fatal("a bus with URL embedded a server")
	}
	if !b.Conn().IsConnected() {
		t.Fatal("not connected")
	}
	if _, err := bus.Start(context.Background(), bus.Options{URL: a.ClientURL(), Users: []bus.User{{Name: "x", Password: "y"}}}); err == nil {
		t.Fatal("users for an external server were accepted and ignored")
	}
}

func TestBadListenAddress(t *testing.T) {
	for _, l := range []string{"nonsense", "127.0.0.1:99999"} {
		if _, err := bus.Start(context.Background(), bus.Options{Listen: l}); err == nil || !strings.Contains(err.Error(), l) {
			t.Errorf("Listen %q: error %v does not name it", l, err)
		}
	}
}

// A port in use fails at once with the address, not after the wait for a
// server that never becomes ready.
func TestPortInUseFailsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	_, err = bus.Start(context.Background(), bus.Options{Listen: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("error %v does not name %s", err, ln.Addr())
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s to refuse", took)
	}
}

// Check refuses what Start would, without starting anything.
func TestCheckRefusesWhatStartWould(t *testing.T) {
	if err := bus.Check(bus.Options{Listen: "0.0.0.0:4222"}); !errors.Is(err, bus.ErrUnauthenticated) {
		t.Fatalf("0.0.0.0 without auth: %v", err)
	}
	if err := bus.Check(bus.Options{Listen: "0.0.0.0:4222", AllowUnauthenticated: true}); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	if err := bus.Check(bus.Options{Listen: "nonsense"}); err == nil {
		t.Fatal("bad listen address accepted")
	}
	if err := bus.Check(bus.Options{Listen: "127.0.0.1:4222"}); err != nil {
		t.Fatalf("loopback: %v", err)
	}
}
