package reload_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/dev"
	"github.com/trellis-mesh/trellis/host/internal/reload"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// fixture holds the bytes of the two versions.
type fixture struct{ v1, v2 []byte }

func versions(t *testing.T) fixture {
	return fixture{
		v1: trellistest.WasmBytes(t, "testdata/v1.wat"),
		v2: trellistest.WasmBytes(t, "testdata/v2.wat"),
	}
}

// flip writes the version that is not current over path, in place on even
// rounds and by rename on odd ones, waits until it answers, and returns it.
func (fx fixture) flip(t *testing.T, h *trellistest.Host, path, current string, round int) string {
	t.Helper()
	next, b := "v2", fx.v2
	if current == "v2" {
		next, b = "v1", fx.v1
	}
	if round%2 == 0 {
		writeInPlace(t, path, b)
	} else {
		writeByRename(t, path, b)
	}
	waitAnswer(t, h.Client(), next+":")
	return next
}

// serveDir runs dev mode on dir, as `trellis dev` does, until the test ends.
func serveDir(t *testing.T, h *trellistest.Host, dir string) { serveDirB(t, h, dir) }

func serveDirB(t testing.TB, h *trellistest.Host, dir string, subjects ...string) {
	t.Helper()
	opts := dev.Options{BuildDir: t.TempDir(), Debounce: 20 * time.Millisecond, Logger: h.Logger()}
	opts.Spec.Subjects = subjects
	d := dev.New(h.Host, dir, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx, nil); err != nil {
			t.Errorf("dev.Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// writeInPlace overwrites the file's bytes, as cp and most editors' plain
// saves do; writeByRename writes a temporary file and renames it over, as
// go build -o, rsync and careful editors do.
func writeInPlace(t *testing.T, path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeByRename(t *testing.T, path string, b []byte) {
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitAnswer polls until a request is answered with prefix.
func waitAnswer(t *testing.T, nc *nats.Conn, prefix string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		m, err := nc.Request("versioned", []byte("probe"), time.Second)
		if err == nil && strings.HasPrefix(string(m.Data), prefix) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never answered with %q", prefix)
}

func TestReloadUnderLoadLosesNothing(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "versioned.wasm")
	writeByRename(t, path, fx.v1)
	serveDir(t, h, dir)
	waitAnswer(t, h.Client(), "v1:")

	const requesters = 4
	var stop atomic.Bool
	var sent, answered, failures atomic.Int64
	type seen struct {
		switches int
		last     string
	}
	results := make([]seen, requesters)
	var wg sync.WaitGroup
	for g := 0; g < requesters; g++ {
		nc, err := nats.Connect(h.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("r%d-%d", g, i)
				sent.Add(1)
				if err := nc.PublishRequest("versioned", inbox, []byte(id)); err != nil {
					failures.Add(1)
					t.Errorf("publish %s: %v", id, err)
					return
				}
				m, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					failures.Add(1)
					t.Errorf("request %s: no answer: %v", id, err)
					return
				}
				ver, body, _ := strings.Cut(string(m.Data), ":")
				if code := m.Header.Get(abi.HeaderErrorCode); code != "" || body != id || (ver != "v1" && ver != "v2") {
					failures.Add(1)
					t.Errorf("request %s: answer %q (error %s %s)", id, m.Data, code, m.Header.Get(abi.HeaderError))
					return
				}
				answered.Add(1)
				if ver != results[g].last {
					if results[g].last != "" {
						results[g].switches++
					}
					results[g].last = ver
				}
			}
			// Nothing more may arrive: one answer per request.
			if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
				failures.Add(1)
				t.Errorf("requester %d got a duplicate answer %q", g, m.Data)
			}
		}(g)
	}

	start := time.Now()
	good, corrupt := 0, 0
	current := "v1"
	for i := 0; i < 24; i++ {
		if i%6 == 5 {
			// A broken file: the serving version must not change.
			bad := fx.v2[:len(fx.v2)/2]
			if i%12 == 11 {
				bad = []byte("this is not wasm")
			}
			refused := strings.Count(h.Logs(), "plugin refused")
			writeInPlace(t, path, bad)
			corrupt++
			trellistest.WaitFor(t, 10*time.Second, "the broken file to be refused", func() bool {
				return strings.Count(h.Logs(), "plugin refused") > refused
			})
			waitAnswer(t, h.Client(), current+":")
			continue
		}
		current = fx.flip(t, h, path, current, i)
		good++
		// Let traffic flow on this version.
		from := answered.Load()
		trellistest.WaitFor(t, 10*time.Second, "answers from "+current, func() bool { return answered.Load() >= from+50 })
	}
	// Restore a good file so the last state is known.
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)

	if failures.Load() > 0 {
		t.Fatalf("%d failures", failures.Load())
	}
	if sent.Load() != answered.Load() {
		t.Fatalf("sent %d requests, %d answered", sent.Load(), answered.Load())
	}
	for g, r := range results {
		if r.switches > good {
			t.Errorf("requester %d saw %d version switches for %d reloads: answers went back and forth", g, r.switches, good)
		}
		if r.last != current {
			t.Errorf("requester %d last saw %s, want %s", g, r.last, current)
		}
	}
	t.Logf("%d good reloads, %d corrupt files, %d requests in %v (%.0f/s), all answered once",
		good, corrupt, answered.Load(), elapsed.Round(time.Millisecond), float64(answered.Load())/elapsed.Seconds())
	if good < 20 || answered.Load() < 1000 {
		t.Fatalf("too little exercised: %d reloads, %d requests", good, answered.Load())
	}
	if !h.WaitLog(time.Second, "plugin refused", "plugin=versioned") {
		t.Fatal("the corrupt files were not logged as refused")
	}
}

func TestReloadUnderLoadHandlesEveryEventOnce(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "versioned.wasm")
	writeByRename(t, path, fx.v1)
	serveDir(t, h, dir)
	waitAnswer(t, h.Client(), "v1:")

	nc := h.Client()
	out, err := nc.SubscribeSync("versioned.out")
	if err != nil {
		t.Fatal(err)
	}
	out.SetPendingLimits(-1, -1)
	nc.Flush()

	pub, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var stop atomic.Bool
	var published atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Microsecond) // about 2000 events a second
		defer tick.Stop()
		for i := 0; !stop.Load(); i++ {
			<-tick.C
			if err := pub.Publish("versioned", []byte(fmt.Sprintf("e%d", i))); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			published.Add(1)
		}
		pub.Flush()
	}()
	current := "v1"
	for i := 0; i < 20; i++ {
		current = fx.flip(t, h, path, current, i)
		from := published.Load()
		trellistest.WaitFor(t, 10*time.Second, "events for "+current, func() bool { return published.Load() >= from+50 })
	}
	stop.Store(true)
	<-done
	n := int(published.Load())
	got := map[string]int{}
	for len(got) < n {
		m, err := out.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%d of %d events handled: %v", len(got), n, err)
		}
		_, id, _ := bytes.Cut(m.Data, []byte(":"))
		got[string(id)]++
	}
	if m, err := out.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("an event was handled twice: %q", m.Data)
	}
	for id, c := range got {
		if c != 1 {
			t.Fatalf("event %s handled %d times", id, c)
		}
	}
	t.Logf("%d events, 20 reloads, each event handled once", n)
}

// reconcilerSetup serves v1 from a file through a bare Reconciler.
func reconcilerSetup(t *testing.T) (fixture, *trellistest.Host, string, *reload.Reconciler, reload.Want) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	path := filepath.Join(t.TempDir(), "v.wasm")
	writeByRename(t, path, fx.v1)
	want := reload.Want{}
	want.Spec.Name = "versioned"
	want.Spec.Path = path
	want.Spec.Grants.Subscribe = []string{">"} // as in dev
	return fx, h, path, reload.New(h.Host, nil), want
}

// The reconciler on its own: a new file loads, a changed spec reloads, a
// removed want unloads, a broken file is refused once and not retried.
func TestReconcilerAppliesOnlyDifferences(t *testing.T) {
	_, h, path, rec, want := reconcilerSetup(t)
	ctx := context.Background()

	if res := rec.Apply(ctx, []reload.Want{want}); len(res.Loaded) != 1 {
		t.Fatalf("first apply: %+v", res)
	}
	if res := rec.Apply(ctx, []reload.Want{want}); len(res.Unchanged) != 1 {
		t.Fatalf("same apply: %+v", res)
	}
	want.Spec.Config = map[string]string{"k": "v"}
	if res := rec.Apply(ctx, []reload.Want{want}); len(res.Reloaded) != 1 {
		t.Fatalf("spec change: %+v", res)
	}
	writeByRename(t, path, []byte("garbage"))
	if res := rec.Apply(ctx, []reload.Want{want}); res.Failed["versioned"] == nil {
		t.Fatalf("garbage: %+v", res)
	}
	res := rec.Apply(ctx, []reload.Want{want})
	if err := res.Failed["versioned"]; err == nil || !strings.Contains(err.Error(), "refused before") {
		t.Fatalf("garbage again: %+v", res)
	}
	if n := strings.Count(h.Logs(), "plugin refused"); n != 1 {
		t.Fatalf("refusal logged %d times, want once", n)
	}
	if m := h.Request("versioned", []byte("x"), 5*time.Second); string(m.Data) != "v1:x" {
		t.Fatalf("after refusals the old version should serve: %q", m.Data)
	}
	if res := rec.Apply(ctx, nil); len(res.Unloaded) != 1 || len(h.Plugins()) != 0 {
		t.Fatalf("unload: %+v, %d plugins", res, len(h.Plugins()))
	}
}

func TestChangedSubjectsMoveWithoutAGapOnSharedOnes(t *testing.T) {
	_, h, _, rec, want := reconcilerSetup(t)
	want.Spec.Subjects = []string{"versioned", "only.a"}
	ctx := context.Background()
	if res := rec.Apply(ctx, []reload.Want{want}); len(res.Loaded) != 1 {
		t.Fatalf("%+v", res)
	}
	var stop atomic.Bool
	var failed atomic.Int64
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := nats.Connect(h.ClientURL())
		if err != nil {
			failed.Add(1)
			return
		}
		defer nc.Close()
		for !stop.Load() {
			m, err := nc.Request("versioned", []byte("x"), 5*time.Second)
			if err != nil || m.Header.Get(abi.HeaderErrorCode) != "" {
				failed.Add(1)
			}
			n.Add(1)
		}
	}()
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			want.Spec.Subjects = []string{"versioned", "only.b"}
		} else {
			want.Spec.Subjects = []string{"versioned", "only.a"}
		}
		if res := rec.Apply(ctx, []reload.Want{want}); len(res.Reloaded) != 1 {
			t.Fatalf("%+v", res)
		}
		from := n.Load()
		trellistest.WaitFor(t, 10*time.Second, "requests on the shared subject", func() bool { return n.Load() >= from+10 })
	}
	stop.Store(true)
	<-done
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests on the shared subject failed during subject changes", failed.Load(), n.Load())
	}
	// The last apply had only.a.
	if m := h.Request("only.a", []byte("y"), 5*time.Second); string(m.Data) != "v1:y" {
		t.Fatalf("only.a: %q", m.Data)
	}
	if _, err := h.Client().Request("only.b", []byte("y"), 300*time.Millisecond); err == nil {
		t.Fatal("only.b is still served after the subjects changed")
	}
}

func TestConfigLoopAppliesEditsAndRefusesBadConfigs(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "v1.wasm"), fx.v1, 0o644)
	os.WriteFile(filepath.Join(dir, "v2.wasm"), fx.v2, 0o644)
	file := filepath.Join(dir, "trellis.hcl")
	write := func(src string) {
		t.Helper()
		writeByRename(t, file, []byte(src))
	}
	write(`plugin "a" {
  path = "v1.wasm"
  subjects = ["a"]
}
`)
	loop := runConfigLoop(t, h, h.Host, file)

	waitFor := func(subject, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			m, err := h.Client().Request(subject, []byte("x"), 500*time.Millisecond)
			if err == nil && string(m.Data) == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s never answered %q\n%s", subject, want, h.Logs())
	}
	waitFor("a", "v1:x")

	// Edit: a switches to v2, and b appears.
	write(`plugin "a" {
  path = "v2.wasm"
  subjects = ["a"]
}
plugin "b" {
  path = "v1.wasm"
  subjects = ["b"]
}
`)
	waitFor("a", "v2:x")
	waitFor("b", "v1:x")

	// A config with an error is refused whole: b is not removed.
	write(`plugin "a" {
  path = "v2.wasm"
  subjects = ["a"]
  timeout = "soon"
}
`)
	if !h.WaitLog(10*time.Second, "config refused", "trellis.hcl:4:") {
		t.Fatalf("no refusal with file:line:\n%s", h.Logs())
	}
	waitFor("b", "v1:x")

	// Remove b; SIGHUP-style trigger also works.
	write(`plugin "a" {
  path = "v1.wasm"
  subjects = ["a"]
}
`)
	loop.Trigger()
	waitFor("a", "v1:x")
	trellistest.WaitFor(t, 10*time.Second, "b to be unloaded", func() bool { return len(h.Plugins()) == 1 })

	// A new plugin whose module is not Wasm: the config is refused and
	// the host names c as not ready, with why, until a config drops it.
	os.WriteFile(filepath.Join(dir, "bad.wasm"), []byte("not wasm"), 0o644)
	write(`plugin "a" {
  path = "v1.wasm"
  subjects = ["a"]
}
plugin "c" {
  path = "bad.wasm"
  subjects = ["c"]
}
`)
	trellistest.WaitFor(t, 10*time.Second, "c listed as refused", func() bool {
		p := h.Readiness().Plugins
		return len(p) == 1 && p[0].Plugin == "c" && p[0].State == host.StateRefused && strings.Contains(p[0].Reason, "bad.wasm")
	})
	write(`plugin "a" {
  path = "v1.wasm"
  subjects = ["a"]
}
`)
	trellistest.WaitFor(t, 10*time.Second, "c off the not-ready list", func() bool { return len(h.Readiness().Plugins) == 0 })
	waitFor("a", "v1:x")
}

func TestSymlinkSwapAsKubernetesConfigMapsDo(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	// The layout kubelet writes: versioned.wasm -> ..data/versioned.wasm,
	// ..data -> ..<timestamp>/, replaced by renaming a new ..data symlink.
	mk := func(stamp string, b []byte) {
		os.MkdirAll(filepath.Join(dir, stamp), 0o755)
		os.WriteFile(filepath.Join(dir, stamp, "versioned.wasm"), b, 0o644)
	}
	mk("..2026_11_25_01", fx.v1)
	if err := os.Symlink("..2026_11_25_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "versioned.wasm"), filepath.Join(dir, "versioned.wasm")); err != nil {
		t.Fatal(err)
	}
	serveDir(t, h, dir)
	waitAnswer(t, h.Client(), "v1:")

	mk("..2026_11_25_02", fx.v2)
	if err := os.Symlink("..2026_11_25_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "..2026_11_25_01"))
	waitAnswer(t, h.Client(), "v2:")
}

func TestWatchedDirectoryReplacedByRename(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "plugins")
	os.MkdirAll(dir, 0o755)
	writeByRename(t, filepath.Join(dir, "versioned.wasm"), fx.v1)
	serveDir(t, h, dir)
	waitAnswer(t, h.Client(), "v1:")

	next := filepath.Join(parent, "plugins.new")
	os.MkdirAll(next, 0o755)
	writeByRename(t, filepath.Join(next, "versioned.wasm"), fx.v2)
	if err := os.Rename(dir, filepath.Join(parent, "plugins.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, h.Client(), "v2:")
	// And the new directory is watched: a further change is seen.
	writeByRename(t, filepath.Join(dir, "versioned.wasm"), fx.v1)
	waitAnswer(t, h.Client(), "v1:")
}

func TestDeletedFileUnloadsThePlugin(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "versioned.wasm")
	writeByRename(t, path, fx.v1)
	serveDir(t, h, dir)
	waitAnswer(t, h.Client(), "v1:")
	os.Remove(path)
	if !h.WaitLog(10*time.Second, "plugin unloaded", "plugin=versioned", "version=") {
		t.Fatalf("not unloaded:\n%s", h.Logs())
	}
	if _, err := h.Client().Request("versioned", nil, 300*time.Millisecond); err == nil {
		t.Fatal("still answering after the file was deleted")
	}

	// A file that is not Wasm, never served: the host lists it as not
	// ready until it is deleted.
	bad := filepath.Join(dir, "broken.wasm")
	writeByRename(t, bad, []byte("not wasm"))
	trellistest.WaitFor(t, 10*time.Second, "broken listed as refused", func() bool {
		p := h.Readiness().Plugins
		return len(p) == 1 && p[0].Plugin == "broken" && p[0].State == host.StateRefused
	})
	os.Remove(bad)
	trellistest.WaitFor(t, 10*time.Second, "broken off the not-ready list", func() bool { return len(h.Readiness().Plugins) == 0 })
}

// stuckHost reports when an Apply that loads one plugin begins and how
// each ends, and gives that plugin a short init deadline.
type stuckHost struct {
	*host.Host
	name        string
	initTimeout time.Duration
	began       chan struct{} // one per Apply with the plugin
	ended       chan error    // one per Apply with the plugin
}

func (s *stuckHost) Apply(ctx context.Context, c host.Change) (host.Applied, error) {
	stuck := false
	for i := range c.Load {
		if c.Load[i].Name == s.name {
			c.Load[i].InitTimeout = s.initTimeout
			stuck = true
		}
	}
	if !stuck {
		return s.Host.Apply(ctx, c)
	}
	s.began <- struct{}{}
	done, err := s.Host.Apply(ctx, c)
	s.ended <- err
	return done, err
}

// TestLoopingInitRefusesItsConfigAndANewerConfigSupersedesIt: a config
// whose new plugin's trellis_init loops is refused whole at that plugin's
// init deadline, with an error that names it, and changes nothing; a newer
// version of the file, written while the looping one is being prepared,
// abandons it at once instead of waiting for its deadline.
func TestLoopingInitRefusesItsConfigAndANewerConfigSupersedesIt(t *testing.T) {
	const initDeadline = 4 * time.Second
	// Far below initDeadline: a reload of a tiny module takes milliseconds.
	const reloadBound = 2500 * time.Millisecond
	fx := versions(t)
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	writeByRename(t, filepath.Join(dir, "a.wasm"), fx.v1)
	writeByRename(t, filepath.Join(dir, "a2.wasm"), fx.v2)
	writeByRename(t, filepath.Join(dir, "stuck.wasm"), trellistest.WasmBytes(t, "../plugin/testdata/initloop.wat"))
	file := filepath.Join(dir, "trellis.hcl")
	aOnly := `plugin "a" {
  path = "a.wasm"
  subjects = ["a"]
}
`
	withStuck := aOnly + `plugin "stuck" {
  path = "stuck.wasm"
  subjects = ["stuck"]
}
`
	writeByRename(t, file, []byte(aOnly))
	sh := &stuckHost{Host: h.Host, name: "stuck", initTimeout: initDeadline,
		began: make(chan struct{}, 4), ended: make(chan error, 4)}
	runConfigLoop(t, h, sh, file)
	waitSubject(t, h, "a", "v1:x", 10*time.Second)

	// The looping plugin comes with a new version of a: neither serves
	// until the looping one is refused, and then neither does.
	writeByRename(t, file, []byte(strings.Replace(withStuck, "a.wasm", "a2.wasm", 1)))
	waitBegan := func() {
		t.Helper()
		select {
		case <-sh.began:
		case <-time.After(10 * time.Second):
			t.Fatalf("the looping plugin's load never began\n%s", h.Logs())
		}
	}
	waitBegan()
	began := time.Now()
	var err error
	select {
	case err = <-sh.ended:
	case <-time.After(initDeadline + 10*time.Second):
		t.Fatalf("the looping plugin's load did not end at its %s deadline", initDeadline)
	}
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "trellis_init") ||
		!strings.Contains(err.Error(), fmt.Sprintf("stopped after the %s init deadline", initDeadline)) {
		t.Fatalf("error %v; want trellis_init stopped after the %s deadline", err, initDeadline)
	}
	if took > initDeadline+5*time.Second {
		t.Errorf("the looping plugin was refused %s after its load began, deadline %s", took, initDeadline)
	}
	if m := h.Request("a", []byte("x"), 2*time.Second); string(m.Data) != "v1:x" {
		t.Fatalf("a changed although its config was refused: %q", m.Data)
	}
	if !h.WaitLog(time.Second, "config refused", "stuck") {
		t.Fatalf("no refusal naming the plugin:\n%s", h.Logs())
	}

	// Again, and this time the file is fixed while the looping plugin is
	// being prepared: the fix applies at once.
	writeByRename(t, file, []byte(withStuck+"# again\n"))
	waitBegan()
	writeByRename(t, file, []byte(strings.Replace(aOnly, "a.wasm", "a2.wasm", 1)))
	waitSubject(t, h, "a", "v2:x", reloadBound)
	select {
	case err := <-sh.ended:
		if err == nil || strings.Contains(err.Error(), "init deadline") {
			t.Fatalf("the superseded apply ended with %v, want it abandoned before its deadline", err)
		}
	case <-time.After(reloadBound):
		t.Fatal("the superseded apply did not end")
	}
	for _, p := range h.Plugins() {
		if p.Name == "stuck" {
			t.Fatal("the looping plugin was loaded")
		}
	}
}

// runConfigLoop runs a config loop for file on rh (h's host, or a wrapper
// of it) until the test ends.
func runConfigLoop(t *testing.T, h *trellistest.Host, rh config.Host, file string) *config.Loop {
	t.Helper()
	loop := config.NewLoop(rh, file, 30*time.Millisecond, h.Logger())
	c, err := configLoad(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loop.Run(ctx, c, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return loop
}

// waitSubject polls subject until it answers want, failing after within.
func waitSubject(t *testing.T, h *trellistest.Host, subject, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := h.Client().Request(subject, []byte("x"), 200*time.Millisecond)
		if err == nil && string(m.Data) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %q within %s\n%s", subject, want, within, h.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
