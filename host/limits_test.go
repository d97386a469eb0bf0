package host_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const hostileSrc = "testdata/hostile.wat"

// attack sends one message to the hostile plugin and decodes its reply: how
// many calls succeeded and the last call's result.
func attack(t *testing.T, h *trellistest.Host, subject, data string) (count, last int32) {
	t.Helper()
	m := h.Request(subject, []byte(data), 10*time.Second)
	if len(m.Data) != 8 {
		t.Fatalf("%s %.1q: reply %q (%v)", subject, data, m.Data, m.Header)
	}
	return int32(binary.LittleEndian.Uint32(m.Data)), int32(binary.LittleEndian.Uint32(m.Data[4:]))
}

// connected fails the test unless the host's own connection is up and a
// plugin still answers through it.
func connected(t *testing.T, h *trellistest.Host, after string) {
	t.Helper()
	if !h.Conn().IsConnected() {
		t.Fatalf("after %s: host connection %v: %v", after, h.Conn().Status(), h.Conn().LastError())
	}
	if m := h.Request("echo", []byte("still here"), 5*time.Second); string(m.Data) != "still here" {
		t.Fatalf("after %s: echo = %q", after, m.Data)
	}
}

// TestOversizedNamesNeverReachTheBus tries each way a name longer than the
// server's control line could reach the host's connection, which the server
// would close: a path parameter, a publish inside a grant, a queue name, a
// client's reply subject. Each is refused where it enters, and the host
// stays connected and serving.
func TestOversizedNamesNeverReachTheBus(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{
			{Pattern: "GET /echo/{id}", Subject: "echo.{id}"},
		}}
	})
	h.Load("echo", trellistest.Wasm(t, echoSrc), func(s *host.Spec) { s.Subjects = []string{"echo", "echo.>"} })
	h.Load("hostile", trellistest.Wasm(t, hostileSrc), func(s *host.Spec) {
		s.Subjects = []string{"hostile"}
		s.Grants.Publish = []string{"audit.>"}
	})
	long := strings.Repeat("x", 5000)

	t.Run("path parameter", func(t *testing.T) {
		resp, body := trellistest.HTTP(t, nil, "GET", "http://"+h.HTTPAddr()+"/echo/"+long, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "more than 1024") {
			t.Fatalf("GET /echo/<5000> = %d %s", resp.StatusCode, body)
		}
		if resp, _ := trellistest.HTTP(t, nil, "GET", "http://"+h.HTTPAddr()+"/echo/abc", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /echo/abc = %d", resp.StatusCode)
		}
		connected(t, h, "a 5000-byte path parameter")
	})

	t.Run("publish inside a grant", func(t *testing.T) {
		if _, r := attack(t, h, "hostile", "paudit."+long); r != abi.StatusInvalidSubject.Result() {
			t.Fatalf("publish audit.<5000> = %d, want %d", r, abi.StatusInvalidSubject.Result())
		}
		if _, r := attack(t, h, "hostile", "paudit.ok"); r != 0 {
			t.Fatalf("publish audit.ok = %d", r)
		}
		connected(t, h, "a 5000-byte publish subject")
	})

	t.Run("queue name", func(t *testing.T) {
		err := h.Host.Load(context.Background(), host.Spec{Name: "hostile-queue", Wasm: trellistest.WasmBytes(t, hostileSrc),
			Grants: plugin.Grants{Subscribe: []string{">"}}, Config: map[string]string{"sub": "q", "queue": long}})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("trellis_init returned %d", abi.StatusInvalidSubject)) {
			t.Fatalf("load with a 5000-byte queue: %v", err)
		}
		err = h.Host.Load(context.Background(), host.Spec{Name: "config-queue", Wasm: trellistest.WasmBytes(t, hostileSrc),
			Subjects: []string{"q"}, Queue: long})
		if err == nil || !strings.Contains(err.Error(), "queue name") {
			t.Fatalf("load with a configured 5000-byte queue: %v", err)
		}
		connected(t, h, "a 5000-byte queue name")
	})

	t.Run("names and namespaces", func(t *testing.T) {
		wasm := trellistest.WasmBytes(t, hostileSrc)
		for _, spec := range []host.Spec{
			{Name: long, Wasm: wasm, Subjects: []string{"n"}},
			{Name: "a.b", Wasm: wasm, Subjects: []string{"n"}},
			{Name: "a b", Wasm: wasm, Subjects: []string{"n"}},
			{Name: "kv", Wasm: wasm, Subjects: []string{"n"}, KVNamespace: long},
		} {
			if err := h.Host.Load(context.Background(), spec); err == nil {
				t.Errorf("loaded a plugin named %.20q with KV namespace %.20q", spec.Name, spec.KVNamespace)
			}
		}
		connected(t, h, "oversized names")
	})

	t.Run("client reply subject", func(t *testing.T) {
		before := h.Counters().Dropped.Load()
		if err := h.Client().PublishMsg(&nats.Msg{Subject: "echo", Reply: strings.Repeat("r", 3500), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := h.Client().Flush(); err != nil {
			t.Fatal(err)
		}
		trellistest.WaitFor(t, 5*time.Second, "the message to be dropped", func() bool { return h.Counters().Dropped.Load() != before })
		if h.Counters().Dropped.Load() != before+1 {
			t.Fatalf("a 3500-byte reply subject was not dropped")
		}
		connected(t, h, "a 3500-byte reply subject")
	})
}

// TestSubscriptionsNeedAGrant: a plugin subscribes only to what its
// operator granted, never to the bus's own subjects, and a wildcard it was
// granted does not deliver system subjects to it.
func TestSubscriptionsNeedAGrant(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	wasm := trellistest.WasmBytes(t, hostileSrc)
	load := func(name, sub string, grants plugin.Grants) error {
		return h.Host.Load(context.Background(), host.Spec{Name: name, Wasm: wasm, Grants: grants,
			Config: map[string]string{"sub": sub}})
	}
	denied := fmt.Sprintf("trellis_init returned %d", abi.StatusDenied)
	for _, c := range []struct {
		sub   string
		grant []string
	}{
		{">", nil},
		{"orders.*", []string{"orders.created"}},
		{"orders.>", []string{"orders.*"}},
		{"$KV.>", []string{">"}},
		{"$JS.API.>", []string{">"}},
		{"_INBOX.>", []string{">"}},
		{"$SYS.>", []string{"$SYS.>"}},
	} {
		if err := load("sneaky", c.sub, plugin.Grants{Subscribe: c.grant}); err == nil || !strings.Contains(err.Error(), denied) {
			t.Errorf("subscribe %q with grant %q: %v", c.sub, c.grant, err)
		}
	}
	if err := load("granted", "orders.*", plugin.Grants{Subscribe: []string{"orders.>"}}); err != nil {
		t.Fatalf("subscribe orders.* under orders.>: %v", err)
	}
	err := h.Host.Load(context.Background(), host.Spec{Name: "sys", Wasm: wasm, Subjects: []string{"$KV.orders.>"}})
	if err == nil || !strings.Contains(err.Error(), "system subjects") {
		t.Fatalf("configured subject $KV.orders.>: %v", err)
	}

	// Granted everything, as in dev: it still sees no system subject.
	if err := load("wide", ">", plugin.Grants{Subscribe: []string{">"}, Publish: []string{"seen"}}); err != nil {
		t.Fatal(err)
	}
	seen, err := h.Client().SubscribeSync("seen")
	if err != nil {
		t.Fatal(err)
	}
	before := h.Counters().Dropped.Load()
	for _, subj := range []string{"$KV.orders.secret", "_INBOX.someone", "$JS.API.INFO", "app.visible"} {
		if err := h.Client().Publish(subj, []byte("f")); err != nil {
			t.Fatal(err)
		}
	}
	m, err := seen.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "app.visible" {
		t.Fatalf("first subject the wide plugin saw: %v %q", err, m.Data)
	}
	if m, err := seen.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("the wide plugin also saw %q", m.Data)
	}
	if got := h.Counters().Dropped.Load() - before; got < 3 {
		t.Fatalf("dropped %d system-subject messages, want at least 3", got)
	}

	// Publishing to a system subject is denied whatever the grant says.
	if err := h.Host.Load(context.Background(), host.Spec{Name: "pub", Wasm: wasm, Subjects: []string{"pub"},
		Grants: plugin.Grants{Publish: []string{">"}}}); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"$KV.orders.x", "$JS.API.STREAM.DELETE.KV_orders", "_INBOX.x"} {
		if _, r := attack(t, h, "pub", "p"+subj); r != abi.StatusDenied.Result() {
			t.Errorf("publish %s = %d, want denied", subj, r)
		}
	}
	connected(t, h, "the subscription attempts")
}

// TestHostFunctionsHaveCallBudgets drives each host function that makes
// the host hold bytes or send messages in a loop within one call: each stops
// at its documented per-call limit with "too large", and the call ends well.
func TestHostFunctionsHaveCallBudgets(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("hostile", trellistest.Wasm(t, hostileSrc), func(s *host.Spec) {
		s.Subjects = []string{"hostile"}
		s.Grants.Publish = []string{"audit.>"}
		s.Grants.Request = []string{"nobody"}
		s.Timeout = 20 * time.Second
	})
	tooLarge := abi.StatusTooLarge.Result()
	for _, c := range []struct {
		op   string
		want int32
	}{
		{"h", abi.MaxHeaderBytesPerCall / (3 + 16384)},
		{"l", abi.MaxLogBytesPerCall / 65536},
		{"P", abi.MaxPublishesPerCall},
		{"B", abi.MaxOutboundBytesPerCall / (1 << 20)},
		{"Q", abi.MaxRequestsPerCall},
	} {
		count, last := attack(t, h, "hostile", c.op)
		if count != c.want || (c.op != "Q" && last != tooLarge) {
			t.Errorf("%s: %d calls then %d, want %d then %d", c.op, count, last, c.want, tooLarge)
		}
	}
}

// TestHostMemoryStaysBounded drives every host function in loops, many
// calls over, and checks what the host keeps afterwards: the plugin's
// instances aside, nothing grows with the number of calls or of distinct
// denials.
func TestHostMemoryStaysBounded(t *testing.T) {
	// The test keeps the host's log in memory: only warnings, so that it
	// does not keep the megabytes the plugin logs.
	h := trellistest.NewHost(t, func(o *host.Options) { o.Logger.SetLevel(hclog.Warn) })
	h.Load("hostile", trellistest.Wasm(t, hostileSrc), func(s *host.Spec) {
		s.Subjects = []string{"hostile"}
		s.Grants.Publish = []string{"audit.>"}
		s.PoolSize = 2
		s.MemoryLimit = 16 << 20
	})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	attack(t, h, "hostile", "h") // warm up the instances
	base := heap()
	subject := "pdenied." + strings.Repeat("d", 900)
	for i := range 400 {
		for _, op := range []string{"h", "l"} {
			attack(t, h, "hostile", op)
		}
		if i%20 == 0 {
			// Every other host function, 256 calls in one call each.
			for _, op := range []string{"r", "H", "c", "e", "k", "P"} {
				if n, r := attack(t, h, "hostile", op); op != "P" && (n != 256 || r < -int32(abi.StatusConflict)) {
					t.Fatalf("%s: %d calls, last %d", op, n, r)
				}
			}
		}
		// A distinct denied subject each time.
		if _, r := attack(t, h, "hostile", fmt.Sprintf("%s.%d", subject, i)); r != abi.StatusDenied.Result() {
			t.Fatalf("denied publish = %d", r)
		}
	}
	const bound = 32 << 20
	if grown := int64(heap()) - int64(base); grown > bound {
		t.Fatalf("host heap grew by %d MiB over 1,320 hostile calls, more than %d MiB", grown>>20, bound>>20)
	}
	if n := h.Plugins()[0].Denied; n != 400 {
		t.Fatalf("Denied = %d, want 400", n)
	}
	if lines := strings.Count(h.Logs(), "denied: subject not granted"); lines > 70 {
		t.Fatalf("%d denial lines logged for 400 distinct subjects", lines)
	}
}

// TestHostFunctionsStopAtTheDeadline: a policy that loops over a host
// function that copies 32 MiB per call is stopped at its deadline, as a loop
// in guest code is, not after a thousand calls.
func TestHostFunctionsStopAtTheDeadline(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("hostile-policy", trellistest.Wasm(t, hostileSrc), func(s *host.Spec) {
		s.Policy = true
		s.Timeout = 200 * time.Millisecond
		s.MemoryLimit = 64 << 20
	})
	h.Load("echo", trellistest.Wasm(t, echoSrc), func(s *host.Spec) {
		s.Policies = []host.PolicyRef{{Name: "hostile-policy"}}
		s.Timeout = 200 * time.Millisecond // the message's deadline, which its policies share
	})
	start := time.Now()
	m, err := h.Client().Request("echo", []byte("S"), 30*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if code := m.Header.Get(abi.HeaderErrorCode); code != "503" && code != "504" {
		t.Fatalf("reply %q %v, want an error", m.Data, m.Header)
	}
	t.Logf("stopped after %s", took)
	if took > 3*time.Second {
		t.Fatalf("a 200ms deadline stopped a host-call loop after %s", took)
	}
	if n := h.Counters().PolicyFailures.Load(); n != 1 {
		t.Fatalf("%d policy failures counted, want 1", n)
	}
	if !strings.Contains(h.Logs(), "deadline") {
		t.Fatalf("no deadline in the log:\n%s", h.Logs())
	}
}

// TestHostConnectionComesBackAfterTheServerDropsIt: when the server closes
// the host's own connection (here, kicked by id, as an operator or a
// protocol error would), the host reconnects by itself and its plugins
// answer again, subscriptions included.
func TestHostConnectionComesBackAfterTheServerDropsIt(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	connected(t, h, "start")
	id, err := h.Conn().GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	reconnects := h.Conn().Stats().Reconnects
	if err := h.Bus().Server().DisconnectClientByID(id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.Conn().Stats().Reconnects == reconnects && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h.Conn().Stats().Reconnects == reconnects {
		t.Fatalf("host connection did not reconnect: %v", h.Conn().Status())
	}
	connected(t, h, "the server dropped the host's connection")
}

// Options.MaxInFlight caps the plugin calls running at once across all
// plugins: with one slot, held by a handler that spins to its deadline, a
// request to another plugin waits for it and, when its own deadline comes
// first, is answered busy; once the slot is given back it is served.
func TestTheHostWideCallCapHoldsAndLetsGo(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) { o.MaxInFlight = 1 })
	h.Load("spinon", trellistest.Wasm(t, "testdata/spinon.wat"), func(s *host.Spec) {
		s.Subjects = []string{"spinon"}
		s.Timeout = time.Second
	})
	h.Load("echo", trellistest.Wasm(t, "../abi/echo.wat"), func(s *host.Spec) {
		s.Subjects = []string{"echo"}
		s.Timeout = 100 * time.Millisecond
	})
	nc := h.Client()
	if m := h.Request("echo", []byte("hi"), 5*time.Second); string(m.Data) != "hi" {
		t.Fatalf("echo before: %q", m.Data)
	}
	spun := make(chan error, 1)
	go func() {
		_, err := nc.Request("spinon", nil, 5*time.Second) // spins until its deadline
		spun <- err
	}()
	trellistest.WaitFor(t, 5*time.Second, "the spin in flight", func() bool {
		n, _ := h.Scrape().Value("trellis_calls_in_flight", "plugin", "spinon")
		return n == 1
	})
	m := h.Request("echo", []byte("hi"), 5*time.Second)
	if code := m.Header.Get(abi.HeaderErrorCode); code != "503" || !strings.Contains(m.Header.Get(abi.HeaderError), "host-wide call limit") {
		t.Fatalf("echo while the slot is held: %q %v; want 503, host-wide call limit", m.Data, m.Header)
	}
	if err := <-spun; err != nil {
		t.Fatalf("spinon: %v", err)
	}
	for i := range 3 {
		if m := h.Request("echo", []byte("hi"), 5*time.Second); string(m.Data) != "hi" {
			t.Fatalf("echo %d after the slot came back: %q %v", i, m.Data, m.Header)
		}
	}
}
