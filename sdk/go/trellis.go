// Package trellis is the Go SDK for Trellis plugins: handlers that run inside
// the Trellis host as WebAssembly, get messages from its NATS bus, and reply,
// publish, request and log through the host.
//
// A plugin is a package main that registers handlers in init and is built as
// a WASI reactor:
//
//	package main
//
//	import trellis "github.com/trellis-mesh/trellis/sdk/go"
//
//	func init() {
//		trellis.Handle("greet", func(m *trellis.Msg) ([]byte, error) {
//			return []byte("Hello, " + string(m.Data) + "!"), nil
//		})
//	}
//
//	func main() {}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o greet.wasm .
//
// (or `trellis build DIR`). The package is a thin layer over ABI v1
// (abi/ABI.md); it needs no TinyGo. A plugin instance runs one message at a
// time, so handlers need no locks, but the host may run several instances:
// keep shared state in the host, not in globals.
package trellis

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/trellis-mesh/trellis/abi"
)

// Header holds message headers. Names are case-sensitive, as in NATS.
type Header map[string][]string

// Get returns the first value of name, or "". An exact match wins; else a
// name that differs only in case matches (HTTP clients change the case of
// header names, NATS keeps it), as the host's header function does.
func (h Header) Get(name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// Set replaces the values of name with value.
func (h Header) Set(name, value string) { h[name] = []string{value} }

// Add appends value to name's values.
func (h Header) Add(name, value string) { h[name] = append(h[name], value) }

// Msg is a message a handler receives, or a response to Request.
//
// The Msg a handler or policy gets, and its Data, are only valid until the
// handler returns: the SDK reuses their memory for the next message, because
// allocating in a Wasm guest costs far more than copying. Copy what you keep
// (bytes.Clone(m.Data)); Subject and Header are ordinary Go values and may be
// kept. Replying with m.Data itself is fine.
type Msg struct {
	Subject string
	// Header is nil when the message has none (Get still works).
	Header Header
	Data   []byte

	reply    string
	replyLen uint32 // the host holds a reply subject of this length, not read yet
	replied  bool
}

// Reply returns the subject the message asks to be answered on; "" for an
// event. Respond does not need it: use it to answer later, from another
// message, with Publish.
func (m *Msg) Reply() string {
	if m.reply == "" && m.replyLen > 0 {
		m.reply = readString(abi.FieldReply)
	}
	return m.reply
}

// IsRequest reports whether somebody waits for an answer to m.
func (m *Msg) IsRequest() bool { return m.replyLen > 0 || m.reply != "" }

// HandlerFunc handles one message. For a request, the returned bytes are
// the reply (unless the handler already called Respond); a returned error
// becomes an error reply: a *StatusError keeps its code, any other error is 500.
// For an event (no reply subject) the bytes are ignored.
type HandlerFunc func(m *Msg) ([]byte, error)

type route struct {
	subject, queue string
	fn             HandlerFunc
}

var (
	routes []route
	inits  []func() error
)

// Handle registers fn for subject, which may hold NATS wildcards. Call it
// from init. The first registered pattern that matches a message's subject
// handles it. The operator's config may replace the subjects a plugin
// declares; messages on subjects no pattern matches go to the last handler
// registered.
func Handle(subject string, fn HandlerFunc) { routes = append(routes, route{subject: subject, fn: fn}) }

// HandleQueue is Handle with an explicit queue group instead of the
// default (the plugin's name).
func HandleQueue(subject, queue string, fn HandlerFunc) {
	routes = append(routes, route{subject: subject, queue: queue, fn: fn})
}

// OnInit registers fn to run once per instance, when the host starts it. An
// error refuses the instance; at load time it refuses the plugin, and the
// host logs the error. Use it to read and check config.
func OnInit(fn func() error) { inits = append(inits, fn) }

// StatusError is a handler failure with a status code (use HTTP-like codes: 400,
// 404, 422, 500...). The host sends it as the Nats-Service-Error-Code and
// Nats-Service-Error headers of the error reply.
type StatusError struct {
	Code    int
	Message string
}

// Error returns the code and message.
func (e *StatusError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// Errorf returns a *StatusError with code and a formatted message.
func Errorf(code int, format string, args ...any) error {
	return &StatusError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors the host functions return; compare with errors.Is.
var (
	ErrNotFound       error = abi.StatusNotFound
	ErrDenied         error = abi.StatusDenied
	ErrTimeout        error = abi.StatusTimeout
	ErrNoResponders   error = abi.StatusNoResponders
	ErrInvalidSubject error = abi.StatusInvalidSubject
	ErrNoReply        error = abi.StatusNoReply
	ErrAlreadyReplied error = abi.StatusAlreadyReplied
)

func statusErr(r int32) error {
	if r >= 0 {
		return nil
	}
	return abi.Status(-r)
}

// ptr returns the address of b's first byte (nil for an empty b).
func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// Respond replies to m at once with data. At most one reply per message.
func (m *Msg) Respond(data []byte) error { return m.RespondMsg(nil, data) }

// RespondMsg replies to m with headers and data.
func (m *Msg) RespondMsg(h Header, data []byte) error {
	hdr := appendHeaders(h)
	err := statusErr(hostReply(ptr(hdr), uint32(len(hdr)), ptr(data), uint32(len(data))))
	if err == nil {
		m.replied = true
	}
	return err
}

// appendHeaders encodes h for the host, or returns nil for no headers
// without a call: in a Go guest every call costs, and most replies carry
// no headers.
func appendHeaders(h Header) []byte {
	if len(h) == 0 {
		return nil
	}
	return abi.AppendHeaders(nil, h)
}

// Publish sends data to subject. The operator must have granted the plugin
// the subject; otherwise the error is ErrDenied.
func Publish(subject string, data []byte) error { return PublishMsg(subject, nil, data) }

// PublishMsg sends data with headers to subject.
func PublishMsg(subject string, h Header, data []byte) error {
	hdr := appendHeaders(h)
	return statusErr(hostPublish(sptr(subject), uint32(len(subject)), ptr(hdr), uint32(len(hdr)),
		ptr(data), uint32(len(data))))
}

// Request sends data to subject and waits up to timeout (bounded by the
// call's own deadline) for the first response. Errors: ErrTimeout,
// ErrNoResponders, ErrDenied. A response that is an error reply is returned
// as a Msg: check its Nats-Service-Error-Code header.
func Request(subject string, data []byte, timeout time.Duration) (*Msg, error) {
	return RequestMsg(subject, nil, data, timeout)
}

// RequestMsg is Request with headers.
func RequestMsg(subject string, h Header, data []byte, timeout time.Duration) (*Msg, error) {
	hdr := appendHeaders(h)
	ms := timeout.Milliseconds()
	if ms <= 0 && timeout > 0 {
		ms = 1
	}
	if ms > 1<<31-1 {
		ms = 1<<31 - 1 // the ABI's timeout is an i32
	}
	n := hostRequest(sptr(subject), uint32(len(subject)), ptr(hdr), uint32(len(hdr)),
		ptr(data), uint32(len(data)), uint32(ms))
	if err := statusErr(n); err != nil {
		return nil, err
	}
	resp := &Msg{Subject: subject, Data: readField(abi.FieldResultData, uint32(n))}
	rh := readField(abi.FieldResultHeaders, 0)
	if len(rh) > 0 {
		h, err := abi.ParseHeaders(rh)
		if err != nil {
			return nil, err
		}
		resp.Header = h
	}
	return resp, nil
}

// readField reads a whole message field; size is a hint (0: ask the host).
func readField(f abi.Field, size uint32) []byte {
	if size == 0 {
		n := hostRead(int32(f), 0, nil, 0)
		if n <= 0 {
			return nil
		}
		size = uint32(n)
	}
	b := make([]byte, size)
	hostRead(int32(f), 0, ptr(b), size)
	return b
}

// Config returns the operator's config value for key.
func Config(key string) (string, bool) {
	n := hostConfig(sptr(key), uint32(len(key)), nil, 0)
	if n < 0 {
		return "", false
	}
	b := make([]byte, n)
	hostConfig(sptr(key), uint32(len(key)), ptr(b), uint32(n))
	return string(b), true
}

// ConfigOr returns the config value for key, or def when it is not set.
func ConfigOr(key, def string) string {
	if v, ok := Config(key); ok {
		return v
	}
	return def
}

// Log levels for Log.
const (
	LevelTrace = abi.LevelTrace
	LevelDebug = abi.LevelDebug
	LevelInfo  = abi.LevelInfo
	LevelWarn  = abi.LevelWarn
	LevelError = abi.LevelError
)

// Log writes msg to the plugin's logger in the host.
func Log(level abi.Level, msg string) { hostLog(int32(level), sptr(msg), uint32(len(msg))) }

// Logf formats and logs.
func Logf(level abi.Level, format string, args ...any) { Log(level, fmt.Sprintf(format, args...)) }

// Trace logs msg at trace level.
func Trace(msg string) { Log(LevelTrace, msg) }

// Debug logs msg at debug level.
func Debug(msg string) { Log(LevelDebug, msg) }

// Info logs msg at info level.
func Info(msg string) { Log(LevelInfo, msg) }

// Warn logs msg at warn level.
func Warn(msg string) { Log(LevelWarn, msg) }

// Error logs msg at error level. (To fail a message, return an error from
// the handler instead.)
func Error(msg string) { Log(LevelError, msg) }

func runInit() int32 {
	for _, r := range routes {
		if st := statusErr(hostSubscribe(sptr(r.subject), uint32(len(r.subject)), sptr(r.queue), uint32(len(r.queue)))); st != nil {
			setError(fmt.Sprintf("subscribe %q: %v", r.subject, st))
			return 1
		}
	}
	for _, fn := range inits {
		if err := fn(); err != nil {
			setError(err.Error())
			return 1
		}
	}
	return 0
}

func setError(s string) { hostError(sptr(s), uint32(len(s))) }

// The message being handled and the memory behind it, reused from one
// message to the next: an instance handles one message at a time.
var (
	curMsg   Msg
	inBuf    []byte    // holds curMsg.Data
	hdrBuf   []byte    // raw headers, parsed into curMsg.Header
	subjects [8]string // recent subjects, so that a subject is not allocated per message
	nextSubj int
)

// noHandler is trellis_handle's answer when no handler takes subject.
func noHandler(subject string) int32 {
	setError("no handler registered for " + subject)
	return 404
}

// handlerFailed is trellis_handle's answer when the handler returns err.
func handlerFailed(err error) int32 {
	var e *StatusError
	if errors.As(err, &e) {
		setError(e.Message)
		if e.Code == 0 {
			return 500
		}
		return int32(e.Code)
	}
	setError(err.Error())
	return 500
}

// replyFailed is trellis_handle's answer when its reply fails with status
// st: a handler that replied itself is no failure.
func replyFailed(st int32) int32 {
	if err := statusErr(st); err != ErrAlreadyReplied {
		setError("reply: " + err.Error())
		return 500
	}
	return 0
}

// fillMsg reads the message being handled into m, reusing the SDK's buffers.
// exportHandle has its body written out; a change here goes there too.
func fillMsg(m *Msg, subjectLen, replyLen, headersLen, dataLen uint32) int32 {
	*m = Msg{replyLen: replyLen}
	inBuf = grow(inBuf, max(subjectLen, dataLen))
	hostRead(int32(abi.FieldSubject), 0, ptr(inBuf), subjectLen)
	m.Subject = intern(inBuf[:subjectLen])
	if dataLen > 0 {
		m.Data = inBuf[:dataLen:dataLen]
		hostRead(int32(abi.FieldData), 0, ptr(m.Data), dataLen)
	}
	if headersLen > 0 {
		return readHeaders(m, headersLen)
	}
	return 0
}

// readHeaders reads the message's headers into m: fillMsg's rarer part, in
// a function of its own to keep fillMsg small.
func readHeaders(m *Msg, headersLen uint32) int32 {
	hdrBuf = grow(hdrBuf, headersLen)
	hostRead(int32(abi.FieldHeaders), 0, ptr(hdrBuf), headersLen)
	h, err := abi.ParseHeaders(hdrBuf[:headersLen])
	if err != nil {
		setError("malformed headers from host")
		return 500
	}
	m.Header = h
	return 0
}

// grow returns b with room for n bytes. A buffer that grew past 1 MiB for a
// large message is let go once smaller messages follow.
func grow(b []byte, n uint32) []byte {
	switch {
	case uint32(cap(b)) < n:
		return make([]byte, n)
	case cap(b) > 1<<20 && n < 64<<10:
		return make([]byte, max(n, 4<<10))
	}
	return b[:cap(b)]
}

// intern returns b as a string, without allocating when b is one of the
// subjects seen lately.
func intern(b []byte) string {
	for _, s := range subjects {
		if equal(s, b) {
			return s
		}
	}
	s := string(b)
	subjects[nextSubj] = s
	nextSubj = (nextSubj + 1) % len(subjects)
	return s
}

// equal reports whether s holds the bytes of b. It is s == string(b), which
// does not allocate either, but compiles to two calls (runtime.memequal and
// memeqbody); this loop is inlined, and subjects are short.
func equal(s string, b []byte) bool {
	if len(s) != len(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if s[i] != b[i] {
			return false
		}
	}
	return true
}

// lookup returns the handler for subject. One route handles every message
// (its pattern, or as the last handler registered), so a plugin with one
// handler matches nothing: in a Go guest each call of the matching code
// costs tens of nanoseconds.
func lookup(subject string) HandlerFunc {
	if len(routes) == 1 {
		return routes[0].fn
	}
	for _, r := range routes {
		if abi.SubjectMatches(r.subject, subject) {
			return r.fn
		}
	}
	if len(routes) > 0 {
		return routes[len(routes)-1].fn
	}
	return nil
}
