package plugin

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero/api"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellis-mesh/trellis/abi"
)

// The host functions, registered as api.GoModuleFunc: wazero calls them with
// a stack of uint64 and no reflection, the fast form (about 100 ns for a round
// trip on a 2-core machine against about 1 µs through reflection).

var i32x = func(n int) []api.ValueType {
	ts := make([]api.ValueType, n)
	for i := range ts {
		ts[i] = api.ValueTypeI32
	}
	return ts
}

func (p *Plugin) instantiateHostModule(ctx context.Context) error {
	b := p.rt.NewHostModuleBuilder(abi.ImportModule)
	fns := []struct {
		name   string
		params int
		fn     api.GoModuleFunc
	}{
		{abi.FuncRead, 4, p.hostRead},
		{abi.FuncHeader, 4, p.hostHeader},
		{abi.FuncReply, 4, p.hostReply},
		{abi.FuncPublish, 6, p.hostPublish},
		{abi.FuncRequest, 7, p.hostRequest},
		{abi.FuncLog, 3, p.hostLog},
		{abi.FuncConfig, 4, p.hostConfig},
		{abi.FuncSubscribe, 4, p.hostSubscribe},
		{abi.FuncError, 2, p.hostError},
		{abi.FuncSetHeader, 4, p.hostSetHeader},
		{abi.FuncSetData, 2, p.hostSetData},
		{abi.FuncSetSubject, 2, p.hostSetSubject},
		{abi.FuncResponseHeader, 4, p.hostResponseHeader},
		{abi.FuncKVGet, 4, p.hostKVGet},
		{abi.FuncKVSet, 5, p.hostKVSet},
		{abi.FuncKVDelete, 2, p.hostKVDelete},
		{abi.FuncKVCAS, 7, p.hostKVCAS},
	}
	for _, f := range fns {
		b.NewFunctionBuilder().
			WithGoModuleFunction(f.fn, i32x(f.params), i32x(1)).
			WithParameterNames(). // names are in ABI.md
			Export(f.name)
	}
	// kv_incr takes an i64 delta.
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostKVIncr),
			[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI64, api.ValueTypeI32, api.ValueTypeI32},
			i32x(1)).
		WithParameterNames().
		Export(abi.FuncKVIncr)
	_, err := b.Instantiate(ctx)
	return err
}

func ok(stack []uint64, n int)          { stack[0] = api.EncodeI32(int32(n)) }
func fail(stack []uint64, s abi.Status) { stack[0] = api.EncodeI32(s.Result()) }
func u32(stack []uint64, i int) uint32  { return api.DecodeU32(stack[i]) }
func bytesOf(s string) []byte           { return unsafe.Slice(unsafe.StringData(s), len(s)) }
func (in *instance) size() uint32       { return in.mem.Size() }

// hostWorkPerCheck is how much work host functions do between two checks of
// the call's deadline: one unit per call, plus one per 4 KiB moved. Guest
// loops check the deadline through the interrupt rewrite every
// interrupt.Interval iterations; a loop whose iterations are host calls
// that each move megabytes would pass far more time between those checks,
// so host functions check too. Functions that may block on the bus
// (publish, request, kv_*) check on every call.
const hostWorkPerCheck = 64

// charge counts n bytes of host work against the call and checks the
// deadline once enough has been done.
func (in *instance) charge(ctx context.Context, n int) {
	in.spent.work += 1 + n>>12
	if in.spent.work >= hostWorkPerCheck {
		in.spent.work = 0
		checkDeadline(ctx)
	}
}

// checkDeadline stops the call, as the interrupt check does, once its
// context has ended.
func checkDeadline(ctx context.Context) {
	if err := ctx.Err(); err != nil {
		panic(&interrupted{err})
	}
}

// spent is what the current call has used of its per-call budgets (see the
// limits in package abi); endCall clears it.
type spent struct {
	work      int // host work since the deadline was last checked
	hdrBytes  int // set_header and response_header
	logBytes  int
	publishes int // publish and set_subject
	requests  int
	outBytes  int // headers and data sent with publish and request
}

func (in *instance) faultf(fn string, ptr, n uint32) {
	panic(&memoryFault{fn: fn, ptr: ptr, len: n, size: in.size()})
}

// view returns guest memory [ptr, ptr+n) without copying; it is valid until
// the guest runs again. Out of bounds is a fault.
func (in *instance) view(fn string, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		in.faultf(fn, ptr, n)
	}
	return b
}

// viewString returns guest memory [ptr, ptr+n) as a string, or ok false
// without copying anything when n is over max: a guest cannot make the host
// copy more than a name's limit to find out that the name is too long.
// Out of bounds is a fault either way.
func (in *instance) viewString(fn string, ptr, n uint32, max int) (string, bool) {
	b := in.view(fn, ptr, n)
	if len(b) > max {
		return "", false
	}
	return string(b), true
}

// copyOut writes src to guest memory at ptr, at most n bytes.
func (in *instance) copyOut(fn string, ptr, n uint32, src []byte) {
	if uint32(len(src)) > n {
		src = src[:n]
	}
	// Check the whole buffer the guest offered, not just what we write:
	// a wild buffer is a bug whether or not this message fills it.
	if n > 0 {
		if _, ok := in.mem.Read(ptr, n); !ok {
			in.faultf(fn, ptr, n)
		}
	}
	if len(src) > 0 {
		in.mem.Write(ptr, src)
	}
}

func (in *instance) field(f abi.Field) []byte {
	if in.msg == nil {
		return nil
	}
	switch f {
	case abi.FieldSubject:
		return bytesOf(in.msg.Subject)
	case abi.FieldReply:
		return bytesOf(in.msg.Reply)
	case abi.FieldHeaders:
		return in.headers
	case abi.FieldData:
		return in.msg.Data
	case abi.FieldResultHeaders:
		return in.resHdr
	case abi.FieldResultData:
		if in.resp != nil {
			return in.resp.Data
		}
		return in.resData
	}
	if h := in.msg.HTTP; h != nil {
		switch f {
		case abi.FieldMethod:
			return bytesOf(h.Method)
		case abi.FieldPath:
			return bytesOf(h.Path)
		case abi.FieldQuery:
			return bytesOf(h.Query)
		case abi.FieldRemoteAddr:
			return bytesOf(h.RemoteAddr)
		}
	}
	return nil
}

func (p *Plugin) hostRead(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	f := abi.Field(api.DecodeI32(stack[0]))
	off, buf, n := u32(stack, 1), u32(stack, 2), u32(stack, 3)
	if !f.Valid() {
		fail(stack, abi.StatusInvalidArgument)
		return
	}
	src := in.field(f)
	var part []byte
	if int64(off) < int64(len(src)) {
		part = src[off:]
	}
	in.copyOut(abi.FuncRead, buf, n, part)
	in.charge(ctx, min(len(part), int(n)))
	ok(stack, len(src))
}

func (p *Plugin) hostHeader(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	name := in.view(abi.FuncHeader, u32(stack, 0), u32(stack, 1))
	buf, n := u32(stack, 2), u32(stack, 3)
	in.charge(ctx, int(n))
	if len(name) > abi.MaxHeaderNameLen {
		in.copyOut(abi.FuncHeader, buf, n, nil)
		fail(stack, abi.StatusNotFound)
		return
	}
	var h map[string][]string
	if in.msg != nil {
		h = in.msg.Header
	}
	vs, found := h[string(name)]
	if !found {
		for k, v := range h {
			if strings.EqualFold(k, string(name)) {
				vs, found = v, true
				break
			}
		}
	}
	if !found || len(vs) == 0 {
		in.copyOut(abi.FuncHeader, buf, n, nil)
		fail(stack, abi.StatusNotFound)
		return
	}
	in.copyOut(abi.FuncHeader, buf, n, bytesOf(vs[0]))
	ok(stack, len(vs[0]))
}

// guestHeaders decodes headers the guest passed.
func (in *instance) guestHeaders(fn string, ptr, n uint32) (map[string][]string, bool) {
	b := in.view(fn, ptr, n)
	if len(b) == 0 {
		return nil, true
	}
	h, err := abi.ParseHeaders(b)
	return h, err == nil
}

func (p *Plugin) hostReply(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	hdr, hok := in.guestHeaders(abi.FuncReply, u32(stack, 0), u32(stack, 1))
	data := in.view(abi.FuncReply, u32(stack, 2), u32(stack, 3))
	// One reply per message gets through; the rest fail at once, so reply
	// is charged like a cheap function rather than checking the clock.
	in.charge(ctx, len(data))
	switch {
	case !hok:
		fail(stack, abi.StatusInvalidArgument)
	case in.msg == nil || !in.msg.expectsReply():
		fail(stack, abi.StatusNoReply)
	case in.replied:
		fail(stack, abi.StatusAlreadyReplied)
	case in.msg.Respond == nil && p.outbox == nil:
		fail(stack, abi.StatusBus)
	default:
		hdr = mergeHeaders(hdr, in.msg.RespHeader)
		var err error
		if in.msg.Respond != nil {
			err = in.msg.Respond(hdr, data)
		} else {
			err = p.outbox.Publish(ctx, in.msg.Reply, hdr, data)
		}
		if err != nil {
			p.log.Warn("reply failed", "subject", in.msg.Subject, "error", err)
			fail(stack, abi.StatusBus)
			return
		}
		in.replied = true
		ok(stack, 0)
	}
}

// outboundSubject reads and checks a subject the guest wants to send to.
func (p *Plugin) outboundSubject(in *instance, fn string, ptr, n uint32, grant []string) (string, abi.Status) {
	subject, fits := in.viewString(fn, ptr, n, abi.MaxSubjectLen)
	if !fits || ValidSubject(subject, false) != nil {
		return subject, abi.StatusInvalidSubject
	}
	if !allows(grant, subject) {
		p.deny(fn, subject, "subject not granted")
		return subject, abi.StatusDenied
	}
	return subject, abi.StatusOK
}

// maxLoggedSubject is where a denied subject is cut in the log.
const maxLoggedSubject = 128

// deny counts a refused call and logs it the first time this plugin version
// makes it, for the first maxDenialRecords distinct ones.
func (p *Plugin) deny(fn, subject, why string) {
	n := p.ndenied.Add(1)
	key := fn + " " + subject
	p.deniedMu.Lock()
	_, seen := p.denied[key]
	full := len(p.denied) >= maxDenialRecords
	if !seen && !full {
		if p.denied == nil {
			p.denied = map[string]struct{}{}
		}
		p.denied[key] = struct{}{}
	}
	p.deniedMu.Unlock()
	if len(subject) > maxLoggedSubject {
		subject = subject[:maxLoggedSubject] + "..."
	}
	switch {
	case !seen && !full:
		p.log.Warn("denied: "+why, "call", fn, "subject", subject)
	case !seen && full && n%1024 == 1:
		p.log.Warn("denied: "+why+"; too many distinct denials to log each", "call", fn, "subject", subject, "denied", n)
	}
}

func (p *Plugin) hostPublish(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	checkDeadline(ctx)
	subject, st := p.outboundSubject(in, abi.FuncPublish, u32(stack, 0), u32(stack, 1), p.grants.Publish)
	hdr, hok := in.guestHeaders(abi.FuncPublish, u32(stack, 2), u32(stack, 3))
	data := in.view(abi.FuncPublish, u32(stack, 4), u32(stack, 5))
	switch {
	case st != abi.StatusOK:
		fail(stack, st)
	case !hok:
		fail(stack, abi.StatusInvalidArgument)
	case !in.spend(&in.spent.publishes, abi.MaxPublishesPerCall, int(u32(stack, 3))+len(data)):
		fail(stack, abi.StatusTooLarge)
	case p.outbox == nil:
		fail(stack, abi.StatusBus)
	default:
		if err := p.outbox.Publish(ctx, subject, hdr, data); err != nil {
			p.log.Warn("publish failed", "subject", subject, "error", err)
			fail(stack, abi.StatusBus)
			return
		}
		ok(stack, 0)
	}
}

func (p *Plugin) hostRequest(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	checkDeadline(ctx)
	subject, st := p.outboundSubject(in, abi.FuncRequest, u32(stack, 0), u32(stack, 1), p.grants.Request)
	hdr, hok := in.guestHeaders(abi.FuncRequest, u32(stack, 2), u32(stack, 3))
	data := in.view(abi.FuncRequest, u32(stack, 4), u32(stack, 5))
	timeout := remaining(ctx, time.Duration(u32(stack, 6))*time.Millisecond)
	switch {
	case st != abi.StatusOK:
		fail(stack, st)
		return
	case !hok:
		fail(stack, abi.StatusInvalidArgument)
		return
	case !in.spend(&in.spent.requests, abi.MaxRequestsPerCall, int(u32(stack, 3))+len(data)):
		fail(stack, abi.StatusTooLarge)
		return
	case p.outbox == nil:
		fail(stack, abi.StatusBus)
		return
	}
	if timeout == 0 && u32(stack, 6) == 0 {
		timeout = DefaultTimeout // no call deadline and none asked for
	}
	if timeout <= 0 {
		fail(stack, abi.StatusTimeout)
		return
	}
	resp, err := p.outbox.Request(ctx, subject, hdr, data, timeout)
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		fail(stack, abi.StatusTimeout)
	case errors.Is(err, ErrNoResponders):
		fail(stack, abi.StatusNoResponders)
	case err != nil:
		p.log.Warn("request failed", "subject", subject, "error", err)
		fail(stack, abi.StatusBus)
	case len(resp.Data) > 1<<31-1:
		fail(stack, abi.StatusTooLarge)
	default:
		in.resHdr = abi.AppendHeaders(in.resHdr[:0], resp.Header)
		in.resData = resp.Data
		ok(stack, len(resp.Data))
	}
}

// spend counts one more call against *count, limited to max per call, and
// n bytes against the call's outbound bytes; it reports false, counting
// nothing, when either would go over.
func (in *instance) spend(count *int, max, n int) bool {
	if *count >= max || in.spent.outBytes+n > abi.MaxOutboundBytesPerCall {
		return false
	}
	*count++
	in.spent.outBytes += n
	return true
}

func (p *Plugin) hostLog(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	level := abi.Level(api.DecodeI32(stack[0]))
	msg := in.view(abi.FuncLog, u32(stack, 1), u32(stack, 2))
	if level < abi.LevelTrace || level > abi.LevelError {
		fail(stack, abi.StatusInvalidArgument)
		return
	}
	if len(msg) > abi.MaxLogBytes {
		msg = msg[:abi.MaxLogBytes]
	}
	in.charge(ctx, len(msg))
	if in.spent.logBytes+len(msg) > abi.MaxLogBytesPerCall {
		fail(stack, abi.StatusTooLarge)
		return
	}
	in.spent.logBytes += len(msg)
	lvl := hclog.Level(level)
	if p.log.GetLevel() <= lvl {
		text := logText(msg)
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() && in.msg != nil {
			// A traced message's lines carry its trace id, to find the
			// trace from the log and the log from the trace.
			p.log.Log(lvl, text, "subject", in.msg.Subject, "trace_id", sc.TraceID().String())
		} else if in.msg != nil {
			p.log.Log(lvl, text, "subject", in.msg.Subject)
		} else {
			p.log.Log(lvl, text)
		}
	}
	ok(stack, 0)
}

// logText makes a plugin's log text safe to write as one log line: if it
// holds a control character (a newline above all, which could forge a line
// of its own), a line or paragraph separator, or invalid UTF-8, the whole
// text is escaped as a Go string literal's contents.
func logText(msg []byte) string {
	text := string(msg)
	for i, r := range text {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' ||
			(r == utf8.RuneError && !strings.HasPrefix(text[i:], "\xef\xbf\xbd")) {
			q := strconv.Quote(text)
			return q[1 : len(q)-1]
		}
	}
	return text
}

func (p *Plugin) hostConfig(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	key := in.view(abi.FuncConfig, u32(stack, 0), u32(stack, 1))
	buf, n := u32(stack, 2), u32(stack, 3)
	in.charge(ctx, int(n))
	v, found := p.config[string(key)]
	if !found {
		in.copyOut(abi.FuncConfig, buf, n, nil)
		fail(stack, abi.StatusNotFound)
		return
	}
	in.copyOut(abi.FuncConfig, buf, n, bytesOf(v))
	ok(stack, len(v))
}

func (p *Plugin) hostSubscribe(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	in.charge(ctx, 0)
	subject, sfits := in.viewString(abi.FuncSubscribe, u32(stack, 0), u32(stack, 1), abi.MaxSubjectLen)
	queue, qfits := in.viewString(abi.FuncSubscribe, u32(stack, 2), u32(stack, 3), abi.MaxQueueLen)
	switch {
	case in.phase != phaseInit:
		fail(stack, abi.StatusWrongPhase)
	case !sfits || !qfits || ValidSubject(subject, true) != nil || (queue != "" && abi.ValidQueue(queue) != nil):
		fail(stack, abi.StatusInvalidSubject)
	case !covers(p.grants.Subscribe, subject):
		p.deny(abi.FuncSubscribe, subject, "subscription not granted (the operator grants it with the plugin's subjects in its config)")
		if in.first {
			p.subsMu.Lock()
			if p.deniedSub == "" {
				p.deniedSub = subject
			}
			p.subsMu.Unlock()
		}
		fail(stack, abi.StatusDenied)
	default:
		if in.first {
			p.subsMu.Lock()
			full := len(p.subs) >= abi.MaxSubscriptions
			if !full {
				p.subs = append(p.subs, Subscription{Subject: subject, Queue: queue})
			}
			p.subsMu.Unlock()
			if full {
				fail(stack, abi.StatusTooLarge)
				return
			}
		}
		ok(stack, 0)
	}
}

func (p *Plugin) hostError(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	msg := in.view(abi.FuncError, u32(stack, 0), u32(stack, 1))
	if len(msg) > abi.MaxLogBytes {
		msg = msg[:abi.MaxLogBytes]
	}
	in.charge(ctx, len(msg))
	in.errText = append(in.errText[:0], msg...)
	ok(stack, 0)
}

// mergeHeaders adds extra to h (which may be nil), keeping h's values first.
func mergeHeaders(h, extra map[string][]string) map[string][]string {
	if len(extra) == 0 {
		return h
	}
	if h == nil {
		h = make(map[string][]string, len(extra))
	}
	for k, vs := range extra {
		h[k] = append(h[k], vs...)
	}
	return h
}

// validHeader reports whether name and value can travel as a header.
func validHeader(name, value []byte) bool {
	if len(name) == 0 || len(name) > abi.MaxHeaderNameLen || len(value) > abi.MaxHeaderValueLen ||
		bytes.ContainsAny(name, ":\r\n") || bytes.ContainsAny(value, "\r\n") {
		return false
	}
	return true
}

// addHeaderBytes counts n header bytes against the call's budget; it
// reports false, counting nothing, when that would go over.
func (in *instance) addHeaderBytes(n int) bool {
	if in.spent.hdrBytes+n > abi.MaxHeaderBytesPerCall {
		return false
	}
	in.spent.hdrBytes += n
	return true
}

func (p *Plugin) hostSetHeader(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	name := in.view(abi.FuncSetHeader, u32(stack, 0), u32(stack, 1))
	value := in.view(abi.FuncSetHeader, u32(stack, 2), u32(stack, 3))
	in.charge(ctx, len(name)+len(value))
	switch {
	case in.phase != phasePolicy:
		fail(stack, abi.StatusWrongPhase)
	case !validHeader(name, value):
		fail(stack, abi.StatusInvalidArgument)
	case !in.addHeaderBytes(len(name) + len(value)):
		fail(stack, abi.StatusTooLarge)
	default:
		if in.msg.Header == nil {
			in.msg.Header = map[string][]string{}
		}
		if len(value) == 0 {
			delete(in.msg.Header, string(name))
		} else {
			in.msg.Header[string(name)] = []string{string(value)}
		}
		in.headers = abi.AppendHeaders(in.headers[:0], in.msg.Header)
		ok(stack, 0)
	}
}

func (p *Plugin) hostSetData(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	data := in.view(abi.FuncSetData, u32(stack, 0), u32(stack, 1))
	in.charge(ctx, len(data))
	switch in.phase {
	case phasePolicy:
		in.msg.Data = bytes.Clone(data)
		ok(stack, 0)
	case phaseResponse:
		in.resp.Data = bytes.Clone(data)
		ok(stack, 0)
	default:
		fail(stack, abi.StatusWrongPhase)
	}
}

func (p *Plugin) hostSetSubject(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	grant := p.grants.Publish
	if in.msg != nil && in.msg.expectsReply() {
		grant = p.grants.Request
	}
	in.charge(ctx, 0)
	subject, st := p.outboundSubject(in, abi.FuncSetSubject, u32(stack, 0), u32(stack, 1), grant)
	switch {
	case in.phase != phasePolicy:
		fail(stack, abi.StatusWrongPhase)
	case st != abi.StatusOK:
		fail(stack, st)
	case !in.spend(&in.spent.publishes, abi.MaxPublishesPerCall, 0):
		fail(stack, abi.StatusTooLarge)
	default:
		in.target = subject
		ok(stack, 0)
	}
}

func (p *Plugin) hostResponseHeader(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	name := in.view(abi.FuncResponseHeader, u32(stack, 0), u32(stack, 1))
	value := in.view(abi.FuncResponseHeader, u32(stack, 2), u32(stack, 3))
	in.charge(ctx, len(name)+len(value))
	switch {
	case in.msg == nil:
		fail(stack, abi.StatusWrongPhase)
	case !validHeader(name, value):
		fail(stack, abi.StatusInvalidArgument)
	case !in.addHeaderBytes(len(name) + len(value)):
		fail(stack, abi.StatusTooLarge)
	default:
		if in.msg.RespHeader == nil {
			in.msg.RespHeader = map[string][]string{}
		}
		k := string(name)
		in.msg.RespHeader[k] = append(in.msg.RespHeader[k], string(value))
		ok(stack, 0)
	}
}
