package admin_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// /readyz says why the host is not ready: held for its first apply, and
// each plugin not serving with its state; the reason a plugin was refused
// only to a caller with the endpoint's credentials. A plugin that serves
// again, or is unloaded, leaves the list.
func TestReadyzNamesPluginsNotServing(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) { o.HoldTraffic = true })
	_, base := startAdmin(t, h, admin.Options{Token: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}

	resp, body := trellistest.HTTP(t, nil, "GET", base+"/readyz", "")
	if resp.StatusCode != 503 || !strings.HasPrefix(body, "not ready\n") || !strings.Contains(body, "first apply") {
		t.Fatalf("held host: %d %q", resp.StatusCode, body)
	}

	// A plugin whose init never returns stays loading until its init
	// deadline, then is refused.
	slow := trellistest.Wasm(t, "../internal/plugin/testdata/initloop.wat")
	loaded := make(chan error, 1)
	go func() {
		loaded <- h.Host.Load(context.Background(), host.Spec{Name: "slow", Path: slow, InitTimeout: 1500 * time.Millisecond})
	}()
	trellistest.WaitFor(t, 10*time.Second, "slow listed as loading", func() bool {
		rd := h.Readiness()
		return len(rd.Plugins) == 1 && rd.Plugins[0].Plugin == "slow" && rd.Plugins[0].State == host.StateLoading
	})
	if _, body := trellistest.HTTP(t, nil, "GET", base+"/readyz", ""); !strings.Contains(body, "plugin slow: loading for ") {
		t.Errorf("while loading: %q", body)
	}
	if err := <-loaded; err == nil {
		t.Fatal("a plugin whose init never returns loaded")
	}

	h.MarkReady()
	// Ready (nothing holds traffic back), but slow is named, with why
	// only for the operator.
	resp, body = trellistest.HTTP(t, nil, "GET", base+"/readyz", "", auth...)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "ready\n") ||
		!strings.Contains(body, "plugin slow: refused for ") || !strings.Contains(body, `plugin "slow"`) {
		t.Fatalf("with credentials: %d %q", resp.StatusCode, body)
	}
	_, anon := trellistest.HTTP(t, nil, "GET", base+"/readyz", "")
	if !strings.Contains(anon, "plugin slow: refused") || strings.Contains(anon, `plugin "slow"`) || strings.Contains(anon, "initloop") {
		t.Errorf("without credentials the reason shows: %q", anon)
	}
	resp, js := trellistest.HTTP(t, nil, "GET", base+"/readyz?format=json", "", auth...)
	var rd host.Readiness
	if err := json.Unmarshal([]byte(js), &rd); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %v %q", err, js)
	}
	if !rd.Ready || !rd.BusConnected || rd.Held || len(rd.Plugins) != 1 || rd.Plugins[0].State != host.StateRefused ||
		!strings.Contains(rd.Plugins[0].Reason, "init") {
		t.Errorf("json readiness: %+v", rd)
	}

	// Fixed: the plugin serves and leaves the list.
	h.Load("slow", trellistest.Wasm(t, "../../abi/echo.wat"))
	if rd := h.Readiness(); len(rd.Plugins) != 0 {
		t.Errorf("after a good version serves: %+v", rd.Plugins)
	}
	// Refused again while a version serves: not listed, the last good
	// version serves on.
	if err := h.Host.Load(context.Background(), host.Spec{Name: "slow", Path: slow, InitTimeout: 100 * time.Millisecond}); err == nil {
		t.Fatal("reload to a looping init succeeded")
	}
	if rd := h.Readiness(); len(rd.Plugins) != 0 {
		t.Errorf("a refusal with a version serving is listed: %+v", rd.Plugins)
	}
	// Refused with none serving, then unloaded: gone from the list.
	if err := h.Host.Load(context.Background(), host.Spec{Name: "other", Path: slow, InitTimeout: 100 * time.Millisecond}); err == nil {
		t.Fatal("a looping init loaded")
	}
	if rd := h.Readiness(); len(rd.Plugins) != 1 || rd.Plugins[0].Plugin != "other" {
		t.Errorf("refused plugin not listed: %+v", rd.Plugins)
	}
	if err := h.Unload(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	if rd := h.Readiness(); len(rd.Plugins) != 0 {
		t.Errorf("after unload: %+v", rd.Plugins)
	}
}
