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

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secData     = 11
	secDataCnt  = 12
	secTag      = 13
)

// order ranks the known section ids by where the binary format puts them.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCnt: 11, secCode: 12, secData: 13,
}

type section struct {
	id      byte
	payload []byte
}

// rewriter holds what the rewrite of one module needs to know.
type rewriter struct {
	types       uint32 // types the module declares; the check's type comes next
	funcImports uint32 // imported functions before the new one: defined functions start here
	check       uint32 // function index of the check import
	budget      uint32 // global index of the budget
	atEntry     bool   // also spend budget at function entry (the module has tail calls)
}

// remap returns the new index of function f.
func (rw *rewriter) remap(f uint32) uint32 {
	if f < rw.funcImports {
		return f
	}
	return f + 1
}

// prologue is the budget check inserted at each loop head.
func (rw *rewriter) prologue() []byte {
	b := []byte{0x23}
	b = appendU(b, uint64(rw.budget))
	b = append(b, 0x45, 0x04, 0x40, 0x10) // i32.eqz; if; call
	b = appendU(b, uint64(rw.check))
	b = append(b, 0x24) // global.set
	b = appendU(b, uint64(rw.budget))
	b = append(b, 0x0B, 0x23) // end; global.get
	b = appendU(b, uint64(rw.budget))
	b = append(b, 0x41, 0x01, 0x6B, 0x24) // i32.const 1; i32.sub; global.set
	return appendU(b, uint64(rw.budget))
}

// Instrument returns a copy of wasm with a budget check at every loop head,
// and the check import added. wasm must be a well-formed module: Instrument
// checks only what it needs to rewrite it, and leaves validation to the
// compiler. An error wrapping ErrUnsupported means the module uses a form
// the rewriter does not handle.
func Instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module")
	}
	var sections []section
	r := &reader{b: wasm, i: 8}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		payload := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, r.err)
		}
		if id == secCustom && isDWARF(payload) {
			continue
		}
		sections = append(sections, section{id, payload})
	}

	// What the rewrite needs: counts of types, imported functions and
	// globals, and whether tail calls appear.
	rw := &rewriter{}
	var importedGlobals, globals uint32
	hasCode := false
	for _, s := range sections {
		var err error
		switch s.id {
		case secType:
			rw.types, err = count(s.payload)
		case secImport:
			rw.funcImports, importedGlobals, err = countImports(s.payload, rw.types)
		case secFunction:
			err = checkFunctionTypes(s.payload, rw.types)
		case secGlobal:
			globals, err = count(s.payload)
		case secCode:
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

	checkType := appendU(nil, uint64(rw.types))
	added := map[byte]func(old []byte) ([]byte, error){
		secType: func(old []byte) ([]byte, error) {
			return appendEntry(old, []byte{0x60, 0x00, 0x01, 0x7F}) // [] -> [i32]
		},
		secImport: func(old []byte) ([]byte, error) {
			e := appendName(nil, ImportModule)
			e = appendName(e, ImportName)
			e = append(e, 0x00)
			return appendEntry(old, append(e, checkType...))
		},
		secGlobal: func(old []byte) ([]byte, error) {
			old, err := rw.rewriteGlobals(old)
			if err != nil {
				return nil, err
			}
			e := []byte{0x7F, 0x01, 0x41} // (mut i32) (i32.const Interval)
			e = appendS(e, Interval)
			return appendEntry(old, append(e, 0x0B))
		},
	}
	rewrite := map[byte]func(old []byte) ([]byte, error){
		secExport:  rw.rewriteExports,
		secStart:   rw.rewriteStart,
		secElement: rw.rewriteElements,
		secCode:    rw.rewriteCode,
	}

	out := append([]byte(nil), wasm[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU(out, uint64(len(payload)))
		out = append(out, payload...)
	}
	written := map[byte]bool{}
	// flush writes the sections the module lacks and Instrument adds, once
	// the next section must come after them (next 0: the end).
	flush := func(next byte) error {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !written[id] && (next == 0 || order[next] > order[id]) {
				p, err := added[id](nil)
				if err != nil {
					return err
				}
				emit(id, p)
				written[id] = true
			}
		}
		return nil
	}
	for _, s := range sections {
		if s.id != secCustom {
			if err := flush(s.id); err != nil {
				return nil, err
			}
		}
		p := s.payload
		var err error
		switch {
		case added[s.id] != nil:
			p, err = added[s.id](p)
			written[s.id] = true
		case rewrite[s.id] != nil:
			p, err = rewrite[s.id](p)
		case s.id == secCustom:
			p, err = rw.rewriteCustom(p)
		}
		if err != nil {
			return nil, err
		}
		if p != nil {
			emit(s.id, p)
		}
	}
	if err := flush(0); err != nil {
		return nil, err
	}
	return out, nil
}

func isDWARF(payload []byte) bool {
	r := &reader{b: payload}
	name := r.name()
	return r.err == nil && strings.HasPrefix(name, ".debug_")
}

// count reads the length of a section's vector.
func count(payload []byte) (uint32, error) {
	r := &reader{b: payload}
	n := r.u32()
	return n, r.err
}

// appendEntry appends entry to a section's vector (nil: an empty one).
func appendEntry(old, entry []byte) ([]byte, error) {
	var n uint32
	r := &reader{b: old}
	if old != nil {
		n = r.u32()
		if r.err != nil {
			return nil, r.err
		}
	}
	p := appendU(nil, uint64(n+1))
	p = append(p, old[r.i:]...)
	return append(p, entry...), nil
}

// checkFunctionTypes refuses a function section that names a type the
// module does not declare (once instrumented, it would name the check's).
func checkFunctionTypes(payload []byte, types uint32) error {
	r := &reader{b: payload, types: types, checkTypes: true}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.typeIndex(r.uleb())
	}
	if r.finish() != nil {
		return fmt.Errorf("function section: %w", r.err)
	}
	return nil
}

func countImports(payload []byte, types uint32) (funcs, globals uint32, err error) {
	r := &reader{b: payload, types: types, checkTypes: true}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		module := r.name()
		r.name()
		if module == ImportModule {
			return 0, 0, fmt.Errorf("%w: the module already imports from %s", ErrUnsupported, ImportModule)
		}
		switch kind := r.byte(); kind {
		case 0x00: // func
			r.typeIndex(r.uleb())
			funcs++
		case 0x01: // table
			r.valtype()
			r.limits()
		case 0x02: // memory
			r.limits()
		case 0x03: // global
			r.valtype()
			r.byte()
			globals++
		case 0x04: // tag
			r.byte()
			r.u32()
		default:
			return 0, 0, fmt.Errorf("%w: import kind 0x%02x", ErrUnsupported, kind)
		}
	}
	if r.finish() != nil {
		return 0, 0, fmt.Errorf("import section: %w", r.err)
	}
	return funcs, globals, nil
}

// eachBody calls fn with each function body of a code section, split into
// its local declarations and its instructions.
func eachBody(payload []byte, fn func(locals, code []byte) error) error {
	r := &reader{b: payload}
	for n, i := r.u32(), uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			break
		}
		lr := &reader{b: body}
		for n := lr.u32(); n > 0 && lr.err == nil; n-- {
			lr.u32()
			lr.valtype()
		}
		if lr.err != nil {
			return fmt.Errorf("function %d: locals: %w", i, lr.err)
		}
		if err := fn(body[:lr.i], body[lr.i:]); err != nil {
			return fmt.Errorf("function %d: %w", i, err)
		}
	}
	if r.finish() != nil {
		return fmt.Errorf("code section: %w", r.err)
	}
	return nil
}

func (rw *rewriter) rewriteCode(payload []byte) ([]byte, error) {
	out, tail, err := rw.rewriteBodies(payload)
	if err == nil && tail && !rw.atEntry {
		// Tail calls can loop with no loop instruction: check at every
		// function entry too. Rare enough to pay a second pass for.
		rw.atEntry = true
		out, _, err = rw.rewriteBodies(payload)
	}
	return out, err
}

// rewriteBodies rewrites every function body of a code section, and
// reports whether any holds a tail call.
func (rw *rewriter) rewriteBodies(payload []byte) (out []byte, tail bool, err error) {
	n, err := count(payload)
	if err != nil {
		return nil, false, err
	}
	out = make([]byte, 0, len(payload)+len(payload)/8)
	out = appendU(out, uint64(n))
	prologue := rw.prologue()
	var body []byte
	err = eachBody(payload, func(locals, code []byte) error {
		body = append(body[:0], locals...)
		if rw.atEntry {
			body = append(body, prologue...)
		}
		var t bool
		var err error
		body, _, t, err = rw.walk(body, code, false, prologue)
		if err != nil {
			return err
		}
		tail = tail || t
		out = appendU(out, uint64(len(body)))
		out = append(out, body...)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, tail, nil
}

// constExpr copies the constant expression at r's position to out,
// renumbering ref.func, and moves r past it.
func (rw *rewriter) constExpr(out []byte, r *reader) ([]byte, error) {
	out, n, _, err := rw.walk(out, r.b[r.i:], true, nil)
	if err != nil {
		return nil, err
	}
	r.i += n
	return out, nil
}

func (rw *rewriter) rewriteGlobals(payload []byte) ([]byte, error) {
	if payload == nil {
		return nil, nil
	}
	r := &reader{b: payload}
	n := r.u32()
	out := appendU(nil, uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		start := r.i
		r.valtype()
		r.byte()
		if r.err != nil {
			break
		}
		out = append(out, payload[start:r.i]...)
		var err error
		if out, err = rw.constExpr(out, r); err != nil {
			return nil, fmt.Errorf("global section: %w", err)
		}
	}
	if r.finish() != nil {
		return nil, fmt.Errorf("global section: %w", r.err)
	}
	return out, nil
}

func (rw *rewriter) rewriteExports(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n := r.u32()
	out := appendU(nil, uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		out = appendName(out, r.name())
		kind := r.byte()
		idx := r.u32()
		switch {
		case kind == 0x00:
			idx = rw.remap(idx)
		case kind == 0x03 && idx >= rw.budget:
			return nil, fmt.Errorf("export section: global index %d out of range", idx)
		}
		out = append(out, kind)
		out = appendU(out, uint64(idx))
	}
	if r.finish() != nil {
		return nil, fmt.Errorf("export section: %w", r.err)
	}
	return out, nil
}

func (rw *rewriter) rewriteStart(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	f := r.u32()
	if r.finish() != nil {
		return nil, fmt.Errorf("start section: %w", r.err)
	}
	return appendU(nil, uint64(rw.remap(f))), nil
}

func (rw *rewriter) rewriteElements(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n := r.u32()
	out := appendU(nil, uint64(n))
	var err error
	for i := uint32(0); i < n && r.err == nil && err == nil; i++ {
		flags := r.u32()
		out = appendU(out, uint64(flags))
		if flags > 7 {
			return nil, fmt.Errorf("%w: element segment %d has flags %d", ErrUnsupported, i, flags)
		}
		if flags&0x02 != 0 && flags&0x01 == 0 { // 2, 6: explicit table index
			out = appendU(out, uint64(r.u32()))
		}
		if flags&0x01 == 0 { // active: an offset expression
			if out, err = rw.constExpr(out, r); err != nil {
				break
			}
		}
		if flags&0x03 != 0 { // 1, 2, 3, 5, 6, 7: an element kind or reference type
			if flags&0x04 != 0 {
				start := r.i
				r.valtype()
				out = append(out, payload[start:r.i]...)
			} else {
				out = append(out, r.byte())
			}
		}
		count := r.u32()
		out = appendU(out, uint64(count))
		for ; count > 0 && r.err == nil && err == nil; count-- {
			if flags&0x04 != 0 {
				out, err = rw.constExpr(out, r)
			} else {
				out = appendU(out, uint64(rw.remap(r.u32())))
			}
		}
	}
	if err == nil {
		err = r.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("element section: %w", err)
	}
	return out, nil
}

// rewriteCustom renumbers the functions in the name section; other custom
// sections hold no function indexes and are kept as they are.
func (rw *rewriter) rewriteCustom(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	if r.name() != "name" || r.err != nil {
		return payload, nil
	}
	out := append([]byte(nil), payload[:r.i]...)
	for !r.done() {
		id := r.byte()
		sub := r.bytes(int(r.u32()))
		if r.err != nil {
			break
		}
		switch id {
		case 3:
			// Label names: the inserted checks add labels, so these would
			// name the wrong blocks.
			continue
		case 1, 2: // function names; local names, keyed by function
			sr := &reader{b: sub}
			n := sr.u32()
			p := appendU(nil, uint64(n))
			for ; n > 0 && sr.err == nil; n-- {
				p = appendU(p, uint64(rw.remap(sr.u32())))
				start := sr.i
				if id == 1 {
					sr.name()
				} else {
					for m := sr.u32(); m > 0 && sr.err == nil; m-- {
						sr.u32()
						sr.name()
					}
				}
				p = append(p, sub[start:sr.i]...)
			}
			if sr.finish() != nil {
				// wazero refuses a module whose name section does not
				// parse; dropping it here would make such a module good.
				return nil, fmt.Errorf("name section: subsection %d: %w", id, sr.err)
			}
			sub = p
		}
		out = append(out, id)
		out = appendU(out, uint64(len(sub)))
		out = append(out, sub...)
	}
	if r.err != nil {
		return nil, fmt.Errorf("name section: %w", r.err)
	}
	return out, nil
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
			if g, i = readLEB(code, i); i >= 0 && g >= uint64(rw.budget) {
				// Out of range as written; the budget's index once
				// instrumented. Let the compiler refuse the module as it is.
				return nil, 0, false, fmt.Errorf("offset %d: global index %d out of range", start, g)
			}
		case op >= 0x20 && op <= 0x22, op == 0x0C, op == 0x0D, op == 0x41, op == 0x42:
			i = skipLEB(code, i)
		case op >= 0x28 && op <= 0x3E: // loads and stores: align, offset
			var align uint64
			if align, i = readLEB(code, i); i >= 0 && align&0x40 != 0 { // multi-memory index
				i = skipLEB(code, i)
			}
			if i >= 0 {
				i = skipLEB(code, i)
			}
		case op == 0x10, op == 0x12, op == 0xD2: // call, return_call, ref.func
			f, next := readLEB(code, i)
			if next < 0 || f > 1<<32-1 {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, errShort)
			}
			out = append(out, code[last:start]...)
			out = append(out, op)
			out = appendU(out, uint64(rw.remap(uint32(f))))
			i, last = next, next
			tail = tail || op == 0x12
		case op == 0x03 && prologue != nil: // loop: spend budget first thing in each iteration
			r := &reader{b: code, i: i, types: rw.types, checkTypes: true}
			r.blocktype()
			if r.err != nil {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, r.err)
			}
			i = r.i
			out = append(out, code[last:i]...)
			out = append(out, prologue...)
			last = i
		default:
			r := &reader{b: code, i: i, types: rw.types, checkTypes: true}
			if err := r.immediates(op); err != nil {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, err)
			}
			if r.err != nil {
				return nil, 0, false, fmt.Errorf("offset %d: %w", start, r.err)
			}
			i = r.i
			tail = tail || op == 0x13
		}
		if i < 0 {
			return nil, 0, false, fmt.Errorf("offset %d: %w", start, errShort)
		}
	}
	if constant {
		return nil, 0, false, errShort
	}
	return append(out, code[last:]...), i, tail, nil
}

// skipLEB returns the index after the LEB128 number at code[i:], or -1.
func skipLEB(code []byte, i int) int {
	for n := 0; i < len(code) && n < 10; n++ {
		c := code[i]
		i++
		if c < 0x80 {
			return i
		}
	}
	return -1
}

// readLEB reads the unsigned LEB128 number at code[i:] and returns it and
// the index after it, or -1.
func readLEB(code []byte, i int) (uint64, int) {
	var v uint64
	for shift := 0; i < len(code) && shift < 70; shift += 7 {
		c := code[i]
		i++
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, -1
}

// immediates skips the immediates of the instruction whose opcode was just read.
func (r *reader) immediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block, loop, if, try
		r.blocktype()
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18: // catch, throw, rethrow, delegate
		r.u32()
	case op == 0x0C || op == 0x0D: // br, br_if
		r.u32()
	case op == 0x0E: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x10 || op == 0x12: // call, return_call
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.typeIndex(r.uleb())
		r.u32()
	case op == 0x1C: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.valtype()
		}
	case op == 0x1F: // try_table
		r.blocktype()
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			switch kind := r.byte(); kind {
			case 0x00, 0x01: // catch, catch_ref: tag, label
				r.u32()
				r.u32()
			case 0x02, 0x03: // catch_all, catch_all_ref: label
				r.u32()
			default:
				return fmt.Errorf("%w: catch kind 0x%02x", ErrUnsupported, kind)
			}
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x3F || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.uleb() // a signed number has the same extent
	case op == 0x43: // f32.const
		r.bytes(4)
	case op == 0x44: // f64.const
		r.bytes(8)
	case op == 0xD0: // ref.null
		r.uleb()
	case op == 0xD2: // ref.func
		r.u32()
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
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data mem
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		r.u32() // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
	case sub == 10 || sub == 12 || sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		return fmt.Errorf("%w: opcode 0xFC %d", ErrUnsupported, sub)
	}
	return nil
}

func (r *reader) prefixedSIMD() error {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads, store, load_zero
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		r.memarg()
		r.byte()
	case sub <= 0x113:
		// every other SIMD instruction (relaxed SIMD included) has no immediates
	default:
		return fmt.Errorf("%w: opcode 0xFD %d", ErrUnsupported, sub)
	}
	return nil
}

func (r *reader) prefixedAtomic() error {
	switch sub := r.u32(); {
	case sub == 0x03: // atomic.fence
		r.byte()
	case sub <= 0x02 || sub >= 0x10 && sub <= 0x4E:
		r.memarg()
	default:
		return fmt.Errorf("%w: opcode 0xFE %d", ErrUnsupported, sub)
	}
	return nil
}

// reader decodes the binary format. The first error sticks; later reads
// return zero values.
type reader struct {
	b   []byte
	i   int
	err error

	// types, when checkTypes is set, is the number of types the module
	// declares: a type index past it is an error, since it would name the
	// check's type once instrumented.
	types      uint32
	checkTypes bool
}

// typeIndex checks a type index read from code.
func (r *reader) typeIndex(t uint64) {
	if r.checkTypes && t >= uint64(r.types) && r.err == nil {
		r.err = fmt.Errorf("type index %d out of range", t)
	}
}

var errShort = errors.New("unexpected end of module")

// finish returns the first error, or an error if bytes are left over: a
// section that holds more than its entries is malformed, and a rewrite that
// dropped the excess would make it well-formed.
func (r *reader) finish() error {
	if r.err == nil && r.i != len(r.b) {
		r.err = fmt.Errorf("%d bytes after the last entry", len(r.b)-r.i)
	}
	return r.err
}

func (r *reader) done() bool { return r.err != nil || r.i >= len(r.b) }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.err = errShort
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.i {
		r.err = errShort
		return nil
	}
	b := r.b[r.i : r.i+n]
	r.i += n
	return b
}

// uleb reads a LEB128 number of up to 64 bits (for a signed one, only its
// extent matters here).
func (r *reader) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7F) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errors.New("LEB128 number too long")
	return 0
}

func (r *reader) u32() uint32 {
	v := r.uleb()
	if v > 1<<32-1 && r.err == nil {
		r.err = errors.New("u32 out of range")
	}
	return uint32(v)
}

func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

func (r *reader) valtype() {
	if t := r.byte(); t == 0x63 || t == 0x64 { // (ref null ht), (ref ht)
		r.uleb()
	}
}

func (r *reader) blocktype() {
	if r.i < len(r.b) && (r.b[r.i] == 0x40 || r.b[r.i] >= 0x6F && r.b[r.i] <= 0x7F) {
		r.valtype()
		return
	}
	r.typeIndex(r.uleb()) // a type index, as a signed 33-bit number
}

func (r *reader) memarg() {
	if align := r.u32(); align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.uleb() // offset (64 bits for memory64)
}

func (r *reader) limits() {
	flags := r.byte()
	r.uleb()
	if flags&0x01 != 0 {
		r.uleb()
	}
}

func appendU(out []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

// appendS appends v as a signed LEB128 number.
func appendS(out []byte, v int64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func appendName(out []byte, s string) []byte {
	out = appendU(out, uint64(len(s)))
	return append(out, s...)
}
