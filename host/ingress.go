package host

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// Defaults of the HTTP ingress.
const (
	DefaultHTTPListen     = "127.0.0.1:8080"
	DefaultMaxBody        = 1 << 20
	DefaultMaxHeaderBytes = 64 << 10
	DefaultHTTPTimeout    = 5 * time.Second
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds a request from the end of its headers to
	// the end of its response; it must outlast every route's Timeout.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConns caps the connections the ingress holds open at once.
	DefaultMaxConns = 1024
)

// HTTPOptions configure the HTTP ingress, which maps HTTP routes to subjects
// on the bus.
type HTTPOptions struct {
	// Listen is the address to serve on, HOST:PORT (port 0 picks one; see
	// Host.HTTPAddr). Empty means no ingress.
	Listen string
	// TLSCert and TLSKey, when both set, serve HTTPS from these PEM files.
	TLSCert, TLSKey string
	// ClientCA, with TLSCert, is a PEM file of the CAs whose client
	// certificates the ingress verifies (mutual TLS). A client presenting
	// a certificate they signed is identified to policies and handlers by
	// claims (abi.ClaimTLSSubject, ClaimTLSCN, ClaimTLSSAN); one presenting
	// any other certificate is refused at the handshake; one presenting
	// none is served unidentified, for a route's policy to refuse (the acl
	// policy's require_client_cert).
	ClientCA string
	// MaxBody caps a request body in bytes (default DefaultMaxBody): more is 413.
	MaxBody int64
	// MaxHeaderBytes caps the request's headers (default DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// ReadTimeout bounds reading one whole request, headers and body, from
	// its first byte (default DefaultReadTimeout), so that a client sending
	// its body a byte at a time holds a connection that long at most; its
	// request is answered 408 and the connection closed. Headers alone are
	// bounded by the smaller of ReadTimeout and DefaultReadHeaderTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response (default DefaultWriteTimeout). A route's Timeout
	// longer than this is cut short by it.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request before the ingress closes it (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxConns caps the connections open at once (default DefaultMaxConns).
	// A connection past the cap waits in the kernel's accept queue, not
	// read, until another closes; once that queue is full, the kernel
	// refuses new ones. Idle keep-alive connections count, so IdleTimeout
	// is what frees them.
	MaxConns int
	// Routes map requests to subjects; first match by net/http's rules.
	Routes []HTTPRoute
}

// HTTPRoute maps an HTTP method and path pattern to a subject.
type HTTPRoute struct {
	// Pattern is a net/http ServeMux pattern with a method: "POST /orders",
	// "GET /orders/{id}".
	Pattern string
	// Subject is where the request goes. "{name}" is replaced by the path
	// wildcard of that name: "orders.get.{id}". A value that is not a valid
	// subject token gets 400.
	Subject string
	// Event publishes the request body as an event and answers 202 at once,
	// instead of waiting for a reply.
	Event bool
	// Policies run on the HTTP request before it goes on the bus, with
	// METHOD, PATH, QUERY and REMOTE_ADDR readable. Path wildcards also
	// travel as headers, Trellis-Param-<name>, for policies and handlers.
	Policies []PolicyRef
	// Timeout bounds the whole request (default DefaultHTTPTimeout).
	Timeout time.Duration
}

// hopHeaders are not forwarded between HTTP and NATS.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// startHTTP starts the ingress if opts.Listen is set.
func (h *Host) startHTTP(opts HTTPOptions) error {
	if opts.Listen == "" {
		return nil
	}
	orDefault(&opts.MaxBody, DefaultMaxBody)
	orDefault(&opts.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&opts.ReadTimeout, DefaultReadTimeout)
	orDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	orDefault(&opts.IdleTimeout, DefaultIdleTimeout)
	orDefault(&opts.MaxConns, DefaultMaxConns)
	if opts.ClientCA != "" && opts.TLSCert == "" {
		return errors.New("http ingress: client_ca verifies client certificates, which needs TLS: set tls_cert and tls_key too")
	}
	h.httpOpts = opts
	if err := h.SetHTTPRoutes(opts.Routes); err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("http ingress: %w", err)
	}
	// The cap counts TCP connections, so it wraps the listener below TLS:
	// a handshake in progress holds a slot too.
	var ln net.Listener = newLimitListener(tcp, opts.MaxConns)
	srv := &http.Server{
		Handler:           http.HandlerFunc(h.serveHTTP),
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ReadHeaderTimeout: min(opts.ReadTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		ErrorLog:          h.log.Named("http").StandardLogger(nil),
	}
	scheme := "http"
	if opts.TLSCert != "" || opts.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http ingress TLS: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if err := withClientCA(srv.TLSConfig, opts.ClientCA); err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	h.http = srv
	h.httpAddr = ln.Addr().String()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("http ingress stopped", "error", err)
		}
	}()
	h.log.Info("http ingress ready", "url", scheme+"://"+h.httpAddr, "routes", len(opts.Routes))
	return nil
}

// orDefault sets *v to def unless it is positive.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// HTTPAddr returns the ingress's address, or "" without one.
func (h *Host) HTTPAddr() string { return h.httpAddr }

// SetHTTPRoutes replaces the ingress's routes atomically: Apply with a
// Change of the routes alone. Requests already in flight finish on the
// routes they started with. If any route is refused (see
// CheckHTTPRoutes), nothing changes and the error lists every reason.
func (h *Host) SetHTTPRoutes(routes []HTTPRoute) error {
	_, err := h.Apply(context.Background(), Change{HTTPRoutes: routes, SetHTTPRoutes: true})
	return err
}

// mux builds the ingress's routes with each one's policies resolved
// against a generation's. Called by a commit, with routes already checked.
func (h *Host) mux(routes []HTTPRoute, policies map[string]*plugin.Plugin) *http.ServeMux {
	mux, _ := buildMux(routes, func(rt HTTPRoute) http.HandlerFunc {
		chain := bindChain(rt.Policies, policies)
		return h.routeHandler(rt.Pattern, func(w http.ResponseWriter, r *http.Request) { h.serveRoute(w, r, rt, chain) })
	})
	return mux
}

// RouteError is one route CheckHTTPRoutes refuses.
type RouteError struct {
	// Index is the route's position in the list checked.
	Index int
	// Pattern is the route's pattern.
	Pattern string
	// Err says why.
	Err error
}

// Error says which route and why.
func (e *RouteError) Error() string { return fmt.Sprintf("http route %q: %v", e.Pattern, e.Err) }

// Unwrap returns the reason.
func (e *RouteError) Unwrap() error { return e.Err }

// CheckHTTPRoutes reports every route SetHTTPRoutes would refuse, in order,
// without changing anything: a route without a subject, a pattern net/http's
// ServeMux cannot parse, and a pattern that conflicts with an earlier one
// (two patterns that match the same requests with neither more specific).
// It is the rule SetHTTPRoutes applies, so a config checked with it is
// accepted by the ingress.
func CheckHTTPRoutes(routes []HTTPRoute) []*RouteError {
	_, errs := buildMux(routes, func(HTTPRoute) http.HandlerFunc {
		return func(http.ResponseWriter, *http.Request) {}
	})
	return errs
}

// buildMux registers every route on a new ServeMux, collecting every
// refusal rather than stopping at the first.
func buildMux(routes []HTTPRoute, handler func(HTTPRoute) http.HandlerFunc) (*http.ServeMux, []*RouteError) {
	mux := http.NewServeMux()
	var errs []*RouteError
	for i, rt := range routes {
		if rt.Subject == "" {
			errs = append(errs, &RouteError{Index: i, Pattern: rt.Pattern, Err: errors.New("no subject")})
			continue
		}
		if rt.Timeout <= 0 {
			rt.Timeout = DefaultHTTPTimeout
		}
		if err := registerRoute(mux, rt.Pattern, handler(rt)); err != nil {
			errs = append(errs, &RouteError{Index: i, Pattern: rt.Pattern, Err: err})
		}
	}
	return mux, errs
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

// registerRoute turns ServeMux's panic on a bad or duplicate pattern into an error.
func registerRoute(mux *http.ServeMux, pattern string, fn http.HandlerFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// ServeMux's text spans lines and names this file as where
			// each pattern was registered; keep one line of what matters.
			msg := registeredAt.ReplaceAllString(fmt.Sprint(r), "")
			err = errors.New(strings.Join(strings.Fields(msg), " "))
		}
	}()
	mux.HandleFunc(pattern, fn)
	return nil
}

// NotReadyRetryAfter is the Retry-After, in seconds, of the 503 the
// ingress answers while the host is not ready (see Options.HoldTraffic).
const NotReadyRetryAfter = "1"

func (h *Host) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.ready.Load() {
		w.Header().Set("Retry-After", NotReadyRetryAfter)
		writeError(w, http.StatusServiceUnavailable, "not ready: plugins are loading")
		return
	}
	mux := h.httpMux.Load()
	if mux == nil {
		writeError(w, http.StatusNotFound, "no routes")
		return
	}
	mux.ServeHTTP(w, r)
}

// expandSubject fills {name} wildcards of a route's subject from the path.
func expandSubject(tmpl string, r *http.Request) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unclosed { in subject %q", tmpl)
		}
		b.WriteString(tmpl[:i])
		v := r.PathValue(tmpl[i+1 : i+j])
		if len(v) > abi.MaxSubjectLen {
			return "", fmt.Errorf("path value %s: %w: %d bytes, more than %d", tmpl[i+1:i+j], abi.ErrSubjectTooLong, len(v), abi.MaxSubjectLen)
		}
		if v == "" || strings.ContainsAny(v, ".*>") || abi.ValidSubject(v, false) != nil {
			return "", fmt.Errorf("path value %q cannot be part of a subject", v)
		}
		b.WriteString(v)
		tmpl = tmpl[i+j+1:]
	}
	s := b.String()
	return s, plugin.ValidSubject(s, false)
}

// patternParams lists the wildcard names of a ServeMux pattern:
// "GET /orders/{id}" has "id".
func patternParams(pattern string) []string {
	var names []string
	for {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(pattern[i:], '}')
		if j < 0 {
			return names
		}
		name := strings.TrimSuffix(pattern[i+1:i+j], "...")
		if name != "$" {
			names = append(names, name)
		}
		pattern = pattern[i+j+1:]
	}
}

// requestMessage maps an HTTP request to the message policies and handlers see.
// It drops hop-by-hop, Nats- and identity headers (trusted.go): a client
// cannot say who it is other than through a policy.
func requestMessage(r *http.Request, subject string, body []byte) *plugin.Message {
	hdr := make(map[string][]string, len(r.Header))
	for k, vs := range r.Header {
		// Trellis-Param-* are the host's: a client's would pass for a
		// path parameter the route does not have.
		if !hopHeaders[k] && !strings.HasPrefix(k, abi.HeaderReservedPrefix) && !isIdentityHeader(k) &&
			!(len(k) >= len(abi.HeaderParamPrefix) && strings.EqualFold(k[:len(abi.HeaderParamPrefix)], abi.HeaderParamPrefix)) {
			hdr[k] = vs
		}
	}
	return &plugin.Message{
		Subject: subject,
		Header:  hdr,
		Data:    body,
		HTTP:    &plugin.HTTPInfo{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, RemoteAddr: r.RemoteAddr},
	}
}

// serveRoute serves one request on rt, whose policies are chain.
func (h *Host) serveRoute(w http.ResponseWriter, r *http.Request, rt HTTPRoute, chain []boundPolicy) {
	w, r, endSpan := h.traceIngress(w, r, rt.Pattern)
	defer endSpan()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.httpOpts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", h.httpOpts.MaxBody))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// ReadTimeout passed before the body did; the server closes
			// the connection after this answer.
			writeError(w, http.StatusRequestTimeout, "body not received within the read timeout")
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	subject, err := expandSubject(rt.Subject, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
	defer cancel()
	msg := requestMessage(r, subject, body)
	h.traceRequest(ctx, msg)
	if err := clientClaims(r, msg.Header); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, name := range patternParams(rt.Pattern) {
		v := r.PathValue(name)
		if len(v) > abi.MaxHeaderValueLen {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("path value %s: %d bytes, more than %d", name, len(v), abi.MaxHeaderValueLen))
			return
		}
		if v != "" {
			msg.Header[abi.HeaderParamPrefix+name] = []string{v}
		}
	}
	var answered *outcome
	msg.Respond = func(hdr map[string][]string, data []byte) error {
		out := reply(hdr, append([]byte(nil), data...))
		answered = &out
		return nil
	}
	accepted := false
	out := h.process(ctx, chain, msg, func(ctx context.Context, msg *plugin.Message) outcome {
		if rt.Event {
			end := h.publishSpan(ctx, msg)
			m := &nats.Msg{Subject: msg.Subject, Header: h.seal.sealed(msg.Subject, msg.Header, msg.Data), Data: msg.Data}
			// To a durable handler's subject, 202 means stored.
			err := h.publishEvent(ctx, m)
			end(err)
			if err != nil {
				h.log.Warn("event not accepted", "subject", msg.Subject, "error", err)
				msg.RespHeader = map[string][]string{"Retry-After": {"1"}}
				return failure(http.StatusServiceUnavailable, "event not accepted; try again")
			}
			accepted = true
			return reply(map[string][]string{"Content-Type": {"application/json"}}, []byte(`{"status":"accepted"}`))
		}
		// A request on the bus: the reply travels back through NATS.
		return h.forward(ctx, msg.Subject, msg, true)
	})
	if out.sent && answered != nil {
		out = *answered
	}
	writeOutcome(w, out, msg.RespHeader, accepted)
}

func writeOutcome(w http.ResponseWriter, out outcome, extra map[string][]string, accepted bool) {
	for k, vs := range extra {
		w.Header()[k] = append(w.Header()[k], vs...)
	}
	if out.status != 0 {
		code := out.status
		if code < 100 || code > 599 {
			code = http.StatusBadGateway
		}
		writeError(w, code, out.text())
		return
	}
	code := http.StatusOK
	if accepted {
		code = http.StatusAccepted
	}
	for k, vs := range out.header() {
		if hopHeaders[k] || strings.HasPrefix(k, abi.HeaderReservedPrefix) {
			continue
		}
		if k == abi.HeaderHTTPStatus && len(vs) > 0 {
			if n, err := strconv.Atoi(vs[0]); err == nil && n >= 200 && n <= 599 {
				code = n
			}
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(code)
	w.Write(out.data())
}

// writeError answers with {"error": text}. The text comes from a policy's or
// handler's reason, never from a credential.
func writeError(w http.ResponseWriter, code int, text string) {
	if text == "" {
		text = http.StatusText(code)
	}
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{text})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func (h *Host) stopHTTP(ctx context.Context) error {
	if h.http == nil {
		return nil
	}
	return h.http.Shutdown(ctx)
}
