package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/deadline"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/interrupt"
	"github.com/trellis-mesh/trellis/host/internal/pool"
)

// Message is what a handler or policy gets: a NATS message, or an HTTP
// request shaped like one. Policies may change Header and Data in place.
type Message struct {
	Subject string
	Reply   string
	Header  map[string][]string
	Data    []byte

	// HTTP holds the request line of a message that came through the HTTP
	// ingress; nil for NATS messages.
	HTTP *HTTPInfo
	// RespHeader collects headers to add to whatever response the message
	// gets (response_header).
	RespHeader map[string][]string
	// Respond, if set, receives the plugin's reply instead of a publish to
	// Reply: the HTTP ingress answers with it, a policy chain captures it.
	// It runs during the host call; it must copy what it keeps.
	Respond func(header map[string][]string, data []byte) error
}

// HTTPInfo is what a policy can read of an HTTP request besides headers and body.
type HTTPInfo struct {
	Method, Path, Query, RemoteAddr string
}

// expectsReply reports whether anybody waits for an answer to m.
func (m *Message) expectsReply() bool { return m.Reply != "" || m.Respond != nil }

// Result says how a call that did not fault ended.
type Result struct {
	// Status is what trellis_handle returned: 0 for success, else an error code.
	Status int32
	// Error is the text the plugin gave the error host function, if any.
	Error string
	// Replied reports whether the plugin called reply.
	Replied bool
}

type phase uint8

const (
	phaseIdle phase = iota
	phaseInit
	phaseHandle
	phasePolicy
	phaseResponse
)

// instance is one wazero module instance with the state of the call it is
// serving. Only the goroutine that acquired it from the pool touches it.
type instance struct {
	p       *Plugin
	mod     api.Module
	mem     api.Memory
	handle  api.Function
	policy  api.Function
	respond api.Function
	stack   [4]uint64
	cctx    callContext
	dl      deadline.Context // the deadline of a call that found this instance idle
	first   bool
	memSize uint32 // linear memory as last counted in Plugin.memBytes

	// State of the current call, reset by endCall.
	phase   phase
	msg     *Message
	headers []byte // msg.Header, encoded
	resHdr  []byte
	resData []byte
	replied bool
	errText []byte
	target  string    // set_subject
	resp    *Response // the response a policy's response phase sees
	spent   spent
}

// callContext is the context of every call into an instance: the caller's
// context, plus a way for host functions to find their instance with no
// allocation per call.
type callContext struct {
	context.Context
	inst *instance
}

type instanceKey struct{}

// AfterFunc lets contexts derived from a call's context (a host function's
// request timeout) follow it without a goroutine of their own: the context
// package would otherwise start one that reads the callContext after the
// call has ended and the instance has moved on to its next call.
func (c *callContext) AfterFunc(f func()) (stop func() bool) { return context.AfterFunc(c.Context, f) }

func (c *callContext) Value(key any) any {
	if key == (instanceKey{}) {
		return c.inst
	}
	return c.Context.Value(key)
}

// callCtx returns the context for one call into the instance. When wazero
// watches the context (a module without interrupt checks, deadlines on), it
// does so from a goroutine that may outlive the call, so each call gets its
// own; otherwise the instance's one is reused and the call allocates nothing.
func (in *instance) callCtx(ctx context.Context) context.Context {
	if in.p.timeout > 0 && !in.p.interruptible {
		return &callContext{Context: ctx, inst: in}
	}
	in.cctx.Context = ctx
	return &in.cctx
}

// instanceOf returns the instance a host function was called from: at
// once when wazero passes the call's context on as it was given, through
// Value when something wrapped it.
func instanceOf(ctx context.Context) *instance {
	if c, ok := ctx.(*callContext); ok {
		return c.inst
	}
	in, _ := ctx.Value(instanceKey{}).(*instance)
	return in
}

func (p *Plugin) newInstance(ctx context.Context) (*instance, error) {
	mod, err := p.rt.InstantiateModule(ctx, p.compiled, p.modCfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in := &instance{
		p:       p,
		mod:     mod,
		mem:     mod.ExportedMemory(abi.ExportMemory),
		handle:  mod.ExportedFunction(abi.ExportHandle),
		policy:  mod.ExportedFunction(abi.ExportPolicy),
		respond: mod.ExportedFunction(abi.ExportPolicyResponse),
	}
	in.cctx.inst = in
	p.subsMu.Lock()
	in.first = !p.declared
	p.subsMu.Unlock()

	in.phase = phaseInit
	err = in.initialize(in.callCtx(ctx))
	in.phase = phaseIdle
	in.spent = spent{}
	if err != nil {
		mod.Close(context.Background())
		return nil, err
	}
	if in.first {
		p.subsMu.Lock()
		p.declared = true
		p.subsMu.Unlock()
	}
	p.ncreated.Add(1)
	in.countMemory()
	return in, nil
}

// countMemory brings the plugin's count of its instances' memory up to
// date with in's, which only in's calls grow: called after each.
func (in *instance) countMemory() {
	if in.mem == nil {
		return
	}
	if s := in.mem.Size(); s != in.memSize {
		in.p.memBytes.Add(int64(s) - int64(in.memSize))
		in.memSize = s
	}
}

// initDeadlineKey marks the context of the first instance's init; its
// value is the deadline that init has, which a timeout fault names.
type initDeadlineKey struct{}

func (in *instance) initialize(ctx context.Context) error {
	// An instance made for a call has that call's deadline, which fault
	// names; the first has Options.InitTimeout.
	left := time.Duration(-1)
	if d, ok := ctx.Value(initDeadlineKey{}).(time.Duration); ok {
		left = d
	}
	if in.p.hasStart {
		if _, err := in.mod.ExportedFunction(abi.ExportInitialize).Call(ctx); err != nil {
			return fmt.Errorf("%s: %w", abi.ExportInitialize, in.p.initFault(err, left))
		}
	}
	if in.p.hasInit {
		res, err := in.mod.ExportedFunction(abi.ExportInit).Call(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", abi.ExportInit, in.p.initFault(err, left))
		}
		if st := api.DecodeI32(res[0]); st != 0 {
			return fmt.Errorf("%s returned %d%s", abi.ExportInit, st, in.takeError())
		}
	}
	return nil
}

func (in *instance) takeError() string {
	if len(in.errText) == 0 {
		return ""
	}
	s := ": " + string(in.errText)
	in.errText = in.errText[:0]
	return s
}

func (in *instance) close() {
	in.p.memBytes.Add(-int64(in.memSize))
	in.memSize = 0
	in.mod.Close(context.Background())
}

// Handle runs one message through the plugin: it waits for a free instance,
// calls trellis_handle, and returns how the call ended. The whole invocation,
// wait included, has one deadline: ctx's, or Options.Timeout from now when
// ctx has none. A call that faults returns a *Fault and its instance is
// discarded; a plugin that answers with an error status is not a fault.
func (p *Plugin) Handle(ctx context.Context, msg *Message) (Result, error) {
	if !p.hasHandle {
		return Result{}, fmt.Errorf("plugin %q does not export %s", p.name, abi.ExportHandle)
	}
	var res Result
	err := p.call(ctx, msg, phaseHandle, func(in *instance) api.Function {
		in.headers = abi.AppendHeaders(in.headers[:0], msg.Header)
		in.stack[0] = uint64(len(msg.Subject))
		in.stack[1] = uint64(len(msg.Reply))
		in.stack[2] = uint64(len(in.headers))
		in.stack[3] = uint64(len(msg.Data))
		return in.handle
	}, func(in *instance) {
		res = Result{Replied: in.replied, Status: api.DecodeI32(in.stack[0])}
		if res.Status != 0 {
			if len(in.errText) > 0 {
				res.Error = string(in.errText)
			} else {
				res.Error = fmt.Sprintf("handler returned %d", res.Status)
			}
		}
	})
	if err != nil {
		res.Status = 0
	}
	return res, err
}

// call runs one export of a pooled instance: prepare sets the stack and picks
// the function, done reads the outcome before the instance's call state is
// cleared. The whole invocation, wait included, has one deadline: ctx's, or
// Options.Timeout from now when ctx has none.
func (p *Plugin) call(ctx context.Context, msg *Message, ph phase, prepare func(*instance) api.Function, done func(*instance)) error {
	var in *instance
	var own *deadline.Context // the instance's own; released before the instance goes back
	if p.timeout > 0 && !deadline.Has(ctx) {
		// An idle instance means no wait, so the deadline can live in the
		// instance, reused call after call, instead of a new context. Not
		// when wazero watches the context: its goroutine may outlive the call.
		if idle, ok := p.pool.TryAcquire(); ok {
			in = idle
			if p.interruptible {
				own = &in.dl
				own.Reset(ctx, deadline.Now()+p.timeout)
				ctx = own
			}
		}
		if own == nil {
			dl := deadline.After(ctx, p.timeout)
			defer dl.Release()
			ctx = dl
		}
	}
	if in == nil {
		var err error
		if in, err = p.pool.Acquire(ctx); err != nil {
			kind := FaultBusy
			if errors.Is(err, pool.ErrClosed) {
				kind = FaultClosed
			} else if !errors.Is(err, pool.ErrBusy) {
				kind = FaultTrap // making a new instance failed
			}
			return &Fault{Plugin: p.name, Version: p.version, Subject: msg.Subject, Kind: kind, Err: err}
		}
	}
	in.phase = ph
	in.msg = msg
	fn := prepare(in)
	callErr := fn.CallWithStack(in.callCtx(ctx), in.stack[:])
	if callErr == nil {
		done(in)
	}
	in.endCall()
	if own != nil {
		own.Release()
	}
	if callErr != nil || in.mod.IsClosed() {
		p.ndiscarded.Add(1)
		p.pool.Discard(in)
		if callErr == nil {
			callErr = errors.New("instance closed itself")
		}
		return p.fault(callErr, msg.Subject, ph.String())
	}
	in.countMemory()
	p.pool.Release(in)
	return nil
}

func (ph phase) String() string {
	switch ph {
	case phaseInit:
		return "init"
	case phasePolicy:
		return "policy"
	case phaseResponse:
		return "policy response"
	}
	return "handle"
}

func (in *instance) endCall() {
	in.phase = phaseIdle
	in.msg = nil
	in.resHdr = in.resHdr[:0]
	in.resData = nil
	in.replied = false
	in.errText = in.errText[:0]
	in.target = ""
	in.resp = nil
	in.spent = spent{}
	// Keep reusable buffers from pinning a large message's memory.
	if cap(in.headers) > 64<<10 {
		in.headers = nil
	}
}

// FaultKind classifies a Fault.
type FaultKind uint8

// The kinds of fault.
const (
	FaultTrap     FaultKind = iota // the guest trapped, panicked or exited
	FaultTimeout                   // the call ran past its deadline
	FaultMemory                    // the guest passed an out-of-bounds pointer to a host function
	FaultBusy                      // no instance came free before the deadline
	FaultClosed                    // the plugin version was closed
	FaultCanceled                  // the caller gave up
)

// Code returns the status the host answers a request with for this kind of
// fault: 503 busy or closed, 504 deadline, 500 otherwise.
func (k FaultKind) Code() int {
	switch k {
	case FaultBusy, FaultClosed:
		return 503
	case FaultTimeout:
		return 504
	}
	return 500
}

// String names the kind as error replies say it.
func (k FaultKind) String() string {
	switch k {
	case FaultTimeout:
		return "deadline exceeded"
	case FaultMemory:
		return "out-of-bounds memory"
	case FaultBusy:
		return "busy"
	case FaultClosed:
		return "closed"
	case FaultCanceled:
		return "canceled"
	}
	return "trap"
}

// Fault is the error of a call that did not complete: the guest trapped,
// ran out of time, passed a wild pointer, or could not get an instance.
type Fault struct {
	Plugin  string
	Version string
	Subject string
	Kind    FaultKind
	Err     error
}

// Error names the plugin, its version and the fault.
func (f *Fault) Error() string {
	return fmt.Sprintf("plugin %q (version %s): %s: %s", f.Plugin, f.Version, f.Kind, f.Summary())
}

// Summary is the first line of the underlying error, without the Wasm stack
// trace: short enough for an error reply header.
func (f *Fault) Summary() string {
	s := f.Err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, " (recovered by wazero)")
}

// Unwrap returns the underlying error.
func (f *Fault) Unwrap() error { return f.Err }

// memoryFault is what a host function panics with when a guest pointer and
// length fall outside the guest's memory. wazero turns the panic into the
// error of the guest call.
type memoryFault struct {
	fn       string
	ptr, len uint32
	size     uint32
}

func (m *memoryFault) Error() string {
	return fmt.Sprintf("trellis.%s was passed memory [%d, %d+%d) outside the plugin's %d bytes",
		m.fn, m.ptr, m.ptr, m.len, m.size)
}

// fault classifies the error of a guest call.
func (p *Plugin) fault(err error, subject, what string) *Fault {
	f := &Fault{Plugin: p.name, Version: p.version, Subject: subject, Kind: FaultTrap, Err: err}
	var exit *sys.ExitError
	var mf *memoryFault
	var stop *interrupted
	switch {
	case errors.As(err, &mf):
		f.Kind = FaultMemory
		f.Err = mf
	case errors.As(err, &stop):
		f.Kind = FaultCanceled
		f.Err = stop.err
		if errors.Is(stop.err, context.DeadlineExceeded) {
			f.Kind = FaultTimeout
			f.Err = fmt.Errorf("stopped after the %s deadline", p.timeout)
		}
	case errors.As(err, &exit):
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			f.Kind = FaultTimeout
			f.Err = fmt.Errorf("stopped after the %s deadline", p.timeout)
		case sys.ExitCodeContextCanceled:
			f.Kind = FaultCanceled
		default:
			f.Err = fmt.Errorf("plugin exited with code %d during %s (a Go panic exits with 2; see its stderr)",
				exit.ExitCode(), what)
		}
	}
	return f
}

// initFault is fault for _initialize and trellis_init; left, if not
// negative, is the deadline init had.
func (p *Plugin) initFault(err error, left time.Duration) *Fault {
	f := p.fault(err, "", "init")
	if f.Kind == FaultTimeout && left >= 0 {
		f.Err = fmt.Errorf("stopped after the %s init deadline", left)
	}
	return f
}

// remaining returns the time left before ctx's deadline, or d if that is
// sooner or ctx has none.
func remaining(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); d <= 0 || left < d {
			return left
		}
	}
	return d
}

// interrupted is what the interrupt check panics with when the call's
// context has ended; wazero turns the panic into the call's error.
type interrupted struct{ err error }

func (i *interrupted) Error() string { return "interrupted: " + i.err.Error() }

// instantiateInterruptModule provides the check that package interrupt's
// instrumentation calls every interrupt.Interval loop iterations: it ends
// the call once its context has ended. The context is the one the call was
// made with, so a deadline costs no goroutine and no timer of its own.
func instantiateInterruptModule(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(interrupt.ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
			if err := ctx.Err(); err != nil {
				panic(&interrupted{err})
			}
			stack[0] = interrupt.Interval
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(interrupt.ImportName).Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("interrupt module: %w", err)
	}
	return nil
}
