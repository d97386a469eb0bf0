package host_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// A change whose third plugin is broken changes nothing: the two good
// ones are not loaded, the one serving keeps its version, and the error
// names the broken one.
func TestAChangeWhoseThirdPluginFailsChangesNothing(t *testing.T) {
	h := trellistest.NewHost(t)
	echo := trellistest.Wasm(t, "../abi/echo.wat")
	h.Load("running", trellistest.Wasm(t, greetSrc), func(s *host.Spec) { s.Subjects = []string{"running"} })
	before := h.Plugins()[0].Version

	broken := filepath.Join(t.TempDir(), "broken.wasm")
	if err := os.WriteFile(broken, []byte("\x00asm\x01\x00\x00\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := h.Apply(t.Context(), host.Change{Load: []host.Spec{
		{Name: "first", Path: echo, Subjects: []string{"first"}},
		{Name: "running", Path: echo, Subjects: []string{"running"}},
		{Name: "third", Path: broken, Subjects: []string{"third"}},
	}})
	if err == nil || !strings.Contains(err.Error(), `plugin "third"`) {
		t.Fatalf("error %v, want one naming plugin third", err)
	}
	if ps := h.Plugins(); len(ps) != 1 || ps[0].Name != "running" || ps[0].Version != before {
		t.Fatalf("after the refused change: %+v", ps)
	}
	if m := h.Request("running", []byte("Ada"), 2*time.Second); string(m.Data) != "Hello, Ada!" {
		t.Fatalf("the plugin serving changed: %q", m.Data)
	}
	if _, err := h.Client().Request("first", []byte("x"), 200*time.Millisecond); err != nats.ErrNoResponders {
		t.Fatalf("first is reachable although its change was refused: %v", err)
	}
	if !h.WaitLog(time.Second, "plugin refused", "plugin=third", "broken.wasm") {
		t.Fatalf("no refusal naming the plugin and its file:\n%s", h.Logs())
	}
}

// A subscription the bus refuses undoes the whole change: the new
// plugin's subscriptions, workers and instances are gone, and the version
// serving before serves still.
func TestAFailedSubscribeLeavesNothingBehind(t *testing.T) {
	own := trellistest.NewHost(t)
	nc, err := nats.Connect(own.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.New(t.Context(), host.Options{Bus: bus.Options{Conn: nc}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(t.Context()) })
	echo := trellistest.Wasm(t, "../abi/echo.wat")
	if err := h.Load(t.Context(), host.Spec{Name: "a", Path: echo, Subjects: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	nc.Close() // the caller closes its connection: every subscribe fails
	// The connection's own goroutines end with it; count once they have.
	baseline := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		time.Sleep(20 * time.Millisecond)
		baseline = min(baseline, runtime.NumGoroutine())
	}
	_, err = h.Apply(t.Context(), host.Change{Load: []host.Spec{
		{Name: "a", Path: echo, Subjects: []string{"a", "a2"}},
		{Name: "b", Path: echo, Subjects: []string{"b"}},
	}})
	if err == nil || !strings.Contains(err.Error(), "subscribe") {
		t.Fatalf("error %v, want a refused subscribe", err)
	}
	ps := h.Plugins()
	if len(ps) != 1 || ps[0].Name != "a" || len(ps[0].Subjects) != 1 {
		t.Fatalf("after the refused change: %+v", ps)
	}
	// b's workers and both new versions' goroutines are gone.
	trellistest.WaitFor(t, 5*time.Second, "the refused change's goroutines to end", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}
