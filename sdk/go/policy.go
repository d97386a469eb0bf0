package trellis

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/trellis-mesh/trellis/abi"
)

// Inbound is the message a policy decides on: a NATS message, or an HTTP
// request that came through the host's ingress (then Method, Path, Query and
// RemoteAddr are set). Like a handler's Msg, it is only valid until the
// policy returns.
type Inbound struct {
	Msg
	Method     string
	Path       string
	Query      string
	RemoteAddr string
}

// Decision is what a policy returns: Continue, or a rejection status.
type Decision int32

// Continue lets the message go on (to the next policy, then the handler).
const Continue Decision = 0

// Reject refuses the message with an HTTP-like status (401, 403, 429...) and
// a reason the caller sees. The reason must not leak secrets.
func Reject(status int, reason string) Decision {
	setError(reason)
	if status <= 0 {
		status = 403
	}
	return Decision(status)
}

// PolicyFunc decides on one message.
type PolicyFunc func(r *Inbound) Decision

// ResponseFunc looks at a response on its way back: Status is 0 for success.
type ResponseFunc func(r *Response) Decision

// Response is the answer a policy sees in its response phase.
type Response struct {
	Status int
	Header Header
	Data   []byte
	// Request is the message being answered, as the handler got it
	// (subject, reply and headers; not its payload).
	Request *Msg
}

var (
	policyFn   PolicyFunc
	responseFn ResponseFunc
	curInbound Inbound // the request being decided on, reused like curMsg
)

// Policy registers fn as the plugin's policy (call it from init). A module
// may be a policy and a handler at once; the operator decides where it runs.
func Policy(fn PolicyFunc) { policyFn = fn }

// PolicyResponse registers fn to see responses on their way back.
func PolicyResponse(fn ResponseFunc) { responseFn = fn }

// SetHeader sets a header on the message that goes on to the handler (an
// empty value removes it). Policies only.
func (r *Inbound) SetHeader(name, value string) error {
	if err := statusErr(hostSetHeader(sptr(name), uint32(len(name)), sptr(value), uint32(len(value)))); err != nil {
		return err
	}
	if r.Header == nil {
		r.Header = Header{}
	}
	if value == "" {
		delete(r.Header, name)
	} else {
		r.Header.Set(name, value)
	}
	return nil
}

// SetData replaces the payload the handler gets.
func (r *Inbound) SetData(data []byte) error {
	if err := statusErr(hostSetData(ptr(data), uint32(len(data)))); err != nil {
		return err
	}
	r.Data = data
	return nil
}

// Route sends the message to subject instead of this route's handler. The
// operator must have granted the subject (request grants for requests,
// publish grants for events).
func (r *Inbound) Route(subject string) error {
	return statusErr(hostSetSubject(sptr(subject), uint32(len(subject))))
}

// Answer replies to the request directly, so it goes no further, and
// returns Continue for the policy to return.
func (r *Inbound) Answer(data []byte) (Decision, error) {
	return Continue, r.Respond(data)
}

// SetData replaces the response's payload.
func (r *Response) SetData(data []byte) error {
	if err := statusErr(hostSetData(ptr(data), uint32(len(data)))); err != nil {
		return err
	}
	r.Data = data
	return nil
}

// ResponseHeader adds a header to the response the caller gets, whoever
// produces it (a rejection, a policy's answer or the handler's reply).
func ResponseHeader(name, value string) error {
	return statusErr(hostResponseHeader(sptr(name), uint32(len(name)), sptr(value), uint32(len(value))))
}

func readString(f abi.Field) string {
	b := readField(f, 0)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func runPolicy(subjectLen, replyLen, headersLen, dataLen uint32) int32 {
	if policyFn == nil {
		setError("this plugin registers no policy")
		return 500
	}
	r := &curInbound
	*r = Inbound{}
	if st := fillMsg(&r.Msg, subjectLen, replyLen, headersLen, dataLen); st != 0 {
		return st
	}
	r.Method = readString(abi.FieldMethod)
	if r.Method != "" {
		r.Path = readString(abi.FieldPath)
		r.Query = readString(abi.FieldQuery)
		r.RemoteAddr = readString(abi.FieldRemoteAddr)
	}
	return int32(policyFn(r))
}

func runPolicyResponse(status int32, headersLen, dataLen uint32) int32 {
	if responseFn == nil {
		return 0
	}
	resp := &Response{Status: int(status), Request: &Msg{
		Subject: readString(abi.FieldSubject),
		reply:   readString(abi.FieldReply),
	}}
	if rh := readField(abi.FieldHeaders, 0); len(rh) > 0 {
		if h, err := abi.ParseHeaders(rh); err == nil {
			resp.Request.Header = h
		}
	}
	if dataLen > 0 {
		resp.Data = readField(abi.FieldResultData, dataLen)
	}
	if headersLen > 0 {
		h, err := abi.ParseHeaders(readField(abi.FieldResultHeaders, headersLen))
		if err != nil {
			setError("malformed headers from host")
			return 500
		}
		resp.Header = h
	}
	return int32(responseFn(resp))
}

// KVGet reads key from the plugin's key-value namespace (NATS JetStream KV,
// shared by every instance and every host on the bus). A missing key is
// ErrNotFound.
func KVGet(key string) ([]byte, error) {
	n := hostKVGet(sptr(key), uint32(len(key)), nil, 0)
	for attempt := 0; ; attempt++ {
		if err := statusErr(n); err != nil {
			return nil, err
		}
		b := make([]byte, n)
		// The value may change between the calls: if it grew, read again.
		m := hostKVGet(sptr(key), uint32(len(key)), ptr(b), uint32(n))
		if err := statusErr(m); err != nil {
			return nil, err
		}
		if m <= n || attempt >= 3 {
			return b[:min(m, n)], nil
		}
		n = m
	}
}

// KVSet stores value under key; it expires after ttl (0: never).
func KVSet(key string, value []byte, ttl time.Duration) error {
	return statusErr(hostKVSet(sptr(key), uint32(len(key)), ptr(value), uint32(len(value)), ms(ttl)))
}

// KVIncr atomically adds delta to the integer under key (missing counts as
// 0) across all instances and hosts, and returns the new value. A key it
// creates expires after ttl (0: never).
func KVIncr(key string, delta int64, ttl time.Duration) (int64, error) {
	var out [8]byte
	if err := statusErr(hostKVIncr(sptr(key), uint32(len(key)), delta, ms(ttl), unsafe.Pointer(&out[0]))); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(out[:])), nil
}

// ErrConflict is KVCompareAndSet's error when the value was not the one expected.
var ErrConflict error = abi.StatusConflict

// KVCompareAndSet stores value under key only if its current value is
// expected (empty: only if the key does not exist), atomically across
// instances and hosts; otherwise it returns ErrConflict. With KVGet it makes
// any read-modify-write safe: get, compute, compare-and-set, retry on
// conflict. The value expires after ttl (0: never).
func KVCompareAndSet(key string, expected, value []byte, ttl time.Duration) error {
	return statusErr(hostKVCAS(sptr(key), uint32(len(key)), ptr(expected), uint32(len(expected)),
		ptr(value), uint32(len(value)), ms(ttl)))
}

// KVDelete removes key.
func KVDelete(key string) error { return statusErr(hostKVDelete(sptr(key), uint32(len(key)))) }

func ms(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	m := d.Milliseconds()
	if m < 1 {
		m = 1
	}
	if m > 1<<31-1 {
		m = 1<<31 - 1
	}
	return uint32(m)
}
