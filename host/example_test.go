package host_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
)

// Embedding Trellis in a Go program: a host with its own NATS, a plugin
// loaded from a file, and a request answered by it. The program's slog
// logger receives the host's logs and the plugin's.
func Example() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := host.New(ctx, host.Options{
		Logger: host.SlogLogger(logger),
		Bus:    bus.Options{Listen: "127.0.0.1:0"}, // any free port
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close(ctx)

	// testdata/echo.wasm is abi/echo.wat built with trellis build.
	err = h.Load(ctx, host.Spec{Name: "echo", Path: "testdata/echo.wasm", Subjects: []string{"echo"}})
	if err != nil {
		log.Fatal(err)
	}
	reply, err := h.Conn().Request("echo", []byte("hello"), time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply.Data))
	// Output: hello
}

// A program that runs nats-server itself gives the host its server (or a
// connection of its own, with bus.Options{Conn: nc}); the host leaves both
// running when it closes.
func Example_callersServer() {
	ctx := context.Background()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(5 * time.Second) {
		log.Fatal("nats-server did not start")
	}

	h, err := host.New(ctx, host.Options{Bus: bus.Options{Server: srv}})
	if err != nil {
		log.Fatal(err)
	}
	err = h.Load(ctx, host.Spec{Name: "echo", Path: "testdata/echo.wasm", Subjects: []string{"echo"}})
	if err != nil {
		log.Fatal(err)
	}

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	reply, err := nc.Request("echo", []byte("from a client of the program's server"), time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply.Data))
	h.Close(ctx)
	fmt.Println("server still running:", srv.Running())
	// Output:
	// from a client of the program's server
	// server still running: true
}
