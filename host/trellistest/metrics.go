package trellistest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of Prometheus metrics in the text format, parsed.
type Metrics map[string]*dto.MetricFamily

// ScrapeURL fetches url (a /metrics endpoint) and parses it as Prometheus'
// text format, failing the test if either fails.
func ScrapeURL(tb testing.TB, client *http.Client, url string, header ...string) Metrics {
	tb.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("scrape %s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	return Metrics(fams)
}

// Scrape serves the host's registry (Host.Metrics) as the admin endpoint
// does, in the text format, and parses it.
func (h *Host) Scrape() Metrics {
	h.tb.Helper()
	reg := h.Metrics()
	if reg == nil {
		h.tb.Fatal("the host has no metrics (Options.DisableMetrics)")
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	return ScrapeURL(h.tb, srv.Client(), srv.URL)
}

// Value returns the value of the series of metric name whose labels
// include labels (name, value pairs): a counter's or gauge's value, a
// histogram's sample count; the sum over every series that matches. ok is
// false when none does.
func (m Metrics) Value(name string, labels ...string) (v float64, ok bool) {
	fam := m[name]
	if fam == nil {
		return 0, false
	}
	for _, s := range fam.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		ok = true
		switch {
		case s.Counter != nil:
			v += s.GetCounter().GetValue()
		case s.Gauge != nil:
			v += s.GetGauge().GetValue()
		case s.Histogram != nil:
			v += float64(s.GetHistogram().GetSampleCount())
		case s.Untyped != nil:
			v += s.GetUntyped().GetValue()
		}
	}
	return v, ok
}

func hasLabels(s *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
