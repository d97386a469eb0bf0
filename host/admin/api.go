package admin

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
)

// freshness is how old the last sample may be when the API answers.
const freshness = 250 * time.Millisecond

// counts is a total and how many of it were errors.
type counts struct{ Total, Errors float64 }

// hist is a cumulative histogram: bucket upper bounds and counts.
type hist struct {
	bounds []float64
	counts []float64
	total  float64
}

type pluginSubject struct{ plugin, subject string }
type sentKey struct{ plugin, subject, kind string }

// sample is one reading of the host's cumulative figures.
type sample struct {
	at     time.Time
	msgs   map[pluginSubject]counts
	lat    map[string]*hist // by plugin, over its subjects
	http   map[string]counts
	sent   map[sentKey]float64
	policy map[string]counts
}

// sampler keeps the samples of the last window, to compute rates and
// percentiles over it.
type sampler struct {
	h      *host.Host
	window time.Duration
	taking sync.Mutex // one reading at a time, so the ring stays in time order
	mu     sync.Mutex // guards ring
	ring   []*sample
}

func newSampler(h *host.Host, window time.Duration) *sampler {
	return &sampler{h: h, window: window}
}

// take reads the host's metrics once.
func (s *sampler) take() {
	s.taking.Lock()
	defer s.taking.Unlock()
	reg := s.h.Metrics()
	smp := &sample{at: time.Now(), msgs: map[pluginSubject]counts{}, lat: map[string]*hist{},
		http: map[string]counts{}, sent: map[sentKey]float64{}, policy: map[string]counts{}}
	if reg != nil {
		fams, err := reg.Gather()
		if err == nil {
			for _, f := range fams {
				smp.read(f)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring = append(s.ring, smp)
	for len(s.ring) > 2 && smp.at.Sub(s.ring[1].at) >= s.window {
		s.ring = s.ring[1:]
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (smp *sample) read(f *dto.MetricFamily) {
	for _, m := range f.GetMetric() {
		switch f.GetName() {
		case "trellis_messages_total":
			k := pluginSubject{label(m, "plugin"), label(m, "subject")}
			c := smp.msgs[k]
			v := m.GetCounter().GetValue()
			c.Total += v
			if label(m, "status") != "2xx" {
				c.Errors += v
			}
			smp.msgs[k] = c
		case "trellis_message_duration_seconds":
			p := label(m, "plugin")
			hg := smp.lat[p]
			if hg == nil {
				hg = &hist{}
				smp.lat[p] = hg
			}
			for i, b := range m.GetHistogram().GetBucket() {
				if i >= len(hg.bounds) {
					hg.bounds = append(hg.bounds, b.GetUpperBound())
					hg.counts = append(hg.counts, 0)
				}
				hg.counts[i] += float64(b.GetCumulativeCount())
			}
			hg.total += float64(m.GetHistogram().GetSampleCount())
		case "trellis_http_requests_total":
			r := label(m, "route")
			c := smp.http[r]
			v := m.GetCounter().GetValue()
			c.Total += v
			if code, _ := strconv.Atoi(label(m, "code")); code >= 400 {
				c.Errors += v
			}
			smp.http[r] = c
		case "trellis_publishes_total":
			smp.sent[sentKey{label(m, "plugin"), label(m, "subject"), label(m, "kind")}] += m.GetCounter().GetValue()
		case "trellis_policy_decisions_total":
			p := label(m, "policy")
			c := smp.policy[p]
			v := m.GetCounter().GetValue()
			c.Total += v
			if d := label(m, "decision"); d == "reject" || d == "fault" || d == "missing" {
				c.Errors += v
			}
			smp.policy[p] = c
		}
	}
}

// fresh takes a sample unless the last is younger than age, so that an
// API answer's totals are current.
func (s *sampler) fresh(age time.Duration) {
	s.mu.Lock()
	stale := len(s.ring) == 0 || time.Since(s.ring[len(s.ring)-1].at) >= age
	s.mu.Unlock()
	if stale {
		s.take()
	}
}

// span returns the oldest and newest samples of the window, and the
// seconds between them (0 with fewer than two samples).
func (s *sampler) span() (first, last *sample, secs float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return nil, nil, 0
	}
	first, last = s.ring[0], s.ring[len(s.ring)-1]
	return first, last, last.at.Sub(first.at).Seconds()
}

// Rate is a figure over the window: messages (or requests) per second and
// the share of them answered with an error.
type Rate struct {
	PerSecond  float64 `json:"rate"`
	ErrorRatio float64 `json:"error_ratio"`
}

func rateOf(first, last counts, secs float64) Rate {
	if secs <= 0 {
		return Rate{}
	}
	n := last.Total - first.Total
	r := Rate{PerSecond: round(n / secs)}
	if n > 0 {
		r.ErrorRatio = round((last.Errors - first.Errors) / n)
	}
	return r
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// quantile is histogram_quantile over the difference of two cumulative
// histograms (or the last alone when the window saw nothing).
func quantile(q float64, first, last *hist) float64 {
	if last == nil || len(last.counts) == 0 {
		return 0
	}
	counts := append([]float64(nil), last.counts...)
	total := last.total
	if first != nil && len(first.counts) == len(counts) && last.total > first.total {
		for i := range counts {
			counts[i] -= first.counts[i]
		}
		total -= first.total
	}
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, prev := 0.0, 0.0
	for i, c := range counts {
		if c >= rank {
			upper := last.bounds[i]
			if c == prev {
				return upper
			}
			return lower + (upper-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = last.bounds[i], c
	}
	return lower // past the last bound
}

// PluginStatus is one plugin in /api/plugins.
type PluginStatus struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Role     string   `json:"role"` // handler or policy
	Language string   `json:"language"`
	Subjects []string `json:"subjects,omitempty"`
	Queue    string   `json:"queue,omitempty"`
	Policies []string `json:"policies,omitempty"`
	Pool     struct {
		Size  int `json:"size"`
		InUse int `json:"in_use"`
		Idle  int `json:"idle"`
	} `json:"pool"`
	Denied int64 `json:"denied"`
	// Messages and Errors are totals since the host started.
	Messages float64 `json:"messages"`
	Errors   float64 `json:"errors"`
	Rate
	// P50 and P99 are seconds, arrival to answer, over the window.
	P50        float64     `json:"p50_seconds"`
	P99        float64     `json:"p99_seconds"`
	LastReload *host.Event `json:"last_reload,omitempty"`
	// Candidates are a handler's candidate versions and Rollout its
	// rollout running or last ended.
	Candidates []host.CandidateInfo `json:"candidates,omitempty"`
	Rollout    *host.RolloutStatus  `json:"rollout,omitempty"`
	// Recording says the plugin's traffic is being recorded.
	Recording bool   `json:"recording,omitempty"`
	Health    string `json:"health"` // ok, degraded (errors in the window) or failing (half or more)
}

// Status is /api/plugins.
type Status struct {
	Time    time.Time      `json:"time"`
	Window  float64        `json:"window_seconds"`
	Ready   bool           `json:"ready"`
	Plugins []PluginStatus `json:"plugins"`
	// NotServing are the plugins being prepared, or refused with no
	// version serving, with why (Host.Readiness).
	NotServing []host.PluginReadiness `json:"not_serving,omitempty"`
	Events     []host.Event           `json:"events"`
}

// Status returns what /api/plugins serves.
func (s *Server) Status() Status {
	s.samp.fresh(freshness)
	first, last, secs := s.samp.span()
	rd := s.h.Readiness()
	st := Status{Time: time.Now(), Window: round(secs), Ready: rd.Ready, Plugins: []PluginStatus{}, NotServing: rd.Plugins}
	for _, info := range s.h.Plugins() {
		p := PluginStatus{Name: info.Name, Version: info.Version, Role: "handler", Language: info.Language, Subjects: info.Subjects,
			Queue: info.Queue, Denied: info.Denied, Health: "ok", Candidates: info.Candidates, Rollout: info.Rollout,
			Recording: info.Recording}
		if info.Policy {
			p.Role = "policy"
		}
		for _, ref := range info.Policies {
			p.Policies = append(p.Policies, ref.Name)
		}
		p.Pool.Size, p.Pool.InUse, p.Pool.Idle = info.PoolSize, info.InUse, info.Idle
		if e, ok := s.h.LastReload(info.Name); ok {
			p.LastReload = &e
		}
		if last != nil {
			var f, l counts
			if info.Policy {
				f, l = first.policy[info.Name], last.policy[info.Name]
			} else {
				f, l = sumPlugin(first.msgs, info.Name), sumPlugin(last.msgs, info.Name)
				p.P50 = round6(quantile(0.5, first.lat[info.Name], last.lat[info.Name]))
				p.P99 = round6(quantile(0.99, first.lat[info.Name], last.lat[info.Name]))
			}
			p.Messages, p.Errors = l.Total, l.Errors
			p.Rate = rateOf(f, l, secs)
		}
		switch {
		case p.ErrorRatio >= 0.5:
			p.Health = "failing"
		case p.ErrorRatio > 0:
			p.Health = "degraded"
		}
		st.Plugins = append(st.Plugins, p)
	}
	ev := s.h.Events()
	if len(ev) > 50 {
		ev = ev[len(ev)-50:]
	}
	st.Events = ev
	if st.Events == nil {
		st.Events = []host.Event{}
	}
	return st
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func sumPlugin(m map[pluginSubject]counts, plugin string) counts {
	var c counts
	for k, v := range m {
		if k.plugin == plugin {
			c.Total += v.Total
			c.Errors += v.Errors
		}
	}
	return c
}

func (s *Server) apiPlugins(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Status()) }

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	ev := s.h.Events()
	if ev == nil {
		ev = []host.Event{}
	}
	writeJSON(w, ev)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(v)
}

// Node is a vertex of /api/graph.
type Node struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"` // route, policy, subject, handler
	Label string `json:"label"`
}

// Edge is an arc of /api/graph with the traffic over it in the window.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Rate
	// Total counts messages over the edge since the host started.
	Total float64 `json:"total"`
}

// Graph is /api/graph: HTTP routes → their policies → subjects → the
// handlers' policies → handlers → the subjects they send to.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Graph returns what /api/graph serves.
func (s *Server) Graph() Graph {
	s.samp.fresh(freshness)
	first, last, secs := s.samp.span()
	if last == nil {
		first, last = &sample{}, &sample{}
	}
	g := Graph{Nodes: []Node{}, Edges: []Edge{}}
	seen := map[string]bool{}
	node := func(id, kind, label string) string {
		if !seen[id] {
			seen[id] = true
			g.Nodes = append(g.Nodes, Node{ID: id, Kind: kind, Label: label})
		}
		return id
	}
	edges := map[[2]string]int{}
	edge := func(from, to string, f, l counts) {
		if i, ok := edges[[2]string{from, to}]; ok {
			// Two routes to one subject, say: add their traffic.
			e := &g.Edges[i]
			e.Total += l.Total
			return
		}
		edges[[2]string{from, to}] = len(g.Edges)
		g.Edges = append(g.Edges, Edge{From: from, To: to, Rate: rateOf(f, l, secs), Total: l.Total})
	}
	chain := func(from string, policies []string, at string, to string, f, l counts) {
		for _, p := range policies {
			id := node("policy:"+p+"@"+at, "policy", p)
			edge(from, id, f, l)
			from = id
		}
		edge(from, to, f, l)
	}

	plugins := s.h.Plugins()
	var handlerSubjects []string
	for _, p := range plugins {
		if !p.Policy {
			handlerSubjects = append(handlerSubjects, p.Subjects...)
		}
	}
	for _, rt := range s.h.HTTPRoutes() {
		rid := node("route:"+rt.Pattern, "route", rt.Pattern)
		subj := templateSubject(rt.Subject)
		sid := node("subject:"+subj, "subject", subj)
		var names []string
		for _, ref := range rt.Policies {
			names = append(names, ref.Name)
		}
		chain(rid, names, rid, sid, first.http[rt.Pattern], last.http[rt.Pattern])
		linkMatches(subj, handlerSubjects, node, edge, first.http[rt.Pattern], last.http[rt.Pattern])
	}
	for _, p := range plugins {
		if p.Policy {
			continue
		}
		hid := node("handler:"+p.Name, "handler", p.Name)
		var names []string
		for _, ref := range p.Policies {
			names = append(names, ref.Name)
		}
		for _, subj := range p.Subjects {
			sid := node("subject:"+subj, "subject", subj)
			k := pluginSubject{p.Name, subj}
			chain(sid, names, hid, hid, first.msgs[k], last.msgs[k])
		}
	}
	keys := make([]sentKey, 0, len(last.sent))
	for k := range last.sent {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].plugin != keys[j].plugin {
			return keys[i].plugin < keys[j].plugin
		}
		return keys[i].subject < keys[j].subject
	})
	for _, k := range keys {
		if !seen["handler:"+k.plugin] || k.subject == metrics.ReplySubject {
			continue // a policy's publishes (mirror) have no handler node; replies go back, not on
		}
		f, l := counts{Total: first.sent[k]}, counts{Total: last.sent[k]}
		sid := node("subject:"+k.subject, "subject", k.subject)
		edge("handler:"+k.plugin, sid, f, l)
		linkMatches(k.subject, handlerSubjects, node, edge, f, l)
	}
	return g
}

// linkMatches joins subject to each handler subscription pattern it
// matches but is not, so that traffic to orders.get.42 reaches the node
// of orders.get.*.
func linkMatches(subject string, patterns []string, node func(id, kind, label string) string, edge func(from, to string, f, l counts), f, l counts) {
	for _, p := range patterns {
		if p != subject && abi.SubjectCovers(p, subject) {
			edge(node("subject:"+subject, "subject", subject), node("subject:"+p, "subject", p), f, l)
		}
	}
}

// templateSubject renders a route's subject template with its {params}
// as wildcards: orders.get.{id} is orders.get.*.
func templateSubject(t string) string {
	toks := strings.Split(t, ".")
	for i, tok := range toks {
		if strings.Contains(tok, "{") {
			toks[i] = "*"
		}
	}
	return strings.Join(toks, ".")
}

func (s *Server) apiGraph(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Graph()) }
