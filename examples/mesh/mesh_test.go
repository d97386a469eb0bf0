// The walk-through of README.md, run against the example's own config.
package mesh_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func start(t *testing.T) (*trellistest.Host, string) {
	t.Helper()
	cfg, err := config.Load("trellis.hcl")
	if err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	for i := range cfg.Plugins {
		if cfg.Plugins[i].Source != "" {
			cfg.Plugins[i].Path = build + "/" + cfg.Plugins[i].Name + ".wasm"
		}
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	h := trellistest.NewHost(t, func(o *host.Options) { o.HTTP = cfg.HTTP })
	loop := config.NewLoop(h.Host, "trellis.hcl", 0, h.Logger())
	if res := loop.Apply(context.Background(), cfg); res.Err != nil {
		t.Fatalf("plugins failed to start: %v", res.Err)
	}
	return h, "http://" + h.HTTPAddr()
}

func call(t *testing.T, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestMeshWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nine plugins")
	}
	h, base := start(t)
	nc := h.Client()
	sent, _ := nc.SubscribeSync("mail.sent")
	dlq, _ := nc.SubscribeSync("notifications.dlq")
	nc.Flush()

	// 202: the order event is on the bus.
	code, _, body := call(t, "POST", base+"/orders", "dev-token", `{"id":"42","item":"book","customer":"ada@example.com"}`)
	if code != 202 {
		t.Fatalf("POST /orders: %d %s", code, body)
	}
	// 200 with the order as the pipeline enriched it.
	var order map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, _, body = call(t, "GET", base+"/orders/42", "dev-token", "")
		if code == 200 {
			json.Unmarshal([]byte(body), &order)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if order["status"] != "priced" || order["total"] != 12.5 || (order["served_by"] != "v1" && order["served_by"] != "v2") {
		t.Fatalf("GET /orders/42: %d %s", code, body)
	}
	// 401: no token, and the body tells nothing about tokens.
	code, hdr, body := call(t, "POST", base+"/orders", "", `{}`)
	if code != 401 || strings.Contains(body, "dev-token") || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %v %s", code, hdr, body)
	}
	if code, _, body := call(t, "GET", base+"/orders/42", "wrong-token", ""); code != 401 || strings.Contains(body, "wrong-token") {
		t.Fatalf("bad token: %d %s", code, body)
	}
	// The flaky mailer: transient failures are retried, so mails arrive...
	if _, err := sent.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no mail sent: %v", err)
	}
	// ...and a permanent failure ends on the dead-letter subject, with why.
	if code, _, body := call(t, "POST", base+"/orders", "dev-token", `{"id":"77","item":"lamp","customer":"ann@bounce.example"}`); code != 202 {
		t.Fatalf("POST the bouncing order: %d %s", code, body)
	}
	m, err := dlq.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("nothing dead-lettered: %v", err)
	}
	if m.Header.Get("Trellis-Attempts") != "3" || !strings.Contains(m.Header.Get("Trellis-Error"), "ann@bounce.example") {
		t.Fatalf("dead letter headers %v", m.Header)
	}
	// A burst above the limit gets 429 with Retry-After...
	limited := 0
	for i := 0; i < 12; i++ {
		code, hdr, _ := call(t, "POST", base+"/orders", "dev-token", `{"id":"b`+string(rune('a'+i))+`","item":"pen"}`)
		if code == 429 {
			limited++
			if hdr.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Fatal("a burst of 12 was not limited")
	}
	// ...while a burst from a second token is not.
	for i := 0; i < 8; i++ {
		if code, _, body := call(t, "POST", base+"/orders", "ops-token", `{"id":"o`+string(rune('a'+i))+`","item":"pen"}`); code != 202 {
			t.Fatalf("second token, request %d: %d %s", i, code, body)
		}
	}
	// The canary: about one read in ten goes to v2.
	v2 := 0
	for i := 0; i < 200; i++ {
		code, _, body := call(t, "GET", base+"/orders/42", "ops-token", "")
		if code != 200 {
			t.Fatalf("GET %d: %d %s", i, code, body)
		}
		if strings.Contains(body, `"served_by":"v2"`) {
			v2++
		}
	}
	if v2 < 5 || v2 > 45 {
		t.Fatalf("%d of 200 reads went to v2, want about 20", v2)
	}
}
