package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const (
	echoSrc   = "../examples/echo"
	greetSrc  = "../examples/greet"
	enrichSrc = "../examples/orders-enrich"
	notifySrc = "../examples/orders-notify"
)

func TestEchoAndGreetAnswerNATSClients(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	h.Load("greet", trellistest.Wasm(t, greetSrc))

	for _, payload := range []string{"hi", "", strings.Repeat("é", 1000)} {
		if m := h.Request("echo", []byte(payload), 5*time.Second); string(m.Data) != payload {
			t.Fatalf("echo %q = %q", payload, m.Data)
		}
	}
	if m := h.Request("greet", []byte("Ada"), 5*time.Second); string(m.Data) != "Hello, Ada!" {
		t.Fatalf("greet = %q", m.Data)
	}
	infos := h.Plugins()
	if len(infos) != 2 || infos[0].Name != "echo" || infos[0].Subjects[0] != "echo" || infos[0].Queue != "echo" {
		t.Fatalf("Plugins() = %+v", infos)
	}
	if !h.WaitLog(time.Second, "plugin loaded", "plugin=greet", "version="+infos[1].Version) {
		t.Fatalf("no load line for greet in log:\n%s", h.Logs())
	}
}

func TestPluginConfigReachesThePlugin(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, greetSrc), func(s *host.Spec) {
		s.Config = map[string]string{"greeting": "Bonjour"}
	})
	if m := h.Request("greet", []byte("Ada"), 5*time.Second); string(m.Data) != "Bonjour, Ada!" {
		t.Fatalf("greet = %q", m.Data)
	}
}

func TestSubjectsFromSpecReplaceDeclaredOnes(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("echo", trellistest.Wasm(t, echoSrc), func(s *host.Spec) {
		s.Subjects = []string{"api.echo.*"}
	})
	if m := h.Request("api.echo.v1", []byte("x"), 5*time.Second); string(m.Data) != "x" {
		t.Fatalf("reply %q", m.Data)
	}
	if _, err := h.Client().Request("echo", []byte("x"), 200*time.Millisecond); err == nil {
		t.Fatal("the declared subject is still served after the config replaced it")
	}
}

func TestOrderPipeline(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("orders-enrich", trellistest.Wasm(t, enrichSrc), func(s *host.Spec) {
		s.Grants.Publish = []string{"orders.enriched", "orders.rejected"}
	})
	h.Load("orders-notify", trellistest.Wasm(t, notifySrc), func(s *host.Spec) {
		s.Grants.Publish = []string{"notifications.>"}
	})
	nc := h.Client()
	emails, err := nc.SubscribeSync("notifications.email")
	if err != nil {
		t.Fatal(err)
	}
	enriched, _ := nc.SubscribeSync("orders.enriched")
	nc.Flush()

	if err := nc.Publish("orders.created", []byte(`{"id":"42","item":"book","qty":2,"customer":"ada@example.com"}`)); err != nil {
		t.Fatal(err)
	}
	em, err := emails.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no notification: %v\n%s", err, h.Logs())
	}
	var mail struct{ To, Subject, Body string }
	if err := json.Unmarshal(em.Data, &mail); err != nil {
		t.Fatal(err)
	}
	if mail.To != "ada@example.com" || mail.Subject != "Order 42 confirmed" || mail.Body != "2 x book, total 25.00. Thank you!" {
		t.Fatalf("email %+v", mail)
	}
	en, err := enriched.NextMsg(time.Second)
	if err != nil || en.Header.Get("Order-Id") != "42" || !strings.Contains(string(en.Data), `"status":"priced"`) {
		t.Fatalf("enriched event %v %v", en, err)
	}
}

func TestPublishWithoutGrantIsDeniedAndLoggedOnce(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("orders-enrich", trellistest.Wasm(t, enrichSrc)) // no grants
	for i := 0; i < 3; i++ {
		m := h.Request("orders.created", []byte(`{"id":"1","item":"pen"}`), 5*time.Second)
		if code := m.Header.Get(abi.HeaderErrorCode); code != "500" ||
			!strings.Contains(m.Header.Get(abi.HeaderError), "permission denied") {
			t.Fatalf("reply headers %v, want a 500 permission-denied error", m.Header)
		}
	}
	if n := strings.Count(h.Logs(), "denied: subject not granted"); n != 1 {
		t.Fatalf("denial logged %d times, want once:\n%s", n, h.Logs())
	}
	if d := h.Plugins()[0].Denied; d != 3 {
		t.Fatalf("%d denials counted, want 3", d)
	}
}

// wat builds a fixture of the plugin package.
func wat(t *testing.T, name string) string {
	return trellistest.Wasm(t, filepath.Join("internal", "plugin", "testdata", name+".wat"))
}

func TestFaultsAnswerWithErrorsAndOtherPluginsKeepServing(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	cases := []struct {
		fixture, code, says string
		timeout             time.Duration
	}{
		{"trap", "500", "unreachable", 0},
		{"loop", "504", "deadline exceeded", 300 * time.Millisecond},
		{"wildptr", "500", "out-of-bounds memory", 0},
		{"status", "400", "payload must be JSON", 0},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			h.Load(c.fixture, wat(t, c.fixture), func(s *host.Spec) {
				s.Subjects = []string{"bad." + c.fixture}
				s.Timeout = c.timeout
			})
			for i := 0; i < 2; i++ { // the second call proves the plugin is still served
				m := h.Request("bad."+c.fixture, []byte("x"), 10*time.Second)
				if m.Header.Get(abi.HeaderErrorCode) != c.code || !strings.Contains(m.Header.Get(abi.HeaderError), c.says) {
					t.Fatalf("reply headers %v, want code %s saying %q", m.Header, c.code, c.says)
				}
				if e := h.Request("echo", []byte("still here"), 5*time.Second); string(e.Data) != "still here" {
					t.Fatalf("echo after %s: %q", c.fixture, e.Data)
				}
			}
			if c.code != "400" && !h.WaitLog(time.Second, "plugin fault", "plugin="+c.fixture, "subject=bad."+c.fixture, "version=") {
				t.Fatalf("fault not logged with plugin, version and subject:\n%s", h.Logs())
			}
		})
	}
}

func TestBadFilesAreRefusedWithTheirNameAndHostKeepsServing(t *testing.T) {
	h := trellistest.NewHost(t)
	echoPath := trellistest.Wasm(t, echoSrc)
	h.Load("echo", echoPath)
	good, err := os.ReadFile(echoPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{
		"text.wasm":      []byte("hello, I am not wasm"),
		"truncated.wasm": good[:len(good)/3],
		// 14 bytes that declare 2^28 imports: the decoder would ask for
		// gigabytes, and a host in a small container would be killed.
		"bomb.wasm": []byte("\x00asm\x01\x00\x00\x00\x02\x04\xff\xff\xff\x7f"),
	}
	for _, f := range []string{"abiv2", "nohandle", "initfail"} {
		b, _ := os.ReadFile(wat(t, f))
		files[f+".wasm"] = b
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		err := h.Host.Load(context.Background(), host.Spec{Name: strings.TrimSuffix(name, ".wasm"), Path: p})
		if err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(name, ".wasm")) {
			t.Errorf("%s: error %v does not name the plugin", name, err)
		}
	}
	// A bad new version of a loaded plugin leaves the old one serving.
	err = h.Host.Load(context.Background(), host.Spec{Name: "echo", Path: filepath.Join(dir, "truncated.wasm")})
	if err == nil {
		t.Fatal("truncated echo replaced the good one")
	}
	if m := h.Request("echo", []byte("ok"), 5*time.Second); string(m.Data) != "ok" {
		t.Fatalf("echo = %q", m.Data)
	}
	if n := len(h.Plugins()); n != 1 {
		t.Fatalf("%d plugins loaded, want only echo", n)
	}
}

func TestPluginWithoutSubjectsIsRefused(t *testing.T) {
	h := trellistest.NewHost(t)
	err := h.Host.Load(context.Background(), host.Spec{Name: "trap", Path: wat(t, "trap")})
	if err == nil || !strings.Contains(err.Error(), "subscribes to no subjects") {
		t.Fatalf("error %v", err)
	}
}

func TestQueueGroupSharesWorkAcrossHosts(t *testing.T) {
	a := trellistest.NewHost(t)
	b := trellistest.NewHost(t, func(o *host.Options) { o.Bus = bus.Options{URL: a.ClientURL()} })
	path := trellistest.Wasm(t, "../abi/echo.wat")
	a.Load("echo", path)
	b.Load("echo", path)

	const n = 400
	for i := 0; i < n; i++ {
		want := fmt.Sprint(i)
		if m := a.Request("echo", []byte(want), 5*time.Second); string(m.Data) != want {
			t.Fatalf("request %d answered %q", i, m.Data)
		}
	}
	// Each host's own connection received part of the requests.
	count := func(h *trellistest.Host) int { return int(h.Conn().Stats().InMsgs) }
	ca, cb := count(a), count(b)
	if ca == 0 || cb == 0 {
		t.Fatalf("host a got %d messages, host b %d: the queue group did not share the work", ca, cb)
	}
}

func TestCloseFinishesInFlightRequests(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("conformance", trellistest.Wasm(t, "../sdk/go/conformance"), func(s *host.Spec) {
		s.Grants.Request = []string{"upstream.conf"}
	})
	// An upstream that holds the plugin's request, so the call is in
	// flight when the unload begins.
	held := make(chan *nats.Msg, 1)
	up, _ := h.Client().Subscribe("upstream.conf", func(m *nats.Msg) { held <- m })
	defer up.Unsubscribe()
	h.Client().Flush()

	client, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var wg sync.WaitGroup
	var reply *nats.Msg
	var rerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		reply, rerr = client.Request("conf.request", []byte("x"), 5*time.Second)
	}()
	var upstream *nats.Msg
	select {
	case upstream = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin's request never reached the upstream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Close the plugins, not the bus: the reply must still get out.
	unloaded := make(chan error, 1)
	go func() { unloaded <- h.Unload(ctx, "conformance") }()
	trellistest.WaitFor(t, 5*time.Second, "the unload to begin", func() bool { return len(h.Plugins()) == 0 })
	upstream.Respond([]byte("late"))
	if err := <-unloaded; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rerr != nil || string(reply.Data) != "upstream:late" {
		t.Fatalf("in-flight request ended with %v %v", reply, rerr)
	}
}

func TestBusyAnswer(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("loop", wat(t, "loop"), func(s *host.Spec) {
		s.Subjects = []string{"loop"}
		s.PoolSize = 1
		s.Timeout = 400 * time.Millisecond
	})
	nc := h.Client()
	inbox := nats.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	for i := 0; i < 3; i++ {
		nc.PublishRequest("loop", inbox, nil)
	}
	codes := map[string]int{}
	for i := 0; i < 3; i++ {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		codes[m.Header.Get(abi.HeaderErrorCode)]++
	}
	if codes["503"] == 0 || codes["504"] == 0 {
		t.Fatalf("reply codes %v, want both 503 (busy) and 504 (deadline)", codes)
	}
}

func TestCompilationCacheOnDiskIsReusedAfterRestart(t *testing.T) {
	cacheDir := t.TempDir()
	path := trellistest.Wasm(t, "../abi/echo.wat")
	count := func() int {
		n := 0
		filepath.Walk(cacheDir, func(_ string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	start := func() *trellistest.Host {
		return trellistest.NewHost(t, func(o *host.Options) { o.CacheDir = cacheDir })
	}
	h1 := start()
	h1.Load("echo", path)
	if err := h1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := count()
	if first == 0 {
		t.Fatal("nothing was written to the compilation cache")
	}
	h2 := start()
	h2.Load("echo", path)
	if got := count(); got != first {
		t.Fatalf("cache went from %d to %d files on a restart with the same plugin: it was compiled again", first, got)
	}
	if m := h2.Request("echo", []byte("cached"), 5*time.Second); string(m.Data) != "cached" {
		t.Fatalf("echo = %q", m.Data)
	}
}
