package host

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/metrics"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/resilience"
)

// This file is what the host tells the outside about itself: Prometheus
// metrics, recent events and the topology that the admin endpoint, the
// dashboard and `trellis ls` read. The message path's hooks are one call
// each; the handles they update are made when a binding, policy or route
// first appears (see package metrics), so a message looks nothing up.

// Metrics returns the registry holding the host's metrics, to serve (the
// admin endpoint does, see package admin) or to add an embedder's own
// collectors to. It is nil when Options.DisableMetrics is set.
func (h *Host) Metrics() *prometheus.Registry {
	if h.metrics == nil {
		return nil
	}
	return h.metrics.Registry
}

// startMetrics makes the host's metrics, unless they are turned off, with
// the collectors read at scrape time: the bindings' pools, inboxes and
// breakers, the host's counters, the embedded NATS server's figures, and
// the Go runtime and process.
func (h *Host) startMetrics() {
	if h.opts.DisableMetrics {
		return
	}
	h.metrics = metrics.New()
	h.metrics.Registry.MustRegister(
		stateCollector{h},
		deployCollector{h}, // candidate versions and rollouts; see canary.go
		recordCollector{h}, // recording; see record.go
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if srv := h.bus.Server(); srv != nil {
		h.metrics.Registry.MustRegister(natsCollector{srv})
	}
}

// observed is one message's metrics while its binding serves it.
type observed struct {
	sj *metrics.Subject
	at time.Duration
}

// observe starts counting m, which came as a and which snap serves. Its
// subject label is the subscription's subject (a pattern, a bounded
// label), or for a stored event the first of snap's subjects it matches;
// a.sj has its handles when the subscription knew them.
func (b *binding) observe(m *nats.Msg, a arrival, snap *snapshot) observed {
	if b.metrics == nil {
		return observed{}
	}
	b.metrics.Begin()
	sj := a.sj
	if sj == nil {
		sj = b.subjectMetrics(m, snap)
	}
	return observed{sj: sj, at: a.at}
}

// subjectMetrics returns the handles of the subject m counts under.
func (b *binding) subjectMetrics(m *nats.Msg, snap *snapshot) *metrics.Subject {
	subject := metrics.OtherSubject
	if m.Sub != nil {
		subject = m.Sub.Subject
	} else {
		for _, s := range snap.subjects {
			if abi.SubjectMatches(s, m.Subject) {
				subject = s
				break
			}
		}
	}
	return b.metrics.Subject(subject)
}

// observed counts a message begun with observe as finished with out, and
// returns when that was (deadline.Now()), so that its caller need not
// read the clock again. end, if not 0, is when it finished, read by the
// caller.
func (b *binding) observed(o observed, out outcome, end time.Duration) time.Duration {
	now := end
	if now == 0 {
		now = deadline.Now()
	}
	if b.metrics == nil {
		return now
	}
	oc := metrics.StatusOutcome(out.status)
	if out.fault != 0 {
		oc = metrics.FaultTrap + metrics.Outcome(out.fault-1)
	}
	b.metrics.End(o.sj, oc, o.at, now)
	return now
}

// faultOutcome is the outcome of a call that ended in fault f.
func faultOutcome(f *plugin.Fault, text string) outcome {
	out := failure(f.Kind.Code(), text)
	out.fault = uint8(f.Kind) + 1
	return out
}

// policyDecision names what a policy call decided, for its metrics.
func policyDecision(res plugin.PolicyResult, err error, subject string) string {
	switch {
	case err != nil:
		return metrics.Fault
	case res.Replied:
		return metrics.Answer
	case res.Status != 0:
		return metrics.Reject
	case res.Subject != "" && res.Subject != subject:
		return metrics.Routed
	}
	return metrics.Allow
}

// routeHandler wraps an HTTP route's handler to count its requests by
// status and time them. Without metrics it returns fn.
func (h *Host) routeHandler(pattern string, fn http.HandlerFunc) http.HandlerFunc {
	r := h.metrics.Route(pattern)
	if r == nil {
		return fn
	}
	return func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		fn(sw, req)
		r.Done(sw.code, time.Since(start))
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingOutbox counts what one plugin publishes and requests, by
// subject, on its way to the host's outbox.
type countingOutbox struct {
	*natsOutbox
	m *metrics.Plugin
}

func (o countingOutbox) Publish(ctx context.Context, subject string, hdr map[string][]string, data []byte) error {
	if strings.HasPrefix(subject, "_INBOX.") {
		// Only a reply reaches an inbox: a plugin may not publish to one.
		o.m.Replied()
	} else {
		o.m.Sent(subject, false)
	}
	return o.natsOutbox.Publish(ctx, subject, hdr, data)
}

func (o countingOutbox) Request(ctx context.Context, subject string, hdr map[string][]string, data []byte, timeout time.Duration) (*plugin.Message, error) {
	o.m.Sent(subject, true)
	return o.natsOutbox.Request(ctx, subject, hdr, data, timeout)
}

// outboxFor returns the outbox plugin name's version uses: the host's,
// counting what it sends when metrics are on.
func (h *Host) outboxFor(name string) plugin.Outbox {
	if h.metrics == nil {
		return h.outbox
	}
	return countingOutbox{natsOutbox: h.outbox, m: h.metrics.Plugin(name)}
}

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	EventLoaded   EventKind = "loaded"   // a plugin's first version started serving
	EventReloaded EventKind = "reloaded" // a new version replaced the one serving
	EventUnloaded EventKind = "unloaded" // the plugin stopped serving
	EventRefused  EventKind = "refused"  // a version was refused; the one serving, if any, serves on
	EventFault    EventKind = "fault"    // a call trapped, ran out of time or found no instance
)

// Event is something that happened to a plugin, for the admin endpoint's
// list of recent reloads and faults.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    EventKind `json:"kind"`
	Plugin  string    `json:"plugin"`
	Version string    `json:"version,omitempty"`
	// Subject is the message's subject, for a fault.
	Subject string `json:"subject,omitempty"`
	// Detail says why a version was refused or what the fault was.
	Detail string `json:"detail,omitempty"`
	// LoadTime is how long a version took to load, for loaded and reloaded.
	LoadTime time.Duration `json:"load_time,omitempty"`
}

// maxEvents is how many recent events the host keeps.
const maxEvents = 200

// eventLog keeps the last maxEvents events and each plugin's last load,
// reload or refusal. Faults take its lock, which is off the path of a
// message that succeeds.
type eventLog struct {
	mu         sync.Mutex
	ring       []Event
	next       int
	lastReload map[string]Event
}

func (l *eventLog) add(e Event) {
	e.Time = time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < maxEvents {
		l.ring = append(l.ring, e)
	} else {
		l.ring[l.next] = e
		l.next = (l.next + 1) % maxEvents
	}
	if e.Kind != EventFault && e.Kind != EventCandidate && e.Kind != EventCanary {
		if l.lastReload == nil {
			l.lastReload = map[string]Event{}
		}
		l.lastReload[e.Plugin] = e
	}
}

// Events returns the host's recent events (the last 200), oldest first.
func (h *Host) Events() []Event {
	l := &h.events
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// LastReload returns plugin name's last load, reload, unload or refusal,
// and whether there was one.
func (h *Host) LastReload(name string) (Event, bool) {
	h.events.mu.Lock()
	defer h.events.mu.Unlock()
	e, ok := h.events.lastReload[name]
	return e, ok
}

// recordApplied counts and records a version committed (kind loaded or
// reloaded) or a plugin unloaded.
func (h *Host) recordApplied(kind EventKind, name, version string, took time.Duration) {
	h.metrics.Reload(name, string(kind), took)
	h.events.add(Event{Kind: kind, Plugin: name, Version: version, LoadTime: took})
	h.preparing.forget(name)
}

// recordRefused counts and records the refusals among errs.
func (h *Host) recordRefused(errs []error) {
	for _, err := range errs {
		var r *refusal
		if err == nil || !errors.As(err, &r) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		h.metrics.Reload(r.name, string(EventRefused), 0)
		e := Event{Kind: EventRefused, Plugin: r.name, Version: r.version, Detail: r.err.Error()}
		h.events.add(e)
		if r.path != "" && !strings.Contains(e.Detail, r.path) {
			e.Detail = r.path + ": " + e.Detail
		}
		e.Time = time.Now()
		h.preparing.refuse(e)
	}
}

// recordFault records a call's fault.
func (h *Host) recordFault(f *plugin.Fault, subject string) {
	h.events.add(Event{Kind: EventFault, Plugin: f.Plugin, Version: f.Version, Subject: subject,
		Detail: f.Kind.String() + ": " + f.Summary()})
}

// HTTPRoutes returns the ingress's routes as last applied.
func (h *Host) HTTPRoutes() []HTTPRoute {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	return append([]HTTPRoute(nil), h.httpRoutes...)
}

// stateCollector reads, at scrape time, what the bindings hold: pools,
// inboxes, breakers, grant denials; and the host's counters.
type stateCollector struct{ h *Host }

var (
	descPoolSize = prometheus.NewDesc("trellis_pool_size", "Instances a plugin's pool may hold.", []string{"plugin"}, nil)
	descPoolUsed = prometheus.NewDesc("trellis_pool_instances", "A plugin's live instances, in use or idle.", []string{"plugin", "state"}, nil)
	descQueue    = prometheus.NewDesc("trellis_queue_depth", "Messages waiting in a handler's inbox for an instance.", []string{"plugin"}, nil)
	descQueueCap = prometheus.NewDesc("trellis_queue_capacity", "How many messages a handler's inbox holds before its subscriptions wait.", []string{"plugin"}, nil)
	descBreaker  = prometheus.NewDesc("trellis_breaker_state", "A handler's circuit breaker: 0 closed, 1 open, 2 half-open.", []string{"plugin"}, nil)
	descDenied   = prometheus.NewDesc("trellis_grant_denials_total", "Host calls the plugin's version serving made and its grants refused.", []string{"plugin"}, nil)
	descCreated  = prometheus.NewDesc("trellis_instances_created_total", "Instances the version of a plugin serving has made (a fault discards one; the next call makes another).", []string{"plugin"}, nil)
	descDiscard  = prometheus.NewDesc("trellis_instances_discarded_total", "Instances the version of a plugin serving has discarded after a fault.", []string{"plugin"}, nil)
	descMemory   = prometheus.NewDesc("trellis_instance_memory_bytes", "Linear memory of a plugin's live instances, in all; divide by trellis_pool_instances for one's.", []string{"plugin"}, nil)
	descPlugin   = prometheus.NewDesc("trellis_plugin_info", "One series per loaded plugin, labelled with the version serving, its role and the language it was written in.", []string{"plugin", "version", "role", "language"}, nil)
	descCounters = map[string]*prometheus.Desc{
		"policy_failures": prometheus.NewDesc("trellis_policy_failures_total", "Policy calls that faulted, or named a policy not loaded.", nil, nil),
		"policy_rejects":  prometheus.NewDesc("trellis_policy_rejections_total", "Messages a policy rejected.", nil, nil),
		"handler_fails":   prometheus.NewDesc("trellis_handler_failures_total", "Messages whose handler failed every attempt.", nil, nil),
		"dropped":         prometheus.NewDesc("trellis_dropped_messages_total", "Messages refused on arrival: a system subject, or a reply subject too long to answer.", nil, nil),
	}
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolSize, descPoolUsed, descQueue, descQueueCap, descBreaker, descDenied, descPlugin,
		descCreated, descDiscard, descMemory} {
		ch <- d
	}
	for _, d := range descCounters {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.h
	h.mu.Lock()
	bindings := make([]*binding, 0, len(h.bindings))
	for _, b := range h.bindings {
		bindings = append(bindings, b)
	}
	h.mu.Unlock()
	for _, b := range bindings {
		s := b.snap.Load()
		if s == nil {
			continue
		}
		role := "handler"
		if b.policy {
			role = "policy"
		}
		ch <- prometheus.MustNewConstMetric(descPlugin, prometheus.GaugeValue, 1, b.name, s.version, role, s.plugin.Language())
		inUse, idle, size := s.plugin.PoolStats()
		ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, float64(size), b.name)
		ch <- prometheus.MustNewConstMetric(descPoolUsed, prometheus.GaugeValue, float64(inUse), b.name, "in_use")
		ch <- prometheus.MustNewConstMetric(descPoolUsed, prometheus.GaugeValue, float64(idle), b.name, "idle")
		ch <- prometheus.MustNewConstMetric(descDenied, prometheus.CounterValue, float64(s.plugin.Denied()), b.name)
		created, discarded, memory := s.plugin.InstanceStats()
		ch <- prometheus.MustNewConstMetric(descCreated, prometheus.CounterValue, float64(created), b.name)
		ch <- prometheus.MustNewConstMetric(descDiscard, prometheus.CounterValue, float64(discarded), b.name)
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(memory), b.name)
		if b.policy {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(len(b.inbox)), b.name)
		ch <- prometheus.MustNewConstMetric(descQueueCap, prometheus.GaugeValue, float64(cap(b.inbox)), b.name)
		ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, float64(breakerState(s.breaker)), b.name)
	}
	n := &h.counters
	for key, v := range map[string]int64{
		"policy_failures": n.PolicyFailures.Load(), "policy_rejects": n.PolicyRejects.Load(),
		"handler_fails": n.HandlerFailures.Load(), "dropped": n.Dropped.Load(),
	} {
		ch <- prometheus.MustNewConstMetric(descCounters[key], prometheus.CounterValue, float64(v))
	}
}

// breakerState maps a breaker's state to trellis_breaker_state's value.
func breakerState(b *resilience.Breaker) int {
	switch b.State() {
	case resilience.Open:
		return 1
	case resilience.HalfOpen:
		return 2
	}
	return 0
}

// natsCollector reads the embedded NATS server's own figures at scrape
// time (server.Varz and server.Jsz, what its monitoring port serves).
type natsCollector struct{ srv *server.Server }

func natsDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("trellis_nats_"+name, help, nil, nil)
}

var natsDescs = struct {
	conns, totalConns, subs, inMsgs, outMsgs, inBytes, outBytes, slow                *prometheus.Desc
	jsMemory, jsStore, jsStreams, jsConsumers, jsMessages, jsBytes, jsAPI, jsAPIErrs *prometheus.Desc
}{
	conns:       natsDesc("connections", "Client connections open on the embedded NATS server."),
	totalConns:  natsDesc("connections_total", "Client connections the embedded server has accepted."),
	subs:        natsDesc("subscriptions", "Subscriptions on the embedded server."),
	inMsgs:      natsDesc("in_messages_total", "Messages the embedded server received."),
	outMsgs:     natsDesc("out_messages_total", "Messages the embedded server sent."),
	inBytes:     natsDesc("in_bytes_total", "Bytes the embedded server received."),
	outBytes:    natsDesc("out_bytes_total", "Bytes the embedded server sent."),
	slow:        natsDesc("slow_consumers_total", "Clients the embedded server disconnected as slow consumers."),
	jsMemory:    natsDesc("jetstream_memory_bytes", "JetStream memory storage in use."),
	jsStore:     natsDesc("jetstream_storage_bytes", "JetStream file storage in use."),
	jsStreams:   natsDesc("jetstream_streams", "JetStream streams."),
	jsConsumers: natsDesc("jetstream_consumers", "JetStream consumers."),
	jsMessages:  natsDesc("jetstream_messages", "Messages stored in JetStream streams."),
	jsBytes:     natsDesc("jetstream_bytes", "Bytes stored in JetStream streams."),
	jsAPI:       natsDesc("jetstream_api_requests_total", "JetStream API requests."),
	jsAPIErrs:   natsDesc("jetstream_api_errors_total", "JetStream API requests that failed."),
}

func (c natsCollector) Describe(ch chan<- *prometheus.Desc) {
	d := natsDescs
	for _, x := range []*prometheus.Desc{d.conns, d.totalConns, d.subs, d.inMsgs, d.outMsgs, d.inBytes, d.outBytes, d.slow,
		d.jsMemory, d.jsStore, d.jsStreams, d.jsConsumers, d.jsMessages, d.jsBytes, d.jsAPI, d.jsAPIErrs} {
		ch <- x
	}
}

func (c natsCollector) Collect(ch chan<- prometheus.Metric) {
	d := natsDescs
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	if v, err := c.srv.Varz(nil); err == nil {
		gauge(d.conns, float64(v.Connections))
		counter(d.totalConns, float64(v.TotalConnections))
		gauge(d.subs, float64(v.Subscriptions))
		counter(d.inMsgs, float64(v.InMsgs))
		counter(d.outMsgs, float64(v.OutMsgs))
		counter(d.inBytes, float64(v.InBytes))
		counter(d.outBytes, float64(v.OutBytes))
		counter(d.slow, float64(v.SlowConsumers))
	}
	if !c.srv.JetStreamEnabled() {
		return
	}
	if j, err := c.srv.Jsz(nil); err == nil && !j.Disabled {
		gauge(d.jsMemory, float64(j.Memory))
		gauge(d.jsStore, float64(j.Store))
		gauge(d.jsStreams, float64(j.Streams))
		gauge(d.jsConsumers, float64(j.Consumers))
		gauge(d.jsMessages, float64(j.Messages))
		gauge(d.jsBytes, float64(j.Bytes))
		counter(d.jsAPI, float64(j.API.Total))
		counter(d.jsAPIErrs, float64(j.API.Errors))
	}
}

// busy is the outcome of a message no instance was free for in time.
func busy(text string) outcome {
	out := failure(503, text)
	out.fault = uint8(plugin.FaultBusy) + 1
	return out
}
