// Package admin is a host's admin endpoint: Prometheus metrics, health and
// readiness probes, pprof, a JSON API and a live dashboard, on a listener
// of its own.
//
// It is a public package, apart from the runtime, because an embedder may
// want it in either of two ways: on its own listener (New, then Start), as
// `trellis dev` and `trellis run` serve it, or mounted in the embedder's
// own HTTP server (a *Server is an http.Handler), beside its routes. The
// runtime (package host) does not import it, so a host that needs no
// admin endpoint carries none of it.
//
//	/            the dashboard (everything it loads is embedded; no CDN)
//	/metrics     Prometheus text format (Host.Metrics)
//	/healthz     200 while the process serves HTTP at all (liveness)
//	/readyz      200 when Host.Ready and the bus is connected, else 503;
//	             the body names each plugin not serving and why
//	             (JSON with ?format=json or Accept: application/json)
//	/debug/pprof the Go profiler
//	/api/plugins each plugin: version, subjects, pool, rate, error ratio,
//	             p50 and p99, last reload; and the recent events
//	/api/graph   the traffic as a graph: routes, policies, subjects,
//	             handlers, the subjects they send to; each edge's rate
//	/api/events  recent loads, reloads, refusals and faults
//
// Rates, error ratios and percentiles are over the last Window (10s by
// default): a sampler reads the host's metrics every second while the
// server runs. The error ratio counts every answer with an error (a 4xx
// or 5xx status, or a fault), as NATS micro's num_errors does.
//
// Protection: like the bus, the admin endpoint listens on loopback unless
// told otherwise, and New refuses an address beyond loopback without a
// bearer token or a user name and password: the profiler and the metrics
// say much about the host. The token suits Prometheus (bearer_token) and
// the CLI; a browser asks for the user name and password (basic auth).
// /healthz and /readyz answer without credentials, since an orchestrator's
// probes (Kubernetes' httpGet) cannot carry a secret: without them,
// /readyz names the plugins not serving and their state but not the
// reasons, whose text (file paths, what is wrong) is for the operator.
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellis-mesh/trellis/host"
)

// DefaultListen is where `trellis dev` serves the admin endpoint.
const DefaultListen = "127.0.0.1:9180"

// DefaultWindow is how far back rates and percentiles look.
const DefaultWindow = 10 * time.Second

// Options configure the admin endpoint.
type Options struct {
	// Listen is HOST:PORT for Start (port 0 picks one; see Addr). Beyond
	// loopback, New requires Token or Username and Password.
	Listen string
	// Token, if set, is accepted as "Authorization: Bearer TOKEN".
	Token string
	// Username and Password, if set, are accepted as HTTP basic auth.
	Username, Password string
	// Window is how far back rates, error ratios and percentiles look
	// (default DefaultWindow).
	Window time.Duration
	// Logger (default: discard).
	Logger hclog.Logger
}

// ErrUnprotected is New's refusal of an address beyond loopback with
// neither a token nor a password.
var ErrUnprotected = errors.New("admin endpoint beyond loopback without a token or a password: set token, or username and password")

// Server is a host's admin endpoint. It is an http.Handler; Start serves
// it on Options.Listen, Close stops both the listener and the sampler.
type Server struct {
	h    *host.Host
	opts Options
	mux  *http.ServeMux
	log  hclog.Logger
	samp *sampler

	mu   sync.Mutex
	srv  *http.Server
	addr string

	stop chan struct{}
	done chan struct{}
}

// New makes the admin endpoint of h and starts its sampler. It refuses a
// Listen beyond loopback without protection (ErrUnprotected), or one that
// is not HOST:PORT.
func New(h *host.Host, opts Options) (*Server, error) {
	if opts.Listen != "" {
		hostPart, _, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("admin listen %q: %w", opts.Listen, err)
		}
		if !Loopback(hostPart) && opts.Token == "" && (opts.Username == "" || opts.Password == "") {
			return nil, fmt.Errorf("admin listen %q: %w", opts.Listen, ErrUnprotected)
		}
	}
	if (opts.Username == "") != (opts.Password == "") {
		return nil, errors.New("admin: set both username and password, or neither")
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Server{h: h, opts: opts, mux: http.NewServeMux(), log: opts.Logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	s.samp = newSampler(h, opts.Window)
	s.routes()
	go s.sample()
	return s, nil
}

// Loopback reports whether host (an address's host part) is a loopback
// address or "localhost". The empty host, all interfaces, is not.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) routes() {
	if reg := s.h.Metrics(); reg != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: s.log.StandardLogger(nil)}))
	} else {
		s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "metrics are off (DisableMetrics)", http.StatusNotFound)
		})
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.mux.HandleFunc("GET /api/plugins", s.apiPlugins)
	s.mux.HandleFunc("GET /api/graph", s.apiGraph)
	s.mux.HandleFunc("GET /api/events", s.apiEvents)
	s.mux.Handle("GET /", dashboard())
}

// ServeHTTP serves the admin endpoint, after checking credentials when
// Options sets any.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) && !probe(r) {
		if s.opts.Username != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="trellis admin"`)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// probe reports whether r asks for liveness or readiness, which need no
// credentials.
func probe(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz")
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" && s.opts.Username == "" {
		return true
	}
	if s.opts.Token != "" {
		const prefix = "Bearer "
		if a := r.Header.Get("Authorization"); len(a) > len(prefix) && a[:len(prefix)] == prefix &&
			subtle.ConstantTimeCompare([]byte(a[len(prefix):]), []byte(s.opts.Token)) == 1 {
			return true
		}
	}
	if s.opts.Username != "" {
		u, p, ok := r.BasicAuth()
		if ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.opts.Username)) == 1 &&
			subtle.ConstantTimeCompare([]byte(p), []byte(s.opts.Password)) == 1 {
			return true
		}
	}
	return false
}

// Start listens on Options.Listen and serves until Close.
func (s *Server) Start() error {
	if s.opts.Listen == "" {
		return errors.New("admin: no listen address")
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
		ErrorLog: s.log.StandardLogger(nil)}
	s.mu.Lock()
	s.srv, s.addr = srv, ln.Addr().String()
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin endpoint stopped", "error", err)
		}
	}()
	s.log.Info("admin endpoint ready", "url", "http://"+s.addr+"/")
	return nil
}

// Addr is the address Start listens on, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops the listener (waiting for requests in flight until ctx
// ends) and the sampler.
func (s *Server) Close(ctx context.Context) error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// sample reads the host's metrics every second until Close.
func (s *Server) sample() {
	defer close(s.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.samp.take()
	for {
		select {
		case <-t.C:
			s.samp.take()
		case <-s.stop:
			return
		}
	}
}
