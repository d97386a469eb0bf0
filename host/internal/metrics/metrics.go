// Package metrics holds the host's Prometheus metrics and the handles a
// message's path uses to update them.
//
// A message's path must not allocate or look up labels: prometheus's
// WithLabelValues hashes its labels and takes a lock, so every child a
// message can touch is made once, when its plugin, subject, policy or
// route first appears, and kept in a handle (Plugin, Subject, Policy,
// Route). Updating one then costs an atomic add, or for a histogram a
// bucket search and two atomic adds. Every handle method does nothing on a
// nil handle, which is what a host without metrics holds, so the hooks in
// the host cost a nil check when metrics are off.
//
// Names follow Prometheus' conventions: the trellis_ prefix, _total on
// counters, base units (_seconds, _bytes).
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trellis-mesh/trellis/abi"
)

// Outcome is how a message's handling ended, as trellis_messages_total
// labels it: a status class and, for a fault, its kind.
type Outcome uint8

// The outcomes. A fault's status class is 5xx.
const (
	OK Outcome = iota
	Status4xx
	Status5xx
	FaultTrap
	FaultTimeout
	FaultMemory
	FaultBusy
	FaultClosed
	FaultCanceled
	numOutcomes
)

// labels returns the status and fault label values of o.
func (o Outcome) labels() (status, fault string) {
	switch o {
	case OK:
		return "2xx", "none"
	case Status4xx:
		return "4xx", "none"
	case Status5xx:
		return "5xx", "none"
	}
	return "5xx", [...]string{"trap", "deadline", "memory", "busy", "closed", "canceled"}[o-FaultTrap]
}

// Error reports an outcome that answered with an error: anything but OK.
func (o Outcome) Error() bool { return o != OK }

// StatusOutcome returns the outcome of an answer with status code (0 or
// below 400 is a success).
func StatusOutcome(code int) Outcome {
	switch {
	case code < 400:
		return OK
	case code < 500:
		return Status4xx
	}
	return Status5xx
}

// Policy decisions, as trellis_policy_decisions_total labels them (Routed is "route").
const (
	Allow    = "allow"   // passed the message on
	Reject   = "reject"  // answered with an error status
	Answer   = "answer"  // answered the message itself
	Routed   = "route"   // sent it to another subject
	Fault    = "fault"   // failed (trap, deadline); fail_open decides
	Missing  = "missing" // not loaded
	numDecis = 6
)

var decisions = [numDecis]string{Allow, Reject, Answer, Routed, Fault, Missing}

// Latency buckets from 50µs to 10s: a Wasm call takes microseconds, a
// request through the bus a few hundred, a slow handler seconds.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Load-time buckets: a C or Rust module loads in milliseconds, a Go one in
// about a second, a cold compile of a big one in several.
var loadBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// maxPublishSubjects caps the subjects counted per plugin in
// trellis_publishes_total; more are counted under OtherSubject, so that a
// plugin publishing to a subject per order cannot grow the series without
// bound.
const maxPublishSubjects = 64

// OtherSubject labels publishes past maxPublishSubjects.
const OtherSubject = "_other"

// ReplySubject labels a plugin's replies: each goes to its requester's own
// inbox subject, which would make a label per request.
const ReplySubject = "_reply"

// Set is one host's metrics, registered in its own registry.
type Set struct {
	// Registry holds every metric of the host; the admin endpoint serves it.
	Registry *prometheus.Registry

	messages       *prometheus.CounterVec
	messageSeconds *prometheus.HistogramVec
	handlerSeconds *prometheus.HistogramVec
	inFlight       *prometheus.GaugeVec
	retries        *prometheus.CounterVec
	breakerRejects *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	fallbacks      *prometheus.CounterVec
	policySeconds  *prometheus.HistogramVec
	policyDecided  *prometheus.CounterVec
	policyRefused  *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	loadSeconds    *prometheus.HistogramVec
	publishes      *prometheus.CounterVec
	httpRequests   *prometheus.CounterVec
	httpSeconds    *prometheus.HistogramVec

	// Host calls and KV operations, registered with the first plugin's
	// handles (see hostcalls.go); hostCalls is under mu.
	hostCallsOnce   sync.Once
	hostCallSeconds *prometheus.HistogramVec
	kvOps           *prometheus.CounterVec
	hostCalls       map[string]*HostCalls

	mu       sync.Mutex // guards the maps below and the copy-on-write of policies
	plugins  map[string]*Plugin
	routes   map[string]*Route
	policies atomic.Pointer[map[string]*Policy]
}

// New makes a host's metrics and registers them in a new registry.
func New() *Set {
	s := &Set{Registry: prometheus.NewRegistry(), plugins: map[string]*Plugin{}, routes: map[string]*Route{}}
	s.policies.Store(&map[string]*Policy{})
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		s.Registry.MustRegister(v)
		return v
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		s.Registry.MustRegister(v)
		return v
	}
	s.messages = counter("trellis_messages_total",
		"Messages a handler's binding finished with, by the subscription's subject, the answer's status class and, for a fault, its kind.",
		"plugin", "subject", "status", "fault")
	s.messageSeconds = histogram("trellis_message_duration_seconds",
		"Time from a message's arrival to its answer: waiting for an instance, policies, handler, retries.",
		latencyBuckets, "plugin", "subject")
	s.handlerSeconds = histogram("trellis_handler_duration_seconds",
		"Time of one handler call (one attempt), waiting for an instance included; a first attempt with no policy before it counts from when its message's serving began.", latencyBuckets, "plugin")
	s.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trellis_calls_in_flight",
		Help: "Messages a handler's binding is working on now."}, []string{"plugin"})
	s.Registry.MustRegister(s.inFlight)
	s.retries = counter("trellis_retries_total", "Handler calls tried again after a failure.", "plugin")
	s.breakerRejects = counter("trellis_breaker_rejections_total", "Messages refused because the handler's circuit breaker was open.", "plugin")
	s.deadLetters = counter("trellis_dead_letters_total", "Events sent to the handler's dead-letter subject after every attempt failed.", "plugin")
	s.fallbacks = counter("trellis_fallbacks_total", "Requests answered with the handler's fallback.", "plugin")
	s.policySeconds = histogram("trellis_policy_duration_seconds", "Time of one policy call.", latencyBuckets, "policy")
	s.policyDecided = counter("trellis_policy_decisions_total",
		"Policy calls by what the policy decided (allow, reject, answer, route) or fault and missing.", "policy", "decision")
	s.policyRefused = counter("trellis_policy_refusals_total",
		"Policy rejections by the reason the policy named (its Trellis-Refusal header): at most 64 reasons per policy, then _other; _invalid for a malformed one.",
		"policy", "reason")
	s.reloads = counter("trellis_reloads_total",
		"Plugin versions applied, by result: loaded, reloaded, unloaded, refused.", "plugin", "result")
	s.loadSeconds = histogram("trellis_load_duration_seconds",
		"Time to read, verify, compile and start a plugin version.", loadBuckets, "plugin")
	s.publishes = counter("trellis_publishes_total",
		"Messages a plugin sent through the host, by subject (at most 64 per plugin, then _other) and kind (publish, request).",
		"plugin", "subject", "kind")
	s.httpRequests = counter("trellis_http_requests_total", "HTTP ingress requests by route and status code.", "route", "code")
	s.httpSeconds = histogram("trellis_http_request_duration_seconds", "HTTP ingress request latency by route.", latencyBuckets, "route")
	return s
}

// Plugin returns the handles of handler name, made on first use.
func (s *Set) Plugin(name string) *Plugin {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.plugins[name]; p != nil {
		return p
	}
	p := &Plugin{
		set:            s,
		name:           name,
		handler:        s.handlerSeconds.WithLabelValues(name),
		inFlight:       s.inFlight.WithLabelValues(name),
		retries:        s.retries.WithLabelValues(name),
		breakerRejects: s.breakerRejects.WithLabelValues(name),
		deadLetters:    s.deadLetters.WithLabelValues(name),
		fallbacks:      s.fallbacks.WithLabelValues(name),
	}
	p.subjects.Store(&map[string]*Subject{})
	p.sent.Store(&map[sentKey]prometheus.Counter{})
	s.plugins[name] = p
	return p
}

// Reload counts a plugin version applied (or refused) and, when took is
// positive, how long it took to load.
func (s *Set) Reload(plugin, result string, took time.Duration) {
	if s == nil {
		return
	}
	s.reloads.WithLabelValues(plugin, result).Inc()
	if took > 0 {
		s.loadSeconds.WithLabelValues(plugin).Observe(took.Seconds())
	}
}

// Plugin is one handler's metric handles. Its methods are safe for
// concurrent use and do nothing on a nil Plugin.
type Plugin struct {
	set                                             *Set
	name                                            string
	handler                                         prometheus.Observer
	inFlight                                        prometheus.Gauge
	retries, breakerRejects, deadLetters, fallbacks prometheus.Counter
	subjects                                        atomic.Pointer[map[string]*Subject]
	sent                                            atomic.Pointer[map[sentKey]prometheus.Counter]
	replies                                         atomic.Pointer[prometheus.Counter] // Sent(ReplySubject, false), once made
	mu                                              sync.Mutex                         // copy-on-write of subjects and sent
}

// Subject is one subscription subject's handles under a plugin.
type Subject struct {
	// Name is the subscription's subject (a pattern, not the message's).
	Name     string
	outcomes [numOutcomes]prometheus.Counter
	seconds  prometheus.Observer
}

// Subject returns the handles of the subscription subject, made on its
// first message: a map read, no allocation, afterwards.
func (p *Plugin) Subject(subject string) *Subject {
	if p == nil {
		return nil
	}
	if sj := (*p.subjects.Load())[subject]; sj != nil {
		return sj
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.subjects.Load()
	if sj := old[subject]; sj != nil {
		return sj
	}
	sj := &Subject{Name: subject, seconds: p.set.messageSeconds.WithLabelValues(p.name, subject)}
	for o := Outcome(0); o < numOutcomes; o++ {
		status, fault := o.labels()
		sj.outcomes[o] = p.set.messages.WithLabelValues(p.name, subject, status, fault)
	}
	next := make(map[string]*Subject, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[subject] = sj
	p.subjects.Store(&next)
	return sj
}

// Begin counts a message the binding starts working on.
func (p *Plugin) Begin() {
	if p != nil {
		p.inFlight.Inc()
	}
}

// End counts a message begun with Begin as finished with outcome o, since
// start (a deadline.Now reading of its arrival; now is another).
func (p *Plugin) End(sj *Subject, o Outcome, start, now time.Duration) {
	if p == nil {
		return
	}
	p.inFlight.Dec()
	sj.outcomes[o].Inc()
	sj.seconds.Observe((now - start).Seconds())
}

// Handled observes one handler call that took d.
func (p *Plugin) Handled(d time.Duration) {
	if p != nil {
		p.handler.Observe(d.Seconds())
	}
}

// Retry counts a retry.
func (p *Plugin) Retry() {
	if p != nil {
		p.retries.Inc()
	}
}

// BreakerReject counts a message refused by the open breaker.
func (p *Plugin) BreakerReject() {
	if p != nil {
		p.breakerRejects.Inc()
	}
}

// DeadLetter counts an event dead-lettered.
func (p *Plugin) DeadLetter() {
	if p != nil {
		p.deadLetters.Inc()
	}
}

// Fallback counts a request answered by the fallback.
func (p *Plugin) Fallback() {
	if p != nil {
		p.fallbacks.Inc()
	}
}

type sentKey struct {
	subject string
	request bool
}

// Sent counts a message the plugin published (or a request it made) to
// subject. The first 64 subjects get a series each; the rest share
// OtherSubject.
func (p *Plugin) Sent(subject string, request bool) {
	if p == nil {
		return
	}
	k := sentKey{subject, request}
	if c := (*p.sent.Load())[k]; c != nil {
		c.Inc()
		return
	}
	p.sentSlow(k).Inc()
}

// Replied counts a reply the plugin sent: Sent(ReplySubject, false),
// without the map lookup, since every request/reply message makes one.
func (p *Plugin) Replied() {
	if p == nil {
		return
	}
	if c := p.replies.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := p.sentSlow(sentKey{ReplySubject, false})
	p.replies.Store(&c)
	c.Inc()
}

func (p *Plugin) sentSlow(k sentKey) prometheus.Counter {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.sent.Load()
	if c := old[k]; c != nil {
		return c
	}
	kind, label := "publish", k.subject
	if k.request {
		kind = "request"
	}
	if len(old) >= maxPublishSubjects {
		label = OtherSubject
	}
	c := p.set.publishes.WithLabelValues(p.name, label, kind)
	if label == OtherSubject {
		return c // not kept per subject, or the map would grow without bound
	}
	next := make(map[sentKey]prometheus.Counter, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	next[k] = c
	p.sent.Store(&next)
	return c
}

// SubjectStats are one subject's totals, as NATS micro's STATS reports them.
type SubjectStats struct {
	Subject string
	// Requests counts messages finished; Errors those answered with an
	// error (any outcome but OK).
	Requests, Errors uint64
	// Time is the sum of their durations, arrival to answer.
	Time time.Duration
}

// Stats returns the totals of each subject the plugin has had a message
// on. It reads the same counters the registry exports.
func (p *Plugin) Stats() []SubjectStats {
	if p == nil {
		return nil
	}
	var out []SubjectStats
	var m dto.Metric
	for _, sj := range *p.subjects.Load() {
		st := SubjectStats{Subject: sj.Name}
		for o, c := range sj.outcomes {
			m.Reset()
			if c.Write(&m) == nil {
				n := uint64(m.GetCounter().GetValue())
				st.Requests += n
				if Outcome(o).Error() {
					st.Errors += n
				}
			}
		}
		m.Reset()
		if h, ok := sj.seconds.(prometheus.Metric); ok && h.Write(&m) == nil {
			st.Time = time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
		}
		out = append(out, st)
	}
	return out
}

// Policy returns the handles of policy name: after its first call a map
// read with no allocation.
func (s *Set) Policy(name string) *Policy {
	if s == nil {
		return nil
	}
	if p := (*s.policies.Load())[name]; p != nil {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.policies.Load()
	if p := old[name]; p != nil {
		return p
	}
	p := &Policy{set: s, name: name, seconds: s.policySeconds.WithLabelValues(name)}
	p.refused.Store(&map[string]prometheus.Counter{})
	for i, d := range decisions {
		p.decided[i] = s.policyDecided.WithLabelValues(name, d)
	}
	next := make(map[string]*Policy, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = p
	s.policies.Store(&next)
	return p
}

// Policy is one policy's handles; its methods do nothing on a nil Policy.
type Policy struct {
	set     *Set
	name    string
	seconds prometheus.Observer
	decided [numDecis]prometheus.Counter

	mu      sync.Mutex // guards the copy-on-write of refused, and other
	refused atomic.Pointer[map[string]prometheus.Counter]
	other   prometheus.Counter // made on first use
}

// Refusal reasons that stand for others in trellis_policy_refusals_total.
const (
	// OtherReason counts a policy's reasons past abi.MaxRefusalReasons.
	OtherReason = "_other"
	// InvalidReason counts reasons that abi.ValidRefusal refuses.
	InvalidReason = "_invalid"
)

// Refused counts a rejection the policy gave reason for. The caller
// checks reason (abi.ValidRefusal); the first abi.MaxRefusalReasons
// reasons get a series each, later ones share OtherReason. A reason seen
// before costs a map read and an atomic add.
func (p *Policy) Refused(reason string) {
	if p == nil {
		return
	}
	if c := (*p.refused.Load())[reason]; c != nil {
		c.Inc()
		return
	}
	p.refusedSlow(reason).Inc()
}

func (p *Policy) refusedSlow(reason string) prometheus.Counter {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.refused.Load()
	if c := old[reason]; c != nil {
		return c
	}
	if len(old) >= abi.MaxRefusalReasons {
		// Not kept per reason, or the map would grow without bound.
		if p.other == nil {
			p.other = p.set.policyRefused.WithLabelValues(p.name, OtherReason)
		}
		return p.other
	}
	c := p.set.policyRefused.WithLabelValues(p.name, reason)
	next := make(map[string]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[reason] = c
	p.refused.Store(&next)
	return c
}

// Decided counts a call that decided decision (Allow, Reject, ...) and
// took d (0 for Missing: no call was made).
func (p *Policy) Decided(decision string, d time.Duration) {
	if p == nil {
		return
	}
	for i, name := range decisions {
		if name == decision {
			p.decided[i].Inc()
			break
		}
	}
	if decision != Missing {
		p.seconds.Observe(d.Seconds())
	}
}

// Route returns the handles of the HTTP route pattern.
func (s *Set) Route(pattern string) *Route {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.routes[pattern]; r != nil {
		return r
	}
	r := &Route{set: s, pattern: pattern, seconds: s.httpSeconds.WithLabelValues(pattern)}
	s.routes[pattern] = r
	return r
}

// Route is one HTTP route's handles.
type Route struct {
	set     *Set
	pattern string
	seconds prometheus.Observer
	codes   [600]atomic.Pointer[prometheus.Counter] // by status code, made on first use
}

// Done counts a request answered with code after d.
func (r *Route) Done(code int, d time.Duration) {
	if r == nil {
		return
	}
	r.seconds.Observe(d.Seconds())
	if code < 100 || code >= len(r.codes) {
		code = 500
	}
	c := r.codes[code].Load()
	if c == nil {
		made := r.set.httpRequests.WithLabelValues(r.pattern, strconv.Itoa(code))
		r.codes[code].CompareAndSwap(nil, &made)
		c = r.codes[code].Load()
	}
	(*c).Inc()
}
