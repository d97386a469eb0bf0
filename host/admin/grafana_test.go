package admin_test

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// The Grafana dashboard in deploy/ queries only metrics a host exports:
// every name its queries use is gathered from a real host that has served
// a request through a policy and the ingress, and the scrape config points
// at the admin endpoint's /metrics.
func TestGrafanaDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/trellis-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct{ List []struct{ Query any } }
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	used := map[string]bool{}
	name := regexp.MustCompile(`trellis_[a-z_]+`)
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				n = strings.TrimSuffix(n, suffix)
			}
			used[n] = true
		}
	}
	if len(used) < 10 {
		t.Fatalf("the dashboard uses only %d metrics: %v", len(used), used)
	}

	h := meshHost(t)
	_, base := startAdmin(t, h, admin.Options{})
	if resp, body := trellistest.HTTP(t, nil, "POST", "http://"+h.HTTPAddr()+"/echo", "hi"); resp.StatusCode != 200 {
		t.Fatalf("POST /echo: %d %q", resp.StatusCode, body)
	}
	exported := map[string]bool{}
	trellistest.WaitFor(t, 10*time.Second, "the request in /metrics", func() bool {
		fams, err := h.Metrics().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			exported[f.GetName()] = true
		}
		return exported["trellis_http_requests_total"]
	})
	var missing []string
	for n := range used {
		if !exported[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the dashboard queries metrics the host does not export: %v", missing)
	}

	scrape, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(scrape), "metrics_path: /metrics") || !strings.Contains(string(scrape), `"127.0.0.1:9180"`) {
		t.Fatalf("the scrape config does not point at the dev admin endpoint's /metrics:\n%s", scrape)
	}
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/metrics", ""); resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
}

// A plugin's replies are counted under one label, not one per requester's
// inbox, and the traffic graph shows no edge to an inbox.
func TestRepliesAreOneLabelAndNoGraphEdge(t *testing.T) {
	h := meshHost(t)
	_, base := startAdmin(t, h, admin.Options{})
	for range 3 {
		h.Request("published.x", []byte("hi"), 5*time.Second)
	}
	trellistest.WaitFor(t, 10*time.Second, "the replies counted", func() bool {
		fams, _ := h.Metrics().Gather()
		for _, f := range fams {
			if f.GetName() != "trellis_publishes_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "subject" && strings.HasPrefix(l.GetValue(), "_INBOX.") {
						t.Fatalf("a reply counted under its inbox %q", l.GetValue())
					}
					if l.GetName() == "subject" && l.GetValue() == "_reply" && m.GetCounter().GetValue() >= 3 {
						return true
					}
				}
			}
		}
		return false
	})
	_, body := trellistest.HTTP(t, nil, "GET", base+"/api/graph", "")
	if strings.Contains(body, "_INBOX") || strings.Contains(body, "_reply") {
		t.Fatalf("the graph shows replies as traffic: %s", body)
	}
}
