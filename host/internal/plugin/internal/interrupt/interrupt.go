// Package interrupt rewrites a WebAssembly module so that the host can stop
// a call into it at a deadline, cheaply.
//
// wazero can stop a running guest when its context ends
// (RuntimeConfig.WithCloseOnContextDone), but it pays for that twice: it
// starts a goroutine per call to watch the context, and it compiles an exit
// from guest code into Go at the head of every loop iteration. Instrument
// does it another way. It adds to the module a mutable i32 global, the
// budget, and an imported function, ImportModule.ImportName of type
// [] -> [i32], and puts at the head of every loop (and at the entry of every
// function when the module uses tail calls, the other way to run for ever):
//
//	global.get $budget
//	i32.eqz
//	if
//	  call $check        ;; the host: trap if the call must stop, else return Interval
//	  global.set $budget
//	end
//	global.get $budget
//	i32.const 1
//	i32.sub
//	global.set $budget
//
// So a loop iteration costs a few instructions, and every Interval
// iterations the guest calls the host, which checks the call's context.
// That call is also what keeps a guest in an endless loop from blocking the
// Go runtime: Go cannot preempt a goroutine running compiled Wasm, so a
// garbage collection that stops the world would wait for it for ever.
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
	types       uint32 // types the module declares; the check's type comes next
	funcImports uint32 // imported functions before the new one: defined functions start here
	check       uint32 // function index of the check import
	budget      uint32 // global index of the budget
	atEntry     bool   // also spend budget at function entry (the module has tail calls)
	prologue    []byte // the budget check, made once the indexes are known
}

// remap returns the new index of function f.
func (rw *rewriter) remap(f uint32) uint32 {
	if f < rw.funcImports {
		return f
	}
	return f + 1
}

// makePrologue makes the budget check inserted at each loop head.
func (rw *rewriter) makePrologue() []byte {
	b := []byte{0x23}
	b = wasmbin.AppendULEB(b, uint64(rw.budget))
	b = append(b, 0x45, 0x04, 0x40, 0x10) // i32.eqz; if; call
	b = wasmbin.AppendULEB(b, uint64(rw.check))
	b = append(b, 0x24) // global.set
	b = wasmbin.AppendULEB(b, uint64(rw.budget))
	b = append(b, 0x0B, 0x23) // end; global.get
	b = wasmbin.AppendULEB(b, uint64(rw.budget))
	b = append(b, 0x41, 0x01, 0x6B, 0x24) // i32.const 1; i32.sub; global.set
	return wasmbin.AppendULEB(b, uint64(rw.budget))
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
			rw.types, err = count(s.Payload)
		case wasmbin.Import:
			rw.funcImports, importedGlobals, err = countImports(s.Payload, rw.types)
		case wasmbin.Function:
			err = checkFunctionTypes(s.Payload, rw.types)
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
	rw.prologue = rw.makePrologue()

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

// checkFunctionTypes refuses a function section that names a type the
// module does not declare (once instrumented, it would name the check's).
func checkFunctionTypes(payload []byte, types uint32) error {
	r := newTypedReader(payload, types)
	for n := r.U32(); n > 0 && r.Err() == nil; n-- {
		r.typeIndex(r.ULEB())
	}
	if err := r.Finish(); err != nil {
		return fmt.Errorf("function section: %w", err)
	}
	return nil
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
	out = append(out, byte(wasmbin.Code))
	out, size := wasmbin.BeginSize(out)
	out = wasmbin.AppendULEB(out, uint64(n))
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		body := r.Bytes(int(r.U32()))
		if r.Err() != nil {
			break
		}
		lr := newReader(body)
		for n := lr.U32(); n > 0 && lr.Err() == nil; n-- {
			lr.U32()
			lr.valtype()
		}
		if lr.Err() != nil {
			return nil, false, fmt.Errorf("function %d: locals: %w", i, lr.Err())
		}
		var bodySize int
		out, bodySize = wasmbin.BeginSize(out)
		out = append(out, body[:lr.Offset()]...)
		if rw.atEntry {
			out = append(out, rw.prologue...)
		}
		var t bool
		out, _, t, err = rw.walk(out, body[lr.Offset():], false, rw.prologue)
		if err != nil {
			return nil, false, fmt.Errorf("function %d: %w", i, err)
		}
		tail = tail || t
		if err := wasmbin.EndSize(out, bodySize); err != nil {
			return nil, false, fmt.Errorf("function %d: %w", i, err)
		}
	}
	if err := r.Finish(); err != nil {
		return nil, false, fmt.Errorf("code section: %w", err)
	}
	return out, tail, wasmbin.EndSize(out, size)
}

// constExpr copies the constant expression at r's position to out,
// renumbering ref.func, and moves r past it.
func (rw *rewriter) constExpr(out []byte, r *wasmbin.Reader) ([]byte, error) {
	rem := r.Bytes(r.Len())
	out, n, _, err := rw.walk(out, rem, true, nil)
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

// walk copies the instructions of code to out, renumbering function
// indexes, and puts prologue (if any) after each loop instruction. For a
// constant expression (constant set) it stops after the expression's end
// and returns how many bytes of code that was. It reports whether code holds
// a tail call. The common instructions are decoded inline: a Go module has
// millions of them.
func (rw *rewriter) walk(out, code []byte, constant bool, prologue []byte) (_ []byte, used int, tail bool, err error) {
	i, last := 0, 0
	for i < len(code) {
		start := i
		op := code[i]
		i++
		switch {
		case op >= 0x45 && op <= 0xC4, op == 0x1A, op == 0x1B, op == 0x0F, op == 0x00, op == 0x01, op == 0x05:
			// no immediates
		case op == 0x0B: // end
			if constant {
				return append(out, code[last:i]...), i, tail, nil
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			var g uint64
			if g, i = wasmbin.ReadULEB(code, i); i >= 0 && g >= uint64(rw.budget) {
				// Out of range as written; the budget's index once
				// instrumented. Let the compiler refuse the module as it is.
				return nil, 0, false, fmt.Errorf("offset %d: global index %d out of range", start, g)
			}
		case op >= 0x20 && op <= 0x22, op == 0x0C, op == 0x0D, op == 0x41, op == 0x42:
			i = wasmbin.SkipLEB(code, i)
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
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, wasmbin.ErrUnexpectedEnd)
			}
			out = append(out, code[last:start]...)
			out = append(out, op)
			out = wasmbin.AppendULEB(out, uint64(rw.remap(uint32(f))))
			i, last = next, next
			tail = tail || op == 0x12
		case op == 0x03 && prologue != nil: // loop: spend budget first thing in each iteration
			r := newTypedReader(code, rw.types)
			r.Seek(i)
			r.blocktype()
			if r.Err() != nil {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, r.Err())
			}
			i = r.Offset()
			out = append(out, code[last:i]...)
			out = append(out, prologue...)
			last = i
		default:
			r := newTypedReader(code, rw.types)
			r.Seek(i)
			if err := r.immediates(op); err != nil {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, err)
			}
			if r.Err() != nil {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, r.Err())
			}
			i = r.Offset()
			tail = tail || op == 0x13
		}
		if i < 0 {
			return nil, 0, false, fmt.Errorf("offset %d: %w", start, wasmbin.ErrUnexpectedEnd)
		}
	}
	if constant {
		return nil, 0, false, wasmbin.ErrUnexpectedEnd
	}
	return append(out, code[last:]...), i, tail, nil
}

// immediates skips the immediates of the instruction whose opcode was just read.
func (r *reader) immediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block, loop, if, try
		r.blocktype()
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18: // catch, throw, rethrow, delegate
		r.U32()
	case op == 0x0C || op == 0x0D: // br, br_if
		r.U32()
	case op == 0x0E: // br_table
		for n := r.U32(); n > 0 && r.Err() == nil; n-- {
			r.U32()
		}
		r.U32()
	case op == 0x10 || op == 0x12: // call, return_call
		r.U32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.typeIndex(r.ULEB())
		r.U32()
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
				return fmt.Errorf("%w: catch kind 0x%02x", ErrUnsupported, kind)
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
		return r.prefixedFC()
	case op == 0xFD:
		return r.prefixedSIMD()
	case op == 0xFE:
		return r.prefixedAtomic()
	case op <= 0x01, op == 0x05, op == 0x0A, op == 0x0B, op == 0x0F, op == 0x19, op == 0x1A, op == 0x1B,
		op >= 0x45 && op <= 0xC4, op == 0xD1:
		// no immediates
	default:
		return fmt.Errorf("%w: opcode 0x%02x", ErrUnsupported, op)
	}
	return nil
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
