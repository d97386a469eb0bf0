package host_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// The examples load testdata/echo.wasm, committed so that they run as
// written; it must stay the build of abi/echo.wat.
func TestExampleModuleIsTheBuildOfEchoWAT(t *testing.T) {
	committed, err := os.ReadFile("testdata/echo.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if built := trellistest.WasmBytes(t, "../abi/echo.wat"); !bytes.Equal(committed, built) {
		t.Fatal("testdata/echo.wasm is not abi/echo.wat built: run go run ./cmd/trellis build abi/echo.wat -o host/testdata/echo.wasm from the repository root")
	}
}

// A host on the caller's connection serves through it and leaves it open.
func TestHostOnTheCallersConnectionLeavesItOpen(t *testing.T) {
	own := trellistest.NewHost(t)
	nc, err := nats.Connect(own.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h, err := host.New(t.Context(), host.Options{Bus: bus.Options{Conn: nc}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Load(t.Context(), host.Spec{Name: "echo", Path: "testdata/echo.wasm", Subjects: []string{"borrowed"}}); err != nil {
		t.Fatal(err)
	}
	if m := own.Request("borrowed", []byte("x"), 2*time.Second); string(m.Data) != "x" {
		t.Fatalf("reply %q", m.Data)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() {
		t.Fatal("the host closed the caller's connection")
	}
	if _, err := host.New(t.Context(), host.Options{Bus: bus.Options{Conn: nc, Listen: "127.0.0.1:0"}}); err == nil ||
		!strings.Contains(err.Error(), "set no other bus option") {
		t.Fatalf("a borrowed connection with server options: %v", err)
	}
}

// The slog adapter passes levels, names and key/value pairs through.
func TestSlogLoggerKeepsNamesLevelsAndPairs(t *testing.T) {
	var buf trellistest.SyncBuffer
	l := host.SlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	p := l.Named("echo").With("version", "abc")
	p.Debug("hidden")
	p.Warn("slow", "subject", "orders")
	out := buf.String()
	for _, want := range []string{"level=WARN", "msg=slow", "logger=echo", "version=abc", "subject=orders"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "hidden") || p.IsDebug() || !p.IsInfo() {
		t.Fatalf("levels not honoured: %q", out)
	}
}
