package dev_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/dev"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

const source = `package main

import trellis "github.com/trellis-mesh/trellis/sdk/go"

func init() {
	trellis.Handle("devloop", func(m *trellis.Msg) ([]byte, error) {
		return []byte("VERSION " + string(m.Data)), nil
	})
}

func main() {}
`

// TestSourceIsRebuiltOnSaveAndABrokenBuildKeepsTheLastGoodVersion edits a
// Go plugin's source under a served directory, as a developer would.
func TestSourceIsRebuiltOnSaveAndABrokenBuildKeepsTheLastGoodVersion(t *testing.T) {
	// The source must sit inside this module to import the SDK.
	root, err := os.MkdirTemp("testdata", "devloop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	src := filepath.Join(root, "devloop")
	os.MkdirAll(src, 0o755)
	save := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	save(strings.Replace(source, "VERSION", "one", 1))

	h := serveDev(t, root)

	expect := func(want string) {
		t.Helper()
		// A cold compile of a Go guest under the race detector on a loaded
		// 2-core machine takes minutes; this bounds a wait for an event.
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if m, err := h.Client().Request("devloop", []byte("x"), time.Second); err == nil && string(m.Data) == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("never answered %q\n%s", want, h.Logs())
	}
	expect("one x")

	save(strings.Replace(source, "VERSION", "two", 1))
	expect("two x")

	save(strings.Replace(source, "VERSION", "three", 1) + "\nthis does not compile\n")
	if !h.WaitLog(60*time.Second, "build failed; the last good version keeps serving", "plugin=devloop") {
		t.Fatalf("no build failure logged:\n%s", h.Logs())
	}
	expect("two x")

	save(strings.Replace(source, "VERSION", "four", 1))
	expect("four x")
}

// TestSourceThatNeverBuiltIsReportedNotLoaded: a plugin whose first build
// fails has no last good version; the log says it is not loaded, and the
// first good save loads it.
func TestSourceThatNeverBuiltIsReportedNotLoaded(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		trellistest.SkipWithoutToolchain(t, "wat2wasm not found (apt-get install wabt)")
	}
	echo, err := os.ReadFile("../../abi/echo.wat")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	src := filepath.Join(root, "fresh")
	os.MkdirAll(src, 0o755)
	if err := os.WriteFile(filepath.Join(src, "echo.wat"), []byte("(module (this is not wat"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := serveDev(t, root)

	if !h.WaitLog(30*time.Second, "build failed; the plugin is not loaded", "plugin=fresh") {
		t.Fatalf("first build failure not logged as such:\n%s", h.Logs())
	}
	if err := os.WriteFile(filepath.Join(src, "echo.wat"), echo, 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m, err := h.Client().Request("echo", []byte("now"), time.Second); err == nil && string(m.Data) == "now" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fixed plugin never answered\n%s", h.Logs())
		}
	}
}

// TestDevGrantsAPluginsOwnSubjectsButNoSystemSubject: in dev a plugin
// serves whatever it subscribes to, except the bus's own subjects.
func TestDevGrantsAPluginsOwnSubjectsButNoSystemSubject(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		trellistest.SkipWithoutToolchain(t, "wat2wasm not found (apt-get install wabt)")
	}
	echo, err := os.ReadFile("../../abi/echo.wat")
	if err != nil {
		t.Fatal(err)
	}
	const sys = `(module
  (import "trellis" "subscribe" (func $sub (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "$KV.>")
  (func (export "trellis_abi_v1"))
  (func (export "trellis_init") (result i32)
    (i32.sub (i32.const 0) (call $sub (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 0))))
  (func (export "trellis_handle") (param i32 i32 i32 i32) (result i32) (i32.const 0)))`
	root := t.TempDir()
	for name, src := range map[string][]byte{"echo": echo, "sys": []byte(sys)} {
		os.MkdirAll(filepath.Join(root, name), 0o755)
		if err := os.WriteFile(filepath.Join(root, name, name+".wat"), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := serveDev(t, root)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m, err := h.Client().Request("echo", []byte("own"), time.Second); err == nil && string(m.Data) == "own" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo never answered\n%s", h.Logs())
		}
	}
	if !h.WaitLog(30*time.Second, "plugin=sys", "system subjects are never granted") {
		t.Fatalf("sys was not refused for its $KV.> subscription:\n%s", h.Logs())
	}
	for _, p := range h.Plugins() {
		if p.Name == "sys" {
			t.Fatalf("sys loaded: %+v", p)
		}
	}
}

// serveDev runs the dev loop on root against a new test host until the
// test ends.
func serveDev(t *testing.T, root string) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t)
	d := dev.New(h.Host, root, dev.Options{BuildDir: t.TempDir(), Debounce: 50 * time.Millisecond, Logger: h.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// TestOnlyRegularFilesAreRead drops into a served directory what a module
// file must not be: a FIFO (whose open would block every later reload), a
// symlink to /dev/zero (whose read never ends) and a file larger than
// plugin.MaxModuleSize (sparse, so the test costs no disk). Each is refused
// with a line naming it and why, and a good plugin dropped in afterwards
// loads.
func TestOnlyRegularFilesAreRead(t *testing.T) {
	echo := trellistest.Wasm(t, "../../abi/echo.wat")
	root := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(root, "zero.wasm")); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(root, "big.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(plugin.MaxModuleSize + 1); err != nil {
		t.Fatal(err)
	}
	big.Close()

	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	h := serveDev(t, root)
	for _, want := range [][]string{
		{"plugin=fifo", "fifo.wasm is a named pipe (FIFO), not a regular file"},
		{"plugin=zero", "zero.wasm is a character device, not a regular file"},
		{"plugin=big", "big.wasm is larger than 1073741824 bytes (plugin.MaxModuleSize)"},
	} {
		if !h.WaitLog(30*time.Second, append([]string{"plugin refused"}, want...)...) {
			t.Fatalf("no line with %q:\n%s", want, h.Logs())
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("allocated %d MiB while refusing them", grew>>20)
	}

	b, err := os.ReadFile(echo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "echo.wasm"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m, err := h.Client().Request("echo", []byte("after"), time.Second); err == nil && string(m.Data) == "after" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a good plugin dropped in after them never answered\n%s", h.Logs())
		}
	}
	// The rescan that loaded echo read the FIFO again: one line is enough.
	if n := strings.Count(h.Logs(), "fifo.wasm is a named pipe"); n != 1 {
		t.Errorf("the FIFO was reported %d times; want once", n)
	}
}
