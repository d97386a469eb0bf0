package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// recorder is an Outbox that keeps what plugins send, copying it as the
// Outbox contract requires.
type recorder struct {
	mu   sync.Mutex
	sent []plugin.Message
}

func (r *recorder) Publish(_ context.Context, subject string, h map[string][]string, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, plugin.Message{Subject: subject, Header: h, Data: bytes.Clone(data)})
	return nil
}

func (r *recorder) Request(context.Context, string, map[string][]string, []byte, time.Duration) (*plugin.Message, error) {
	return nil, plugin.ErrNoResponders
}

func (r *recorder) take() []plugin.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func load(t testing.TB, src string, opts plugin.Options) *plugin.Plugin {
	t.Helper()
	if opts.Name == "" {
		opts.Name = strings.TrimSuffix(src[strings.LastIndex(src, "/")+1:], ".wat")
	}
	if opts.Grants.Subscribe == nil {
		opts.Grants.Subscribe = []string{">"}
	}
	p, err := plugin.Load(context.Background(), trellistest.WasmBytes(t, src), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

const echoWAT = "../../../abi/echo.wat"

func TestEchoRepliesWithPayload(t *testing.T) {
	var out recorder
	p := load(t, echoWAT, plugin.Options{Outbox: &out})
	for _, payload := range [][]byte{[]byte("hi"), nil, bytes.Repeat([]byte("x"), 1<<20)} {
		res, err := p.Handle(context.Background(), &plugin.Message{Subject: "echo", Reply: "_INBOX.1", Data: payload})
		if err != nil || res.Status != 0 || !res.Replied {
			t.Fatalf("Handle(%d bytes) = %+v, %v", len(payload), res, err)
		}
		sent := out.take()
		if len(sent) != 1 || sent[0].Subject != "_INBOX.1" || !bytes.Equal(sent[0].Data, payload) {
			t.Fatalf("sent %d messages, want one reply of %d bytes on _INBOX.1", len(sent), len(payload))
		}
	}
}

func TestEchoWithoutReplySubjectSendsNothing(t *testing.T) {
	var out recorder
	p := load(t, echoWAT, plugin.Options{Outbox: &out})
	res, err := p.Handle(context.Background(), &plugin.Message{Subject: "echo", Data: []byte("x")})
	if err != nil || res.Status != 0 || res.Replied {
		t.Fatalf("Handle = %+v, %v", res, err)
	}
	if n := len(out.take()); n != 0 {
		t.Fatalf("sent %d messages for an event with no reply subject", n)
	}
}

func TestSubscriptionsComeFromInit(t *testing.T) {
	p := load(t, echoWAT, plugin.Options{})
	subs := p.Subscriptions()
	if len(subs) != 1 || subs[0].Subject != "echo" || subs[0].Queue != "" {
		t.Fatalf("Subscriptions() = %+v, want [{echo }]", subs)
	}
}

func TestLoadRefusesBadModules(t *testing.T) {
	echo := trellistest.WasmBytes(t, echoWAT)
	wasm := func(src string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return trellistest.WasmBytes(t, "testdata/"+src) }
	}
	cases := []struct {
		name  string
		bytes func(t *testing.T) []byte
		is    error
		says  string
	}{
		{"empty file", func(*testing.T) []byte { return nil }, nil, "file is empty"},
		{"not wasm", func(*testing.T) []byte { return []byte("#!/bin/sh\necho hello\n") }, nil, "not a WebAssembly module"},
		{"truncated", func(*testing.T) []byte { return echo[:len(echo)/2] }, nil, "is it truncated?"},
		// A few bytes that declare 2^28 imports, or 2^32 locals: refused
		// before the decoder allocates for them (see package limits).
		{"import bomb", func(*testing.T) []byte { return []byte("\x00asm\x01\x00\x00\x00\x02\x04\xff\xff\xff\x7f") }, nil,
			"import section: 268435455 imports, more than the limit of 100000"},
		{"locals bomb", func(*testing.T) []byte { return localsBomb }, nil, "more than the limit of 50000"},
		{"component", func(*testing.T) []byte { return []byte("\x00asm\x0d\x00\x01\x00") }, nil, "component"},
		// A function of type 48 of 4, called: wazero panics on it rather than
		// returning an error (found by FuzzInstrument).
		{"malformed", func(*testing.T) []byte { return malformed }, plugin.ErrBadModule, "compile: the module is malformed"},
		{"other ABI version", wasm("abiv2.wat"), plugin.ErrABIVersion, "built for Trellis ABI v2; this host supports v1"},
		{"no ABI marker", wasm("noabi.wat"), plugin.ErrNotPlugin, "does not export trellis_abi_v1"},
		{"missing handle", wasm("nohandle.wat"), plugin.ErrBadModule, "missing export trellis_handle"},
		{"wrong handle type", wasm("badsig.wat"), plugin.ErrBadModule, "export trellis_handle has type (i32) -> (i32)"},
		{"WASI command", wasm("command.wat"), plugin.ErrBadModule, "exports _start"},
		{"unknown import", wasm("badimport.wat"), plugin.ErrBadModule, "imports trellis.teleport"},
		{"init fails", wasm("initfail.wat"), nil, "trellis_init returned 3: missing config key 'token'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := plugin.Load(context.Background(), c.bytes(t), plugin.Options{Name: "bad"})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), `plugin "bad"`) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q does not name the plugin and say %q", err, c.says)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v is not %v", err, c.is)
			}
		})
	}
}

var localsBomb = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x04\x01\x60\x00\x00" + // one type
	"\x03\x02\x01\x00" + // one function
	"\x0a\x0b\x01\x09\x01\xff\xff\xff\xff\x0f\x7f\x00\x0b") // with 2^32-1 locals of i32

var malformed = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x14\x04`\x02\x7f\x7f\x02\x7f\x7f`\x01\x7f\x01\x7f`\x00\x01\x7f`\x00\x00" + // four types
	"\x03\x04\x03\x03\x03\x30" + // three functions; the third of type 48
	"\x0a\x0c\x03\x02\x00\x0b\x04\x00\x10\x02\x0b\x02\x00\x0b") // the second calls the third

func faultOf(t *testing.T, err error) *plugin.Fault {
	t.Helper()
	var f *plugin.Fault
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not a *plugin.Fault", err)
	}
	return f
}

func TestTrapIsAFaultAndNextCallStillServed(t *testing.T) {
	p := load(t, "testdata/trap.wat", plugin.Options{PoolSize: 1})
	for i := 0; i < 3; i++ {
		_, err := p.Handle(context.Background(), &plugin.Message{Subject: "s", Reply: "r"})
		f := faultOf(t, err)
		if f.Kind != plugin.FaultTrap || f.Kind.Code() != 500 || !strings.Contains(f.Summary(), "unreachable") {
			t.Fatalf("fault %v: kind %v, summary %q", f, f.Kind, f.Summary())
		}
		if f.Plugin != "trap" || f.Subject != "s" || f.Version == "" {
			t.Fatalf("fault does not name plugin, version and subject: %+v", f)
		}
	}
	if inUse, _, _ := p.PoolStats(); inUse != 0 {
		t.Fatalf("%d instances still in use after faults", inUse)
	}
}

func TestLoopingGuestIsStoppedAtDeadline(t *testing.T) {
	p := load(t, "testdata/loop.wat", plugin.Options{Timeout: 100 * time.Millisecond, PoolSize: 1})
	start := time.Now()
	_, err := p.Handle(context.Background(), &plugin.Message{Subject: "s"})
	f := faultOf(t, err)
	if f.Kind != plugin.FaultTimeout || f.Kind.Code() != 504 {
		t.Fatalf("kind %v, want deadline exceeded: %v", f.Kind, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("loop stopped after %v", el)
	}
	// The looping instance is gone; the pool of one can serve (and stop) again.
	_, err = p.Handle(context.Background(), &plugin.Message{Subject: "s"})
	if faultOf(t, err).Kind != plugin.FaultTimeout {
		t.Fatalf("second call: %v", err)
	}
}

// With deadlines off, a looping guest is still stopped when its caller
// gives up, and does not stall the Go runtime while it loops.
func TestLoopingGuestWithoutDeadline(t *testing.T) {
	p := load(t, "testdata/loop.wat", plugin.Options{Timeout: -1, PoolSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Handle(ctx, &plugin.Message{Subject: "s"})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	gc := make(chan struct{})
	go func() {
		runtime.GC() // stops the world: needs the looping goroutine to yield
		close(gc)
	}()
	select {
	case <-gc:
	case <-time.After(10 * time.Second):
		t.Fatal("a garbage collection did not finish in 10 s while the guest looped")
	}
	cancel()
	select {
	case err := <-done:
		if f := faultOf(t, err); f.Kind != plugin.FaultCanceled {
			t.Fatalf("kind %v, want canceled: %v", f.Kind, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the looping guest was not stopped 10 s after its caller gave up")
	}
}

func TestWildPointerIsAMemoryFault(t *testing.T) {
	var out recorder
	p := load(t, "testdata/wildptr.wat", plugin.Options{Outbox: &out})
	_, err := p.Handle(context.Background(), &plugin.Message{Subject: "s", Reply: "r"})
	f := faultOf(t, err)
	if f.Kind != plugin.FaultMemory || !strings.Contains(f.Summary(), "trellis.reply was passed memory [2147483392") {
		t.Fatalf("kind %v summary %q", f.Kind, f.Summary())
	}
	if n := len(out.take()); n != 0 {
		t.Fatalf("a reply went out from wild memory (%d messages)", n)
	}
}

func TestHandlerStatusAndErrorText(t *testing.T) {
	p := load(t, "testdata/status.wat", plugin.Options{})
	res, err := p.Handle(context.Background(), &plugin.Message{Subject: "s", Reply: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 400 || res.Error != "payload must be JSON" || res.Replied {
		t.Fatalf("result %+v", res)
	}
}

// TestTableGrowthIsCapped: a table declared without a maximum can grow by
// about a million elements; past that table.grow fails, instead of taking
// a gigabyte of host memory outside the memory limit.
func TestTableGrowthIsCapped(t *testing.T) {
	var out recorder
	p := load(t, "testdata/tablehog.wat", plugin.Options{Name: "tablehog", Outbox: &out})
	for _, c := range []struct {
		by   byte // 2^20 elements each
		want string
	}{{0, "grown"}, {2, "refused"}, {128, "refused"}, {1, "grown"}, {1, "refused"}} {
		if _, err := p.Handle(context.Background(), &plugin.Message{Subject: "s", Reply: "r", Data: []byte{c.by}}); err != nil {
			t.Fatal(err)
		}
		if sent := out.take(); len(sent) != 1 || string(sent[0].Data) != c.want {
			t.Fatalf("grow by %d<<20: sent %v, want %q", c.by, sent, c.want)
		}
	}
}

func TestMemoryLimitCapsGrowth(t *testing.T) {
	for _, c := range []struct {
		limit uint64
		want  string
	}{{1 << 20, "refused"}, {16 << 20, "grown"}} {
		var out recorder
		p := load(t, "testdata/memhog.wat", plugin.Options{Name: fmt.Sprint("memhog", c.limit), MemoryLimit: c.limit, Outbox: &out})
		if _, err := p.Handle(context.Background(), &plugin.Message{Subject: "s", Reply: "r"}); err != nil {
			t.Fatal(err)
		}
		if sent := out.take(); len(sent) != 1 || string(sent[0].Data) != c.want {
			t.Fatalf("limit %d: sent %v, want %q", c.limit, sent, c.want)
		}
	}
}

func TestBusyWhenPoolStaysFull(t *testing.T) {
	p := load(t, "testdata/loop.wat", plugin.Options{Timeout: 300 * time.Millisecond, PoolSize: 1})
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := p.Handle(context.Background(), &plugin.Message{Subject: "s"})
			errs <- err
		}()
	}
	kinds := map[plugin.FaultKind]int{}
	for i := 0; i < 2; i++ {
		kinds[faultOf(t, <-errs).Kind]++
	}
	// One call holds the only instance until its deadline; the other waits for
	// it within the same deadline and reports busy (or, rarely, gets the
	// instance back in time and is stopped itself).
	if kinds[plugin.FaultTimeout] < 1 || kinds[plugin.FaultTimeout]+kinds[plugin.FaultBusy] != 2 {
		t.Fatalf("fault kinds %v, want a timeout and a busy", kinds)
	}
}

func TestConcurrentCallsShareThePool(t *testing.T) {
	var out recorder
	p := load(t, echoWAT, plugin.Options{Outbox: &out, PoolSize: 3})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				data := []byte(fmt.Sprintf("%d-%d", g, i))
				res, err := p.Handle(context.Background(), &plugin.Message{Subject: "echo", Reply: "r", Data: data})
				if err != nil || !res.Replied {
					t.Errorf("Handle: %+v %v", res, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	sent := out.take()
	if len(sent) != 8*200 {
		t.Fatalf("%d replies, want %d", len(sent), 8*200)
	}
	seen := map[string]bool{}
	for _, m := range sent {
		seen[string(m.Data)] = true
	}
	if len(seen) != 8*200 {
		t.Fatalf("%d distinct replies, want %d", len(seen), 8*200)
	}
	if _, _, max := p.PoolStats(); max != 3 {
		t.Fatalf("pool max %d", max)
	}
}

func TestCloseWaitsForInFlightCalls(t *testing.T) {
	p, err := plugin.Load(context.Background(), trellistest.WasmBytes(t, "testdata/loop.wat"),
		plugin.Options{Name: "loop", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		close(started)
		_, err := p.Handle(context.Background(), &plugin.Message{Subject: "s"})
		done <- err
	}()
	<-started
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The call holds its instance until its 200 ms deadline; Close must
	// have waited for that.
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("Close returned after %v, before the in-flight call ended", waited)
	}
	select {
	case err := <-done:
		if faultOf(t, err).Kind != plugin.FaultTimeout {
			t.Fatalf("in-flight call ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight call never returned")
	}
	if _, err := p.Handle(context.Background(), &plugin.Message{Subject: "s"}); faultOf(t, err).Kind != plugin.FaultClosed {
		t.Fatalf("Handle after Close: %v", err)
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestInitPastItsDeadlineRefusesTheVersionAtOnce: a trellis_init that never
// returns is stopped at the init deadline, on the first instance, and the
// error names that deadline. It used to run for 30 s and say 5 s.
func TestInitPastItsDeadlineRefusesTheVersionAtOnce(t *testing.T) {
	wasm := trellistest.WasmBytes(t, "testdata/initloop.wat")
	for _, timeout := range []time.Duration{300 * time.Millisecond, 700 * time.Millisecond} {
		start := time.Now()
		_, err := plugin.Load(context.Background(), wasm, plugin.Options{Name: "initloop", InitTimeout: timeout, PoolSize: 4})
		took := time.Since(start)
		if err == nil {
			t.Fatal("Load succeeded")
		}
		if want := fmt.Sprintf("stopped after the %s init deadline", timeout); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "trellis_init") {
			t.Errorf("error %q does not say %q", err, want)
		}
		if took > timeout+2*time.Second {
			t.Errorf("Load took %s with a %s deadline", took, timeout)
		}
	}
}
