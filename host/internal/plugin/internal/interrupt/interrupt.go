// Package interrupt rewrites a WebAssembly module so that the host can stop
// a call into it at a deadline, cheaply.
//
// wazero can stop a running guest when its context ends
// (RuntimeConfig.WithCloseOnContextDone), but it pays for that twice: it
// starts a goroutine per call to watch the context, and it compiles an exit
// from guest code into Go at the head of every loop iteration. Instrument
// does it another way. It adds to the module a mutable i32 global, the
// budget, and an imported function, ImportModule.ImportName of type
// [] -> [i32], and counts loop iterations down against the budget; every
// Interval iterations the guest calls the host, which checks the call's
// context. That call is also what keeps a guest in an endless loop from
// blocking the Go runtime: Go cannot preempt a goroutine running compiled
// Wasm, so a garbage collection that stops the world would wait for it for
// ever.
//
// The count lives in a local of each function that has a loop, not in the
// global itself: a compiler keeps a local in a register, where a global is a
// load and a store to memory on every iteration, and that store-to-load chain
// is most of what the check cost (2.3 times the loop as written on an AMD
// EPYC, 5 times on an Intel Xeon). Such a function gets one more local, $c,
// and:
//
//	at entry:                          global.get $budget  local.set $c
//	at the head of every loop:         local.get $c  i32.const 1  i32.sub  local.tee $c
//	                                   i32.const 0  i32.le_s
//	                                   if  call $check  local.set $c  end
//	before every call:                 local.get $c  global.set $budget
//	after every call that returns:     global.get $budget  local.set $c
//	before every way out (return, the
//	function's end, a branch to its
//	outermost label, a tail call,
//	a throw):                          local.get $c  global.set $budget
//
// So the budget is one count across the whole call stack, as if it lived in
// the global alone: a loop that calls a function with a loop of its own
// spends the budget of both, and no nesting of calls can run more than
// Interval iterations without a check. (An exception thrown by a callee and
// caught in a caller skips the caller's reload; the caller then goes on from
// its own count, so it checks later than it would have by what the callee
// spent, but it still checks.) Functions without a loop are left as they are. When the module
// uses tail calls, the other way to run for ever, every function gets the
// local and spends budget at its entry too.
//
// The new import is the module's last function import, so the functions the
// module defines move up by one index: calls, ref.func, exports, the start
// function, element segments and the name section are renumbered. DWARF
// sections are dropped, since their code offsets no longer hold.
package interrupt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/wasmbin"
)

// The import an instrumented module expects the host to provide, as a
// function of type [] -> [i32].
const (
	ImportModule = "trellis_interrupt"
	ImportName   = "check"
)

// Interval is the number of loop iterations between two calls of the check
// function; the check function returns it.
const Interval = 1024

// ErrUnsupported is wrapped by Instrument's error when the module uses an
// instruction or section form the rewriter does not know. The module itself
// may be valid: the caller should fall back to another way of stopping it.
var ErrUnsupported = errors.New("not instrumentable")

// rewriter holds what the rewrite of one module needs to know.
type rewriter struct {
	types       uint32   // types the module declares; the check's type comes next
	params      []uint32 // number of parameters of each type
	funcTypes   []uint32 // type of each function the module defines
	funcImports uint32   // imported functions before the new one: defined functions start here
	check       uint32   // function index of the check import
	budget      uint32   // global index of the budget
	atEntry     bool     // also spend budget at function entry (the module has tail calls)

	// The sequences inserted in the function being rewritten, which name
	// its local: see the package doc.
	load, store, refill, entry, spend, spendParams []byte

	local uint32 // index of the budget local in the function being rewritten

	// blocks holds, for each block open in the function being rewritten,
	// the number of loops wrapped at its level or outside it.
	blocks []uint32
}

// remap returns the new index of function f.
func (rw *rewriter) remap(f uint32) uint32 {
	if f < rw.funcImports {
		return f
	}
	return f + 1
}

// Opcodes of the inserted sequences.
const (
	opIf, opElse, opEnd, opBr, opBrIf, opCall          = 0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x10
	localGet, localSet, localTee, globalGet, globalSet = 0x20, 0x21, 0x22, 0x23, 0x24
	i32Const, i32GtS, i32LeS, i32Sub, blockEmpty       = 0x41, 0x4A, 0x4C, 0x6B, 0x40
)

// makeSequences makes the sequences inserted in a function whose budget
// local is local, reusing their memory from the function before.
func (rw *rewriter) makeSequences(local uint32) {
	var lb, gb, cb [5]byte
	l := wasmbin.AppendULEB(lb[:0], uint64(local))
	g := wasmbin.AppendULEB(gb[:0], uint64(rw.budget))
	c := wasmbin.AppendULEB(cb[:0], uint64(rw.check))

	rw.load = append(append(append(append(rw.load[:0], globalGet), g...), localSet), l...)
	rw.store = append(append(append(append(rw.store[:0], localGet), l...), globalSet), g...)

	// decrement: local.get $c  i32.const 1  i32.sub  local.tee $c  i32.const 0
	dec := func(b []byte) []byte {
		b = append(append(b, localGet), l...)
		b = append(append(b, i32Const, 1, i32Sub, localTee), l...)
		return append(b, i32Const, 0)
	}
	// call: if  call $check  local.set $c  end
	call := func(b []byte) []byte {
		b = append(append(b, opIf, blockEmpty, opCall), c...)
		return append(append(b, localSet), l...)
	}
	// The call is made only where the count has run out: at a function's
	// entry, or at the head of the loop wrapped around each loop of the
	// module, which that loop's head branches to when the count runs out.
	// The comparisons are signed, so that no count makes a loop run 2^32
	// iterations unchecked.
	rw.refill = append(append(rw.refill[:0], localGet), l...)
	rw.refill = append(call(append(rw.refill, i32Const, 0, i32LeS)), opEnd)
	rw.entry = append(call(append(dec(rw.entry[:0]), i32LeS)), opEnd)
	// An if whose then is the way on: the compiler lays it out as the
	// fall-through, so an iteration takes no more taken branches than as
	// written. A loop with parameters has them on the stack, where the if
	// cannot pass them to the branch; it takes br_if instead, which costs a
	// little more.
	rw.spend = append(dec(rw.spend[:0]), i32GtS, opIf, blockEmpty, opElse, opBr, 2, opEnd)
	rw.spendParams = append(dec(rw.spendParams[:0]), i32LeS, opBrIf, 1)
}

// Instrument returns a copy of wasm with a budget check at every loop head,
// and the check import added. wasm must be a well-formed module: Instrument
// checks only what it needs to rewrite it, and leaves validation to the
// compiler. An error wrapping ErrUnsupported means the module uses a form
// the rewriter does not handle. It is wasmbin.Parse and InstrumentModule
// for callers that have no parsed module.
func Instrument(wasm []byte) ([]byte, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return nil, err
	}
	return InstrumentModule(m)
}

// InstrumentModule is Instrument on a module whose sections are located
// already (and some perhaps replaced, as limits.CapModuleTables does). It
// reads the sections once and writes the instrumented module into one
// buffer; the sizes of the sections and function bodies it rewrites are
// padded to five bytes, which lets it write each in place.
func InstrumentModule(m *wasmbin.Module) ([]byte, error) {
	// What the rewrite needs: counts of types, imported functions and
	// globals, and whether tail calls appear.
	rw := &rewriter{}
	var importedGlobals, globals uint32
	hasCode := false
	for _, s := range m.Sections {
		var err error
		switch s.ID {
		case wasmbin.Type:
			rw.params, err = readTypes(s.Payload)
			rw.types = uint32(len(rw.params))
		case wasmbin.Import:
			rw.funcImports, importedGlobals, err = countImports(s.Payload, rw.types)
		case wasmbin.Function:
			rw.funcTypes, err = readFunctionTypes(s.Payload, rw.types)
		case wasmbin.Global:
			globals, err = count(s.Payload)
		case wasmbin.Code:
			hasCode = true
		}
		if err != nil {
			return nil, err
		}
	}
	if !hasCode {
		return nil, fmt.Errorf("%w: the module defines no functions", ErrUnsupported)
	}
	rw.check = rw.funcImports
	rw.budget = importedGlobals + globals

	// Loop heads grow the code by a few percent in real modules; an eighth
	// more is room enough that the buffer is not grown and copied.
	out := make([]byte, 0, len(m.Bytes)+len(m.Bytes)/8+64)
	out = append(out, m.Bytes[:wasmbin.HeaderSize]...)
	written := [wasmbin.Tag + 1]bool{}
	var err error
	for _, s := range m.Sections {
		if s.ID == wasmbin.Custom {
			if out, err = rw.custom(out, s.Payload); err != nil {
				return nil, err
			}
			continue
		}
		// The sections the module lacks and the rewrite adds go where the
		// format puts them.
		if out, err = rw.added(out, &written, s.ID.Rank()); err != nil {
			return nil, err
		}
		switch s.ID {
		case wasmbin.Type, wasmbin.Import, wasmbin.Global:
			out, err = rw.addTo(out, s.ID, s.Payload)
			written[s.ID] = true
		case wasmbin.Export:
			out, err = rw.section(out, s.ID, s.Payload, rw.rewriteExports)
		case wasmbin.Start:
			out, err = rw.section(out, s.ID, s.Payload, rw.rewriteStart)
		case wasmbin.Element:
			out, err = rw.section(out, s.ID, s.Payload, rw.rewriteElements)
		case wasmbin.Code:
			out, err = rw.rewriteCode(out, s.Payload)
		default:
			out = wasmbin.AppendSection(out, s.ID, s.Payload)
		}
		if err != nil {
			return nil, err
		}
	}
	return rw.added(out, &written, 0)
}

// added writes the sections the module lacks and the rewrite adds (type,
// import, global) that must come before a section of rank next (0: the
// end).
func (rw *rewriter) added(out []byte, written *[wasmbin.Tag + 1]bool, next int) ([]byte, error) {
	for _, id := range [...]wasmbin.SectionID{wasmbin.Type, wasmbin.Import, wasmbin.Global} {
		if !written[id] && (next == 0 || next > id.Rank()) {
			var err error
			if out, err = rw.addTo(out, id, nil); err != nil {
				return nil, err
			}
			written[id] = true
		}
	}
	return out, nil
}

// section writes a section whose payload write rewrites into out.
func (rw *rewriter) section(out []byte, id wasmbin.SectionID, payload []byte,
	write func(out, payload []byte) ([]byte, error)) ([]byte, error) {
	out = append(out, byte(id))
	out, size := wasmbin.BeginSize(out)
	out, err := write(out, payload)
	if err != nil {
		return nil, err
	}
	return out, wasmbin.EndSize(out, size)
}

// addTo writes the type, import or global section old (nil: the module
// has none) with the rewrite's entry appended.
func (rw *rewriter) addTo(out []byte, id wasmbin.SectionID, old []byte) ([]byte, error) {
	return rw.section(out, id, old, func(out, old []byte) ([]byte, error) {
		var n uint32
		var err error
		if old != nil {
			if n, err = count(old); err != nil {
				return nil, err
			}
		}
		out = wasmbin.AppendULEB(out, uint64(n)+1)
		switch id {
		case wasmbin.Type:
			out = append(out, rest(old)...)
			return append(out, 0x60, 0x00, 0x01, 0x7F), nil // [] -> [i32]
		case wasmbin.Import:
			out = append(out, rest(old)...)
			out = wasmbin.AppendName(out, ImportModule)
			out = wasmbin.AppendName(out, ImportName)
			out = append(out, 0x00)
			return wasmbin.AppendULEB(out, uint64(rw.types)), nil
		default:
			if old != nil {
				if out, err = rw.rewriteGlobals(out, old); err != nil {
					return nil, err
				}
			}
			out = append(out, 0x7F, 0x01, 0x41) // (mut i32) (i32.const Interval)
			out = wasmbin.AppendSLEB(out, Interval)
			return append(out, 0x0B), nil
		}
	})
}

// rest returns a vector's entries, after its length.
func rest(vec []byte) []byte {
	r := wasmbin.NewReader(vec)
	r.U32()
	if r.Err() != nil {
		return nil
	}
	return vec[r.Offset():]
}

// count reads the length of a section's vector.
func count(payload []byte) (uint32, error) {
	r := wasmbin.NewReader(payload)
	n := r.U32()
	return n, r.Err()
}

// readTypes reads the type section and returns the number of parameters
// of each type.
func readTypes(payload []byte) ([]uint32, error) {
	r := newReader(payload)
	n := r.Count("types", 1<<20, 3)
	params := make([]uint32, 0, n)
	for ; n > 0 && r.Err() == nil; n-- {
		if form := r.Byte(); form != 0x60 && r.Err() == nil {
			return nil, fmt.Errorf("%w: type form 0x%02x", ErrUnsupported, form)
		}
		np := r.U32()
		for i := np; i > 0 && r.Err() == nil; i-- {
			r.valtype()
		}
		for i := r.U32(); i > 0 && r.Err() == nil; i-- {
			r.valtype()
		}
		params = append(params, np)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("type section: %w", err)
	}
	return params, nil
}

// readFunctionTypes reads the function section, refusing a type the module
// does not declare (once instrumented, it would name the check's).
func readFunctionTypes(payload []byte, types uint32) ([]uint32, error) {
	r := newTypedReader(payload, types)
	n := r.Count("functions", 1<<24, 1)
	funcs := make([]uint32, 0, n)
	for ; n > 0 && r.Err() == nil; n-- {
		t := r.ULEB()
		r.typeIndex(t)
		funcs = append(funcs, uint32(t))
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("function section: %w", err)
	}
	return funcs, nil
}

func countImports(payload []byte, types uint32) (funcs, globals uint32, err error) {
	r := newTypedReader(payload, types)
	for n := r.U32(); n > 0 && r.Err() == nil; n-- {
		module := r.Name()
		r.Name()
		if string(module) == ImportModule {
			return 0, 0, fmt.Errorf("%w: the module already imports from %s", ErrUnsupported, ImportModule)
		}
		switch kind := r.Byte(); kind {
		case 0x00: // func
			r.typeIndex(r.ULEB())
			funcs++
		case 0x01: // table
			r.valtype()
			r.Limits()
		case 0x02: // memory
			r.Limits()
		case 0x03: // global
			r.valtype()
			r.Byte()
			globals++
		case 0x04: // tag
			r.Byte()
			r.U32()
		default:
			return 0, 0, fmt.Errorf("%w: import kind 0x%02x", ErrUnsupported, kind)
		}
	}
	if err := r.Finish(); err != nil {
		return 0, 0, fmt.Errorf("import section: %w", err)
	}
	return funcs, globals, nil
}

// rewriteCode writes the code section with every function body rewritten.
func (rw *rewriter) rewriteCode(out, payload []byte) ([]byte, error) {
	start := len(out)
	out, tail, err := rw.rewriteBodies(out, payload)
	if err == nil && tail && !rw.atEntry {
		// Tail calls can loop with no loop instruction: check at every
		// function entry too. Rare enough to pay a second pass for.
		rw.atEntry = true
		out, _, err = rw.rewriteBodies(out[:start], payload)
	}
	return out, err
}

// rewriteBodies writes a code section with every function body rewritten,
// and reports whether any holds a tail call.
func (rw *rewriter) rewriteBodies(out, payload []byte) (_ []byte, tail bool, err error) {
	r := wasmbin.NewReader(payload)
	n := r.U32()
	if r.Err() != nil {
		return nil, false, r.Err()
	}
	if n != uint32(len(rw.funcTypes)) {
		return nil, false, fmt.Errorf("code section: %d bodies for %d functions", n, len(rw.funcTypes))
	}
	out = append(out, byte(wasmbin.Code))
	out, size := wasmbin.BeginSize(out)
	out = wasmbin.AppendULEB(out, uint64(n))
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		body := r.Bytes(int(r.U32()))
		if r.Err() != nil {
			break
		}
		var t bool
		if out, t, err = rw.rewriteBody(out, body, i); err != nil {
			return nil, false, fmt.Errorf("function %d: %w", i, err)
		}
		tail = tail || t
	}
	if err := r.Finish(); err != nil {
		return nil, false, fmt.Errorf("code section: %w", err)
	}
	return out, tail, wasmbin.EndSize(out, size)
}

// rewriteBody writes the body of defined function i, with its size, and
// reports whether it holds a tail call. A function with a loop (or any
// function, with atEntry) gets the budget local and its sequences; the
// others are copied with their calls renumbered. Whether a function loops
// is known once it is read, so a function is written first as if it did,
// and written again without the local if it turns out not to.
func (rw *rewriter) rewriteBody(out, body []byte, i uint32) (_ []byte, tail bool, err error) {
	lr := newReader(body)
	decls := lr.U32()
	local := uint64(rw.params[rw.funcTypes[i]])
	for n := decls; n > 0 && lr.Err() == nil; n-- {
		local += uint64(lr.U32())
		lr.valtype()
	}
	if lr.Err() != nil {
		return nil, false, fmt.Errorf("locals: %w", lr.Err())
	}
	if local >= 1<<32-1 {
		return nil, false, fmt.Errorf("%w: %d locals", ErrUnsupported, local)
	}
	code := body[lr.Offset():]
	start := len(out)

	// With the budget local, appended to the declarations as one i32.
	rw.local = uint32(local)
	rw.makeSequences(rw.local)
	out, bodySize := wasmbin.BeginSize(out)
	out = wasmbin.AppendULEB(out, uint64(decls)+1)
	out = append(out, body[wasmbin.SkipLEB(body, 0):lr.Offset()]...)
	out = append(out, 0x01, 0x7F)
	out = append(out, rw.load...)
	if rw.atEntry {
		out = append(out, rw.entry...)
	}
	out, loops, tail, err := rw.walk(out, code, true)
	if err != nil {
		return nil, false, err
	}
	if !loops && !rw.atEntry {
		// As written, but for the renumbered calls.
		out, bodySize = wasmbin.BeginSize(out[:start])
		out = append(out, body[:lr.Offset()]...)
		if out, _, tail, err = rw.walk(out, code, false); err != nil {
			return nil, false, err
		}
	}
	return out, tail, wasmbin.EndSize(out, bodySize)
}

// constExpr copies the constant expression at r's position to out,
// renumbering ref.func, and moves r past it.
func (rw *rewriter) constExpr(out []byte, r *wasmbin.Reader) ([]byte, error) {
	rem := r.Bytes(r.Len())
	out, n, _, _, err := rw.walkCode(out, rem, constExpr)
	if err != nil {
		return nil, err
	}
	r.Seek(r.Offset() - len(rem) + n)
	return out, nil
}

// rewriteGlobals writes the entries of a global section, without its
// length.
func (rw *rewriter) rewriteGlobals(out, payload []byte) ([]byte, error) {
	r := newReader(payload)
	for n := r.U32(); n > 0 && r.Err() == nil; n-- {
		start := r.Offset()
		r.valtype()
		r.Byte()
		if r.Err() != nil {
			break
		}
		out = append(out, payload[start:r.Offset()]...)
		var err error
		if out, err = rw.constExpr(out, &r.Reader); err != nil {
			return nil, fmt.Errorf("global section: %w", err)
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("global section: %w", err)
	}
	return out, nil
}

func (rw *rewriter) rewriteExports(out, payload []byte) ([]byte, error) {
	r := wasmbin.NewReader(payload)
	n := r.U32()
	out = wasmbin.AppendULEB(out, uint64(n))
	for ; n > 0 && r.Err() == nil; n-- {
		start := r.Offset()
		r.Name()
		out = append(out, payload[start:r.Offset()]...)
		kind := r.Byte()
		idx := r.U32()
		switch {
		case kind == 0x00:
			idx = rw.remap(idx)
		case kind == 0x03 && idx >= rw.budget:
			return nil, fmt.Errorf("export section: global index %d out of range", idx)
		}
		out = append(out, kind)
		out = wasmbin.AppendULEB(out, uint64(idx))
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("export section: %w", err)
	}
	return out, nil
}

func (rw *rewriter) rewriteStart(out, payload []byte) ([]byte, error) {
	r := wasmbin.NewReader(payload)
	f := r.U32()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("start section: %w", err)
	}
	return wasmbin.AppendULEB(out, uint64(rw.remap(f))), nil
}

func (rw *rewriter) rewriteElements(out, payload []byte) ([]byte, error) {
	r := newReader(payload)
	n := r.U32()
	out = wasmbin.AppendULEB(out, uint64(n))
	var err error
	for i := uint32(0); i < n && r.Err() == nil && err == nil; i++ {
		flags := r.U32()
		out = wasmbin.AppendULEB(out, uint64(flags))
		if flags > 7 {
			return nil, fmt.Errorf("%w: element segment %d has flags %d", ErrUnsupported, i, flags)
		}
		if flags&0x02 != 0 && flags&0x01 == 0 { // 2, 6: explicit table index
			out = wasmbin.AppendULEB(out, uint64(r.U32()))
		}
		if flags&0x01 == 0 { // active: an offset expression
			if out, err = rw.constExpr(out, &r.Reader); err != nil {
				break
			}
		}
		if flags&0x03 != 0 { // 1, 2, 3, 5, 6, 7: an element kind or reference type
			if flags&0x04 != 0 {
				start := r.Offset()
				r.valtype()
				out = append(out, payload[start:r.Offset()]...)
			} else {
				out = append(out, r.Byte())
			}
		}
		count := r.U32()
		out = wasmbin.AppendULEB(out, uint64(count))
		for ; count > 0 && r.Err() == nil && err == nil; count-- {
			if flags&0x04 != 0 {
				out, err = rw.constExpr(out, &r.Reader)
			} else {
				out = wasmbin.AppendULEB(out, uint64(rw.remap(r.U32())))
			}
		}
	}
	if err == nil {
		err = r.Finish()
	}
	if err != nil {
		return nil, fmt.Errorf("element section: %w", err)
	}
	return out, nil
}

// custom writes a custom section: none for a DWARF one, whose code offsets
// the rewrite breaks; the name section with its functions renumbered; any
// other as it is, since it holds no function indexes.
func (rw *rewriter) custom(out, payload []byte) ([]byte, error) {
	r := wasmbin.NewReader(payload)
	name := r.Name()
	switch {
	case r.Err() == nil && strings.HasPrefix(string(name), ".debug_"):
		return out, nil
	case r.Err() != nil || string(name) != "name":
		return wasmbin.AppendSection(out, wasmbin.Custom, payload), nil
	}
	return rw.section(out, wasmbin.Custom, payload, func(out, payload []byte) ([]byte, error) {
		out = append(out, payload[:r.Offset()]...)
		for !r.Done() {
			id := r.Byte()
			sub := r.Bytes(int(r.U32()))
			if r.Err() != nil {
				break
			}
			switch id {
			case 3:
				// Label names: the inserted checks add labels, so these
				// would name the wrong blocks.
			case 1, 2: // function names; local names, keyed by function
				out = append(out, id)
				var size int
				out, size = wasmbin.BeginSize(out)
				var err error
				if out, err = rw.renameFunctions(out, sub, id); err != nil {
					// wazero refuses a module whose name section does not
					// parse; dropping it here would make such a module good.
					return nil, fmt.Errorf("name section: subsection %d: %w", id, err)
				}
				if err := wasmbin.EndSize(out, size); err != nil {
					return nil, err
				}
			default:
				out = append(out, id)
				out = wasmbin.AppendULEB(out, uint64(len(sub)))
				out = append(out, sub...)
			}
		}
		if r.Err() != nil {
			return nil, fmt.Errorf("name section: %w", r.Err())
		}
		return out, nil
	})
}

// renameFunctions writes a function names (id 1) or local names (id 2)
// subsection with its function indexes renumbered.
func (rw *rewriter) renameFunctions(out, sub []byte, id byte) ([]byte, error) {
	r := wasmbin.NewReader(sub)
	n := r.U32()
	out = wasmbin.AppendULEB(out, uint64(n))
	for ; n > 0 && r.Err() == nil; n-- {
		out = wasmbin.AppendULEB(out, uint64(rw.remap(r.U32())))
		start := r.Offset()
		if id == 1 {
			r.Name()
		} else {
			for m := r.U32(); m > 0 && r.Err() == nil; m-- {
				r.U32()
				r.Name()
			}
		}
		out = append(out, sub[start:r.Offset()]...)
	}
	return out, r.Finish()
}

// What walkCode is copying: a constant expression, a function body as
// written, or a function body with the budget local (see the package doc).
const (
	constExpr = iota
	plain
	counted
)

// walk copies a function body's instructions to out, renumbering function
// indexes, with the budget local's sequences if counted. It reports whether
// the code holds a loop and whether it holds a tail call.
func (rw *rewriter) walk(out, code []byte, count bool) (_ []byte, loops, tail bool, err error) {
	mode := plain
	if count {
		mode = counted
	}
	out, _, loops, tail, err = rw.walkCode(out, code, mode)
	return out, loops, tail, err
}

// walkCode copies the instructions of code to out, renumbering function
// indexes, and in counted mode puts the budget's sequences where the
// package doc says. For a constant expression it stops after the
// expression's end and returns how many bytes of code that was. It reports
// whether code holds a loop and whether it holds a tail call. The common
// instructions are decoded inline: a Go module has millions of them.
func (rw *rewriter) walkCode(out, code []byte, mode int) (_ []byte, used int, loops, tail bool, err error) {
	i, last := 0, 0
	count := mode == counted
	rw.blocks = rw.blocks[:0] // the blocks open inside the function's own
	wrapped := uint32(0)      // loops wrapped in the open blocks
	eh := false               // an exception-handling instruction, whose labels are not renumbered
	// label returns the label l at this point once the wrapping loops are
	// inserted: one more for each wrapped loop the branch leaves.
	label := func(l uint64) uint64 {
		depth := uint64(len(rw.blocks))
		switch {
		case l > depth:
			return l // invalid; the compiler refuses it
		case l == depth:
			return l + uint64(wrapped)
		}
		return l + uint64(wrapped-rw.blocks[depth-1-l])
	}
	// before puts the budget's store before the instruction at start.
	before := func(start int) {
		if count {
			out = append(out, code[last:start]...)
			out = append(out, rw.store...)
			last = start
		}
	}
	for i < len(code) {
		start := i
		op := code[i]
		i++
		switch {
		case op >= 0x45 && op <= 0xC4, op == 0x1A, op == 0x1B, op == 0x00, op == 0x01, op == 0x05:
			// no immediates
		case op == 0x0F: // return
			before(start)
		case op == 0x0B: // end
			if mode == constExpr {
				return append(out, code[last:i]...), i, loops, tail, nil
			}
			n := len(rw.blocks)
			if n == 0 { // the function's: it returns
				before(start)
				break
			}
			if count && (n == 1 && wrapped > 0 || n > 1 && rw.blocks[n-1] > rw.blocks[n-2]) {
				// A wrapped loop's end: the wrapping loop's too.
				out = append(out, code[last:i]...)
				out = append(out, opEnd)
				last = i
				wrapped--
			}
			rw.blocks = rw.blocks[:n-1]
		case op == 0x23 || op == 0x24: // global.get, global.set
			var g uint64
			if g, i = wasmbin.ReadULEB(code, i); i >= 0 && g >= uint64(rw.budget) {
				// Out of range as written; the budget's index once
				// instrumented. Let the compiler refuse the module as it is.
				return nil, 0, false, false, fmt.Errorf("offset %d: global index %d out of range", start, g)
			}
		case op >= 0x20 && op <= 0x22 && count: // local.get, local.set, local.tee
			var l uint64
			if l, i = wasmbin.ReadULEB(code, i); i >= 0 && l >= uint64(rw.local) {
				// Out of range as written; the budget's local once
				// instrumented.
				return nil, 0, false, false, fmt.Errorf("offset %d: local index %d out of range", start, l)
			}
		case op >= 0x20 && op <= 0x22, op == 0x41, op == 0x42:
			i = wasmbin.SkipLEB(code, i)
		case op == 0x0C || op == 0x0D: // br, br_if
			var l uint64
			if l, i = wasmbin.ReadULEB(code, i); i < 0 || !count {
				break
			}
			if l == uint64(len(rw.blocks)) { // out of the function
				before(start)
			}
			if nl := label(l); nl != l {
				out = append(out, code[last:start]...)
				out = wasmbin.AppendULEB(append(out, op), nl)
				last = i
			}
		case op == 0x0E && count: // br_table, with its labels renumbered
			r := newReader(code)
			r.Seek(i)
			n := r.Count("br_table labels", 1<<32-1, 1)
			labels := r.Offset()
			exit := false
			for k := n; k >= 0 && r.Err() == nil; k-- { // the n labels and the default
				exit = r.ULEB() == uint64(len(rw.blocks)) || exit
			}
			if r.Err() != nil {
				return nil, 0, false, false, fmt.Errorf("offset %d: %w", start, r.Err())
			}
			if exit {
				before(start)
			}
			out = append(out, code[last:start]...)
			out = wasmbin.AppendULEB(append(out, op), uint64(n))
			r.Seek(labels)
			for ; n >= 0; n-- {
				out = wasmbin.AppendULEB(out, label(r.ULEB()))
			}
			i, last = r.Offset(), r.Offset()
		case op >= 0x28 && op <= 0x3E: // loads and stores: align, offset
			var align uint64
			if align, i = wasmbin.ReadULEB(code, i); i >= 0 && align&0x40 != 0 { // multi-memory index
				i = wasmbin.SkipLEB(code, i)
			}
			if i >= 0 {
				i = wasmbin.SkipLEB(code, i)
			}
		case op == 0x10, op == 0x12, op == 0xD2: // call, return_call, ref.func
			f, next := wasmbin.ReadULEB(code, i)
			if next < 0 || f > 1<<32-1 {
				return nil, 0, false, false, fmt.Errorf("offset %d: %w", start, wasmbin.ErrUnexpectedEnd)
			}
			out = append(out, code[last:start]...)
			if op != 0xD2 && count {
				out = append(out, rw.store...)
			}
			out = append(out, op)
			out = wasmbin.AppendULEB(out, uint64(rw.remap(uint32(f))))
			if op == 0x10 && count {
				out = append(out, rw.load...)
			}
			i, last = next, next
			tail = tail || op == 0x12
		case op == 0x03: // loop
			r := newTypedReader(code, rw.types)
			r.Seek(i)
			params := r.loopParams(rw.params)
			if r.Err() != nil {
				return nil, 0, false, false, fmt.Errorf("offset %d: %w", start, r.Err())
			}
			i = r.Offset()
			loops = true
			if !count {
				rw.blocks = append(rw.blocks, wrapped)
				break
			}
			// loop bt (refill) loop bt (spend) ... end end: the outer
			// loop is where the count is refilled, out of the way of the
			// loop's own iterations.
			out = append(out, code[last:i]...)
			out = append(out, rw.refill...)
			out = append(out, code[start:i]...)
			if params > 0 {
				out = append(out, rw.spendParams...)
			} else {
				out = append(out, rw.spend...)
			}
			last = i
			wrapped++
			rw.blocks = append(rw.blocks, wrapped)
		default:
			r := newTypedReader(code, rw.types)
			r.Seek(i)
			exit, err := r.immediates(op, len(rw.blocks))
			if err == nil {
				err = r.Err()
			}
			if err != nil {
				return nil, 0, false, false, fmt.Errorf("offset %d: %w", start, err)
			}
			i = r.Offset()
			tail = tail || op == 0x13
			switch op {
			case 0x02, 0x04, 0x06, 0x1F: // block, if, try, try_table
				rw.blocks = append(rw.blocks, wrapped)
			case 0x18: // delegate ends a try
				if n := len(rw.blocks); n > 0 {
					rw.blocks = rw.blocks[:n-1]
				}
			case 0x11: // call_indirect
				if count {
					out = append(out, code[last:start]...)
					out = append(out, rw.store...)
					out = append(out, code[start:i]...)
					out = append(out, rw.load...)
					last = i
				}
			}
			switch op {
			case 0x06, 0x07, 0x08, 0x09, 0x0A, 0x18, 0x19, 0x1F:
				eh = true
			}
			if exit {
				before(start)
			}
		}
		if i < 0 {
			return nil, 0, false, false, fmt.Errorf("offset %d: %w", start, wasmbin.ErrUnexpectedEnd)
		}
	}
	if mode == constExpr {
		return nil, 0, false, false, wasmbin.ErrUnexpectedEnd
	}
	if count && eh && loops {
		// Their labels (delegate, rethrow, try_table's catches) would
		// need renumbering around the wrapped loops.
		return nil, 0, false, false, fmt.Errorf("%w: exception handling in a function with a loop", ErrUnsupported)
	}
	return append(out, code[last:]...), i, loops, tail, nil
}

// immediates skips the immediates of the instruction whose opcode was just
// read, depth blocks deep in a function's body, and reports whether the
// instruction may leave the function other than by a call that returns: a
// tail call, a throw, or a branch that names the function's own label.
func (r *reader) immediates(op byte, depth int) (exit bool, err error) {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block, loop, if, try
		r.blocktype()
	case op == 0x07 || op == 0x18: // catch, delegate
		r.U32()
	case op == 0x08 || op == 0x09: // throw, rethrow
		r.U32()
		exit = true
	case op == 0x0A: // throw_ref
		exit = true
	case op == 0x0C || op == 0x0D: // br, br_if
		exit = r.U32() == uint32(depth)
	case op == 0x0E: // br_table
		for n := r.U32(); n > 0 && r.Err() == nil; n-- {
			exit = r.U32() == uint32(depth) || exit
		}
		exit = r.U32() == uint32(depth) || exit
	case op == 0x10 || op == 0x12: // call, return_call
		r.U32()
		exit = op == 0x12
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.typeIndex(r.ULEB())
		r.U32()
		exit = op == 0x13
	case op == 0x1C: // select t*
		for n := r.U32(); n > 0 && r.Err() == nil; n-- {
			r.valtype()
		}
	case op == 0x1F: // try_table
		r.blocktype()
		for n := r.U32(); n > 0 && r.Err() == nil; n-- {
			switch kind := r.Byte(); kind {
			case 0x00, 0x01: // catch, catch_ref: tag, label
				r.U32()
				r.U32()
			case 0x02, 0x03: // catch_all, catch_all_ref: label
				r.U32()
			default:
				return false, fmt.Errorf("%w: catch kind 0x%02x", ErrUnsupported, kind)
			}
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		r.U32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x3F || op == 0x40: // memory.size, memory.grow
		r.U32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.ULEB() // a signed number has the same extent
	case op == 0x43: // f32.const
		r.Bytes(4)
	case op == 0x44: // f64.const
		r.Bytes(8)
	case op == 0xD0: // ref.null
		r.ULEB()
	case op == 0xD2: // ref.func
		r.U32()
	case op == 0xFC:
		return false, r.prefixedFC()
	case op == 0xFD:
		return false, r.prefixedSIMD()
	case op == 0xFE:
		return false, r.prefixedAtomic()
	case op <= 0x01, op == 0x05, op == 0x0B, op == 0x0F, op == 0x19, op == 0x1A, op == 0x1B,
		op >= 0x45 && op <= 0xC4, op == 0xD1:
		// no immediates
	default:
		return false, fmt.Errorf("%w: opcode 0x%02x", ErrUnsupported, op)
	}
	return exit, nil
}

func (r *reader) prefixedFC() error {
	switch sub := r.U32(); {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data mem
		r.U32()
		r.U32()
	case sub == 9 || sub == 11 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		r.U32() // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
	case sub == 10 || sub == 12 || sub == 14: // memory.copy, table.init, table.copy
		r.U32()
		r.U32()
	default:
		return fmt.Errorf("%w: opcode 0xFC %d", ErrUnsupported, sub)
	}
	return nil
}

func (r *reader) prefixedSIMD() error {
	switch sub := r.U32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads, store, load_zero
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.Bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.Byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		r.memarg()
		r.Byte()
	case sub <= 0x113:
		// every other SIMD instruction (relaxed SIMD included) has no immediates
	default:
		return fmt.Errorf("%w: opcode 0xFD %d", ErrUnsupported, sub)
	}
	return nil
}

func (r *reader) prefixedAtomic() error {
	switch sub := r.U32(); {
	case sub == 0x03: // atomic.fence
		r.Byte()
	case sub <= 0x02 || sub >= 0x10 && sub <= 0x4E:
		r.memarg()
	default:
		return fmt.Errorf("%w: opcode 0xFE %d", ErrUnsupported, sub)
	}
	return nil
}

// reader is wasmbin's Reader with what the rewrite checks as it reads.
type reader struct {
	wasmbin.Reader

	// types, when checkTypes is set, is the number of types the module
	// declares: a type index past it is an error, since it would name the
	// check's type once instrumented.
	types      uint32
	checkTypes bool
}

// newReader returns a reader of b that does not check type indexes.
func newReader(b []byte) *reader { return &reader{Reader: *wasmbin.NewReader(b)} }

// newTypedReader returns a reader of b that refuses a type index of types
// or more.
func newTypedReader(b []byte, types uint32) *reader {
	return &reader{Reader: *wasmbin.NewReader(b), types: types, checkTypes: true}
}

// typeIndex checks a type index read from code.
func (r *reader) typeIndex(t uint64) {
	if r.checkTypes && t >= uint64(r.types) {
		r.Fail("type index %d out of range", t)
	}
}

func (r *reader) valtype() {
	if t := r.Byte(); t == 0x63 || t == 0x64 { // (ref null ht), (ref ht)
		r.ULEB()
	}
}

// loopParams reads a loop's block type and returns its number of
// parameters; params holds each type's.
func (r *reader) loopParams(params []uint32) uint32 {
	if c, ok := r.Peek(); ok && (c == 0x40 || c >= 0x6F && c <= 0x7F) {
		r.valtype()
		return 0
	}
	t := r.ULEB() // a type index, as a signed 33-bit number
	r.typeIndex(t)
	if r.Err() != nil || t >= uint64(len(params)) {
		return 0
	}
	return params[t]
}

func (r *reader) blocktype() {
	if c, ok := r.Peek(); ok && (c == 0x40 || c >= 0x6F && c <= 0x7F) {
		r.valtype()
		return
	}
	r.typeIndex(r.ULEB()) // a type index, as a signed 33-bit number
}

func (r *reader) memarg() {
	if align := r.U32(); align&0x40 != 0 { // multi-memory: a memory index follows
		r.U32()
	}
	r.ULEB() // offset (64 bits for memory64)
}
