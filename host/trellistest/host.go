package trellistest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// Host is a real Trellis host with an embedded NATS server on a free port
// of 127.0.0.1, made for one test and closed when the test ends.
type Host struct {
	*host.Host
	tb   testing.TB
	log  hclog.Logger
	logs *SyncBuffer

	clientOnce sync.Once
	client     *nats.Conn
	clientErr  error
}

// NewHost starts a host. configure, if given, may change its options
// before it starts. The host's log is kept (see Logs) and printed if the
// test fails. Compiled plugins are cached on disk across test runs.
func NewHost(tb testing.TB, configure ...func(*host.Options)) *Host {
	tb.Helper()
	logs := &SyncBuffer{}
	opts := host.Options{
		Bus:      bus.Options{Listen: "127.0.0.1:0", StoreDir: tb.TempDir()},
		CacheDir: filepath.Join(os.TempDir(), "trellistest-cache"),
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "trellis", Level: hclog.Debug, Output: logs, DisableTime: true,
		}),
	}
	for _, c := range configure {
		c(&opts)
	}
	h, err := host.New(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	th := &Host{Host: h, tb: tb, log: opts.Logger, logs: logs}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if th.client != nil {
			th.client.Close()
		}
		if err := h.Close(ctx); err != nil {
			tb.Errorf("host close: %v", err)
		}
		if tb.Failed() {
			tb.Logf("host log:\n%s", logs.String())
		}
	})
	return th
}

// Load loads the .wasm at path as plugin name, failing the test on error.
// configure may change the spec (subjects, grants, config, limits).
func (h *Host) Load(name, path string, configure ...func(*host.Spec)) {
	h.tb.Helper()
	// Like `trellis dev`, the plugin may serve what it subscribes to.
	spec := host.Spec{Name: name, Path: path, Grants: plugin.Grants{Subscribe: []string{">"}}}
	for _, c := range configure {
		c(&spec)
	}
	if err := h.Host.Load(context.Background(), spec); err != nil {
		h.tb.Fatal(err)
	}
}

// Client returns a nats.go client connected to the host over TCP, as any
// outside program would be. It is made on first use and closed with the host.
func (h *Host) Client() *nats.Conn {
	h.tb.Helper()
	h.clientOnce.Do(func() { h.client, h.clientErr = nats.Connect(h.ClientURL()) })
	if h.clientErr != nil {
		h.tb.Fatal(h.clientErr)
	}
	return h.client
}

// Request sends a request from Client and fails the test if no reply comes
// within timeout.
func (h *Host) Request(subject string, data []byte, timeout time.Duration) *nats.Msg {
	h.tb.Helper()
	m, err := h.Client().Request(subject, data, timeout)
	if err != nil {
		h.tb.Fatalf("request %s: %v", subject, err)
	}
	return m
}

// Logger returns the host's logger, for components a test runs beside the
// host (a reload loop, say), so that their lines land in Logs too.
func (h *Host) Logger() hclog.Logger { return h.log }

// Logs returns everything the host has logged so far.
func (h *Host) Logs() string { return h.logs.String() }

// WaitLog waits up to timeout for the host's log to contain every one of
// parts on one line, and reports whether it did.
func (h *Host) WaitLog(timeout time.Duration, parts ...string) bool {
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(h.Logs(), "\n") {
			all := true
			for _, p := range parts {
				if !strings.Contains(line, p) {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer that a logger may write to from several
// goroutines while a test reads it, as a test host's log is kept.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits up to timeout for cond to hold, checking it every few
// milliseconds, and fails the test, naming what, if it does not. It waits
// for an event a test cannot be told of directly (a counter reaching a
// value), never for time to pass.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
