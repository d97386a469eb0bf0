package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

// checkAdmin checks, against a running `trellis dev` that serves the echo
// example and has answered one request, its admin endpoint and the ls and
// top verbs that read it.
func checkAdmin(t *testing.T, logs, natsURL string) {
	t.Helper()
	m := regexp.MustCompile(`admin endpoint ready: url=(http://127\.0\.0\.1:\d+)/`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("dev did not log its admin endpoint:\n%s", logs)
	}
	base := m[1]
	if resp, body := trellistest.HTTP(t, nil, "GET", base+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("/readyz once serving: %d %s", resp.StatusCode, body)
	}
	trellistest.WaitFor(t, 10*time.Second, "the request counted in /metrics", func() bool {
		v, _ := trellistest.ScrapeURL(t, nil, base+"/metrics").Value("trellis_messages_total", "plugin", "echo", "status", "2xx")
		return v == 1
	})

	// The API answers from a sample of the metrics up to 250 ms old, so
	// the request may reach ls's totals a moment after /metrics.
	lsLine := regexp.MustCompile(`(?m)^echo\s+[0-9a-f]{12}\s+go\s+handler\s+echo\s+\d+/\d+\s+[\d.]+\s+0\.0%.*\s1\s+loaded `)
	var code int
	var out, errOut string
	trellistest.WaitFor(t, 10*time.Second, "ls to count the request", func() bool {
		code, out, errOut = runCLI("ls", "--admin", base)
		return code != 0 || lsLine.MatchString(out)
	})
	if code != 0 {
		t.Fatalf("ls: %d %s", code, errOut)
	}
	code, out, errOut = runCLI("ls", "--nats", "-s", natsURL)
	if code != 0 || !regexp.MustCompile(`(?m)^echo\s+[0-9a-f]{12}\s+go\s+1\s+echo\s+1\s+0\.0%`).MatchString(out) {
		t.Errorf("ls --nats: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI("top", "--admin", base, "--count", "1")
	if code != 0 || !strings.Contains(out, "trellis top") || !strings.Contains(out, "\necho ") {
		t.Errorf("top: %d %q %s", code, out, errOut)
	}
	if code, _, errOut := runCLI("ls", "--admin", "http://127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "trellis ls:") {
		t.Errorf("ls with no endpoint: %d %q", code, errOut)
	}
}
