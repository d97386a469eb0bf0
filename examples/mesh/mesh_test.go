// The walk-through of README.md, run against the example's own config.
package mesh_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

var (
	issuerOnce sync.Once
	issuerBin  string
	issuerErr  error
)

// issuerBinary builds examples/mesh/issuer once per test binary: the test
// runs the commands the README shows.
func issuerBinary(t *testing.T) string {
	t.Helper()
	issuerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trellis-mesh-issuer-")
		if err != nil {
			issuerErr = err
			return
		}
		issuerBin = filepath.Join(dir, "issuer")
		if out, err := exec.Command("go", "build", "-o", issuerBin, "./issuer").CombinedOutput(); err != nil {
			issuerErr = fmt.Errorf("go build ./issuer: %v\n%s", err, out)
		}
	})
	if issuerErr != nil {
		t.Fatal(issuerErr)
	}
	return issuerBin
}

// TestMain removes the issuer binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	stopJaeger()
	if issuerBin != "" {
		os.RemoveAll(filepath.Dir(issuerBin))
	}
	os.Exit(code)
}

// issuer is the demo identity provider, `issuer serve`, as a process.
type issuer struct {
	bin, key, url string
}

// startIssuer runs `issuer serve` on a free loopback port until the test
// ends.
func startIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{bin: issuerBinary(t), key: filepath.Join(t.TempDir(), "issuer.pem")}
	cmd := exec.Command(is.bin, "serve", "--listen", "127.0.0.1:0", "--key", is.key)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			url <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case is.url = <-url:
	case <-time.After(30 * time.Second):
		t.Fatal("issuer serve printed no URL")
	}
	return is
}

// run runs an issuer command (mint, rotate) and returns what it printed.
func (is *issuer) run(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args[:1:1], append([]string{"--key", is.key}, args[1:]...)...)
	if args[0] == "mint" {
		args = append(args, "--issuer", is.url)
	}
	out, err := exec.Command(is.bin, args...).Output()
	if err != nil {
		t.Fatalf("issuer %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// mint is `issuer mint` with args.
func (is *issuer) mint(t *testing.T, args ...string) string {
	t.Helper()
	return is.run(t, append([]string{"mint"}, args...)...)
}

// start serves the example's config, its auth policy pointed at is.
func start(t *testing.T, is *issuer, configure ...func(*host.Options)) (*trellistest.Host, string) {
	t.Helper()
	cfg, err := config.Load("trellis.hcl")
	if err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	pointed := false
	for i := range cfg.Plugins {
		if cfg.Plugins[i].Source != "" {
			cfg.Plugins[i].Path = build + "/" + cfg.Plugins[i].Name + ".wasm"
		}
		for j := range cfg.Plugins[i].KeySources {
			cfg.Plugins[i].KeySources[j].Issuer = is.url
			pointed = true
		}
	}
	if !pointed {
		t.Fatal("the config has no jwks block to point at the issuer")
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	h := trellistest.NewHost(t, append([]func(*host.Options){func(o *host.Options) { o.HTTP = cfg.HTTP }}, configure...)...)
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
		t.Skip("builds ten plugins")
	}
	is := startIssuer(t)
	h, base := start(t, is)
	nc := h.Client()
	sent, _ := nc.SubscribeSync("mail.sent")
	dlq, _ := nc.SubscribeSync("notifications.dlq")
	nc.Flush()
	alice := is.mint(t, "--sub", "alice", "--scope", "orders:write")
	bob := is.mint(t, "--sub", "bob", "--scope", "orders:read orders:write")

	// 202: the order event is on the bus.
	code, _, body := call(t, "POST", base+"/orders", alice, `{"id":"42","item":"book","customer":"ada@example.com"}`)
	if code != 202 {
		t.Fatalf("POST /orders: %d %s", code, body)
	}
	// 200 with the order as the pipeline enriched it.
	var order map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, _, body = call(t, "GET", base+"/orders/42", alice, "")
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
	if code != 401 || strings.Contains(body, "jwt") || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %v %s", code, hdr, body)
	}
	if code, _, body := call(t, "GET", base+"/orders/42", "wrong-token", ""); code != 401 || strings.Contains(body, "wrong-token") {
		t.Fatalf("bad token: %d %s", code, body)
	}
	// A reader's token reads but does not write (the writers policy wants
	// orders:write); a token for another audience does neither.
	carol := is.mint(t, "--sub", "carol", "--scope", "orders:read")
	if code, _, body := call(t, "GET", base+"/orders/42", carol, ""); code != 200 {
		t.Fatalf("a reader reads: %d %s", code, body)
	}
	if code, hdr, body := call(t, "POST", base+"/orders", carol, `{"id":"c1","item":"pen"}`); code != 403 || strings.Contains(body, "scope") || hdr.Get("Trellis-Refusal") != "" {
		t.Fatalf("a reader writes: %d %v %s", code, hdr, body)
	}
	billing := is.mint(t, "--sub", "alice", "--scope", "orders:write", "--aud", "billing")
	if code, _, body := call(t, "GET", base+"/orders/42", billing, ""); code != 403 {
		t.Fatalf("a token for billing: %d %s", code, body)
	}
	// The flaky mailer: transient failures are retried, so mails arrive...
	if _, err := sent.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no mail sent: %v", err)
	}
	// ...and a permanent failure ends on the dead-letter subject, with why.
	if code, _, body := call(t, "POST", base+"/orders", alice, `{"id":"77","item":"lamp","customer":"ann@bounce.example"}`); code != 202 {
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
		code, hdr, _ := call(t, "POST", base+"/orders", alice, `{"id":"b`+string(rune('a'+i))+`","item":"pen"}`)
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
	// ...while a burst from another user is not.
	for i := 0; i < 8; i++ {
		if code, _, body := call(t, "POST", base+"/orders", bob, `{"id":"o`+string(rune('a'+i))+`","item":"pen"}`); code != 202 {
			t.Fatalf("second user, request %d: %d %s", i, code, body)
		}
	}
	// The canary: about one read in ten goes to v2.
	v2 := 0
	for i := 0; i < 200; i++ {
		code, _, body := call(t, "GET", base+"/orders/42", bob, "")
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

	// The provider rotates its key. The first token signed with the new
	// key is refused; its unknown kid makes the host fetch the keys again,
	// and the next request is accepted, without waiting for the set's
	// max-age. Tokens of the old key stay valid: it is still published.
	is.run(t, "rotate")
	dave := is.mint(t, "--sub", "dave", "--scope", "orders:read")
	if code, _, body := call(t, "GET", base+"/orders/42", dave, ""); code != 401 || strings.Contains(body, "key") {
		t.Fatalf("the first token of the new key: %d %s", code, body)
	}
	if !h.WaitLog(30*time.Second, "plugin reloaded with new keys", "plugin=auth") {
		t.Fatal("the unknown kid did not bring the new key in")
	}
	if code, _, body := call(t, "GET", base+"/orders/42", dave, ""); code != 200 {
		t.Fatalf("the new key after the refetch: %d %s", code, body)
	}
	if code, _, body := call(t, "GET", base+"/orders/42", bob, ""); code != 200 {
		t.Fatalf("the old key after the rotation: %d %s", code, body)
	}
	// Every refusal above was counted by its reason.
	metrics := h.Scrape()
	for _, r := range [][2]string{{"auth", "missing"}, {"auth", "unknown_token"}, {"auth", "audience"}, {"auth", "unknown_key"}, {"writers", "claim:scope"}} {
		if v, _ := metrics.Value("trellis_policy_refusals_total", "policy", r[0], "reason", r[1]); v < 1 {
			t.Errorf("trellis_policy_refusals_total{policy=%q,reason=%q} = %v", r[0], r[1], v)
		}
	}
}
