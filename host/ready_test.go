package host_test

import (
	"testing"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// A host held back from traffic answers every HTTP request 503 with
// Retry-After until it is marked ready, then serves.
func TestHeldTrafficIsRefusedUntilReady(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP.Listen = "127.0.0.1:0"
		o.HoldTraffic = true
	})
	h.Load("echo", trellistest.Wasm(t, "../abi/echo.wat"))
	if err := h.SetHTTPRoutes([]host.HTTPRoute{{Pattern: "POST /echo", Subject: "echo"}}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + h.HTTPAddr() + "/echo"
	if h.Ready() {
		t.Fatal("ready before MarkReady")
	}
	resp, body := trellistest.HTTP(t, nil, "POST", url, "hi")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != host.NotReadyRetryAfter {
		t.Fatalf("before ready: %d %q, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	h.MarkReady()
	if resp, body := trellistest.HTTP(t, nil, "POST", url, "hi"); resp.StatusCode != 200 || body != "hi" || !h.Ready() {
		t.Fatalf("after ready: %d %q", resp.StatusCode, body)
	}
}
