package host_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// TestIngressCutsSlowClientsAndIdleConnections drives a real host over real
// TCP connections with a read timeout, an idle timeout and a cap of one
// connection, all short, and checks each with bounds.
func TestIngressCutsSlowClientsAndIdleConnections(t *testing.T) {
	const (
		readTimeout = 400 * time.Millisecond
		idleTimeout = 300 * time.Millisecond
		slack       = 50 * time.Millisecond // timers may fire a little early against our clock
		bound       = 3 * time.Second       // generous, for a loaded machine
	)
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", ReadTimeout: readTimeout, IdleTimeout: idleTimeout, MaxConns: 1,
			Routes: []host.HTTPRoute{{Pattern: "POST /echo", Subject: "echo"}}}
	})
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", h.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second)) // nothing in this test may hang
		return c
	}
	const request = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"

	t.Run("body one byte per second is cut at the read timeout", func(t *testing.T) {
		c := dial()
		start := time.Now()
		if _, err := io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\na"); err != nil {
			t.Fatal(err)
		}
		stop, wrote := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(wrote)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(c, "a"); err != nil {
						return
					}
				}
			}
		}()
		defer func() { close(stop); <-wrote }()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("no answer to the slow body: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
		if elapsed < readTimeout-slack || elapsed > bound {
			t.Fatalf("slow body answered after %v, want about %v", elapsed, readTimeout)
		}
		// The server closes the connection after the 408.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection still open after the read timeout")
		}
	})

	t.Run("idle keep-alive connection is closed at the idle timeout", func(t *testing.T) {
		c := dial()
		io.WriteString(c, request)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered := time.Now()
		if resp.StatusCode != 200 || string(body) != "hi" || resp.Close {
			t.Fatalf("%d %q close=%v", resp.StatusCode, body, resp.Close)
		}
		_, err = br.ReadByte()
		idle := time.Since(answered)
		if err != io.EOF {
			t.Fatalf("read on the idle connection: %v, want EOF", err)
		}
		if idle < idleTimeout-slack || idle > bound {
			t.Fatalf("idle connection closed after %v, want about %v", idle, idleTimeout)
		}
	})

	t.Run("connection past the cap waits until a slot frees", func(t *testing.T) {
		first := dial()
		io.WriteString(first, request)
		br1 := bufio.NewReader(first)
		resp, err := http.ReadResponse(br1, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		firstAnswered := time.Now()
		// The first connection idles, holding the only slot. The second is
		// accepted by the kernel but not served until the first is closed
		// by the idle timeout.
		second := dial()
		io.WriteString(second, request)
		resp, err = http.ReadResponse(bufio.NewReader(second), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		waited := time.Since(firstAnswered)
		if resp.StatusCode != 200 {
			t.Fatalf("second connection: %d", resp.StatusCode)
		}
		if waited < idleTimeout-slack || waited > bound {
			t.Fatalf("second connection served %v after the first went idle, want about the idle timeout %v", waited, idleTimeout)
		}
		if _, err := br1.ReadByte(); err != io.EOF {
			t.Fatalf("first connection: %v, want EOF (closed at the idle timeout)", err)
		}
	})
}
