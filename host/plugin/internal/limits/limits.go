// Package limits checks, before a decoder allocates anything for them, that
// the counts and sizes a WebAssembly module declares fit in the file and
// within the implementation limits that browsers enforce.
//
// wazero's decoder trusts a vector's declared length: it makes a slice of
// that many entries and only then finds that the bytes run out. A 14-byte
// file that declares 2^28 imports makes it ask for gigabytes, and a
// function that declares 2^32 locals ends the process with "out of memory",
// which no recover can catch. Check walks the module's structure first, and
// refuses any vector longer than the bytes left to hold it, and any count
// past the limits of the WebAssembly JavaScript API (the ones every browser
// engine applies; modules built by real toolchains stay far below them).
//
// Check reads every section but does not decode instructions: code bodies
// are skipped by their declared size after their locals, and only constant
// expressions are walked. Anything else it does not recognise is an error
// too, since the compiler would refuse it anyway.
package limits

import (
	"errors"
	"fmt"
)

// The limits of the WebAssembly JavaScript API, section "Limits"
// (https://webassembly.github.io/spec/js-api/#limits).
const (
	MaxModuleSize   = 1 << 30
	MaxTypes        = 1_000_000
	MaxFunctions    = 1_000_000
	MaxImports      = 100_000
	MaxExports      = 100_000
	MaxGlobals      = 1_000_000
	MaxTags         = 1_000_000
	MaxDataSegments = 100_000
	MaxTables       = 100_000
	MaxTableSize    = 10_000_000
	MaxElemSegments = 10_000_000
	MaxParams       = 1_000
	MaxResults      = 1_000
	MaxLocals       = 50_000
	MaxFunctionSize = 7_654_321
	MaxMemories     = 100
)

// ErrLimit is wrapped by every error Check returns.
var ErrLimit = errors.New("module is malformed or too large")

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

var sectionNames = [...]string{"custom", "type", "import", "function", "table", "memory", "global",
	"export", "start", "element", "code", "data", "data count", "tag"}

// Check returns nil if every count and size in wasm fits, or an error that
// wraps ErrLimit and names the section and what is wrong. wasm must start
// with the module header; Check does not otherwise validate the module.
func Check(wasm []byte) error {
	if len(wasm) > MaxModuleSize {
		return fmt.Errorf("%w: %d bytes is more than the %d a module may have", ErrLimit, len(wasm), MaxModuleSize)
	}
	if len(wasm) < 8 {
		return fmt.Errorf("%w: no module header", ErrLimit)
	}
	d := &decoder{b: wasm, i: 8}
	for d.err == nil && d.i < len(d.b) {
		start := d.i
		id := d.byte()
		if int(id) >= len(sectionNames) {
			return fmt.Errorf("%w: unknown section id %d at offset %d", ErrLimit, id, start)
		}
		size := d.uleb()
		if d.err == nil && size > uint64(len(d.b)-d.i) {
			return fmt.Errorf("%w: %s section at offset %d declares %d bytes, but the file ends %d bytes later: is it truncated?",
				ErrLimit, sectionNames[id], start, size, len(d.b)-d.i)
		}
		if d.err != nil {
			break
		}
		s := &decoder{b: d.b[d.i : d.i+int(size)]}
		d.i += int(size)
		s.section(id)
		if s.err != nil {
			return fmt.Errorf("%w: %s section: %v", ErrLimit, sectionNames[id], s.err)
		}
	}
	if d.err != nil {
		return fmt.Errorf("%w: %v", ErrLimit, d.err)
	}
	return nil
}

// decoder reads one section. The first error sticks; later reads return
// zero values.
type decoder struct {
	b   []byte
	i   int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.i >= len(d.b) {
		d.fail("unexpected end at offset %d", d.i)
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

// uleb reads an unsigned LEB128 number of up to 64 bits. Signed numbers
// have the same extent, so it skips those too.
func (d *decoder) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c := d.byte()
		if d.err != nil {
			return 0
		}
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v
		}
	}
	d.fail("LEB128 number too long at offset %d", d.i)
	return 0
}

// size reads a byte length and checks that that many bytes are left.
func (d *decoder) size(what string) int {
	n := d.uleb()
	if d.err == nil && n > uint64(len(d.b)-d.i) {
		d.fail("%s %d is more than the %d bytes left", what, n, len(d.b)-d.i)
		return 0
	}
	return int(n)
}

// count reads a vector's length and checks it against max and against the
// bytes left, each entry taking at least minSize bytes.
func (d *decoder) count(what string, max uint64, minSize int) int {
	n := d.uleb()
	switch {
	case d.err != nil:
		return 0
	case n > max:
		d.fail("%d %s, more than the limit of %d", n, what, max)
		return 0
	case n*uint64(minSize) > uint64(len(d.b)-d.i):
		d.fail("%d %s cannot fit in the %d bytes left", n, what, len(d.b)-d.i)
		return 0
	}
	return int(n)
}

func (d *decoder) skip(n int) {
	if d.err == nil {
		d.i += n
	}
}

func (d *decoder) name(what string) { d.skip(d.size(what + " length")) }

func (d *decoder) section(id byte) {
	switch id {
	case secCustom:
		d.custom()
	case secType:
		for n := d.count("types", MaxTypes, 3); n > 0 && d.err == nil; n-- {
			d.funcType()
		}
	case secImport:
		for n := d.count("imports", MaxImports, 4); n > 0 && d.err == nil; n-- {
			d.name("module name")
			d.name("import name")
			d.importDesc()
		}
	case secFunction:
		for n := d.count("functions", MaxFunctions, 1); n > 0 && d.err == nil; n-- {
			d.uleb()
		}
	case secTable:
		var total uint64
		for n := d.count("tables", MaxTables, 3); n > 0 && d.err == nil; n-- {
			total += d.tableType()
			if d.err == nil && total > MaxTableSize {
				d.fail("tables of %d elements or more in all, more than the limit of %d", total, MaxTableSize)
			}
		}
	case secMemory:
		for n := d.count("memories", MaxMemories, 2); n > 0 && d.err == nil; n-- {
			d.limits()
		}
	case secGlobal:
		for n := d.count("globals", MaxGlobals, 4); n > 0 && d.err == nil; n-- {
			d.valType()
			d.byte() // mutability
			d.constExpr()
		}
	case secExport:
		for n := d.count("exports", MaxExports, 3); n > 0 && d.err == nil; n-- {
			d.name("export name")
			d.byte()
			d.uleb()
		}
	case secStart, secDataCount:
		d.uleb()
	case secElement:
		for n := d.count("element segments", MaxElemSegments, 2); n > 0 && d.err == nil; n-- {
			d.elemSegment()
		}
	case secCode:
		for n := d.count("function bodies", MaxFunctions, 2); n > 0 && d.err == nil; n-- {
			d.body()
		}
	case secData:
		for n := d.count("data segments", MaxDataSegments, 2); n > 0 && d.err == nil; n-- {
			d.dataSegment()
		}
	case secTag:
		for n := d.count("tags", MaxTags, 2); n > 0 && d.err == nil; n-- {
			d.byte() // attribute
			d.uleb() // type index
		}
	}
	if d.err == nil && d.i != len(d.b) {
		d.fail("%d bytes after the last entry", len(d.b)-d.i)
	}
}

func (d *decoder) funcType() {
	if form := d.byte(); d.err == nil && form != 0x60 {
		d.fail("type form 0x%02x is not a function type", form)
		return
	}
	for n := d.count("parameters", MaxParams, 1); n > 0 && d.err == nil; n-- {
		d.valType()
	}
	for n := d.count("results", MaxResults, 1); n > 0 && d.err == nil; n-- {
		d.valType()
	}
}

func (d *decoder) valType() {
	switch t := d.byte(); {
	case d.err != nil:
	case t >= 0x7B && t <= 0x7F, t == 0x70, t == 0x6F: // i32 i64 f32 f64 v128, funcref, externref
	default:
		d.fail("unknown value type 0x%02x", t)
	}
}

func (d *decoder) refType() {
	if t := d.byte(); d.err == nil && t != 0x70 && t != 0x6F {
		d.fail("unknown reference type 0x%02x", t)
	}
}

func (d *decoder) limits() (min uint64) {
	flags := d.byte()
	if d.err == nil && flags > 0x07 {
		d.fail("unknown limits flags 0x%02x", flags)
		return 0
	}
	min = d.uleb()
	if flags&0x01 != 0 {
		d.uleb()
	}
	return min
}

// tableType checks a table type and returns its minimum size.
func (d *decoder) tableType() uint64 {
	d.refType()
	min := d.limits()
	if d.err == nil && min > MaxTableSize {
		d.fail("table of %d elements, more than the limit of %d", min, MaxTableSize)
	}
	return min
}

func (d *decoder) importDesc() {
	switch kind := d.byte(); {
	case d.err != nil:
	case kind == 0x00: // function
		d.uleb()
	case kind == 0x01:
		d.tableType()
	case kind == 0x02:
		d.limits()
	case kind == 0x03: // global
		d.valType()
		d.byte()
	case kind == 0x04: // tag
		d.byte()
		d.uleb()
	default:
		d.fail("unknown import kind 0x%02x", kind)
	}
}

// constExpr skips a constant expression up to and including its end.
func (d *decoder) constExpr() {
	for d.err == nil {
		switch op := d.byte(); {
		case d.err != nil:
		case op == 0x0B: // end
			return
		case op == 0x41 || op == 0x42 || op == 0x23 || op == 0xD0 || op == 0xD2:
			d.uleb() // i32/i64.const, global.get, ref.null, ref.func
		case op == 0x43:
			d.skipBytes(4)
		case op == 0x44:
			d.skipBytes(8)
		case op == 0xFD: // v128.const
			if sub := d.uleb(); d.err == nil && sub != 12 {
				d.fail("instruction 0xFD %d in a constant expression", sub)
			}
			d.skipBytes(16)
		case op == 0x6A || op == 0x6B || op == 0x6C || op == 0x7C || op == 0x7D || op == 0x7E:
			// extended constant expressions: add, sub, mul
		default:
			d.fail("instruction 0x%02x in a constant expression", op)
		}
	}
}

func (d *decoder) skipBytes(n int) {
	if d.err == nil && n > len(d.b)-d.i {
		d.fail("unexpected end at offset %d", d.i)
		return
	}
	d.skip(n)
}

func (d *decoder) elemSegment() {
	flags := d.uleb()
	if d.err == nil && flags > 7 {
		d.fail("unknown element segment flags %d", flags)
		return
	}
	if flags&0x02 != 0 && flags&0x01 == 0 { // explicit table index
		d.uleb()
	}
	if flags&0x01 == 0 { // active: offset
		d.constExpr()
	}
	exprs := flags&0x04 != 0
	if flags&0x03 != 0 { // element kind or reference type
		if exprs {
			d.refType()
		} else if kind := d.byte(); d.err == nil && kind != 0x00 {
			d.fail("unknown element kind 0x%02x", kind)
		}
	}
	if exprs {
		for n := d.count("element expressions", MaxTableSize, 2); n > 0 && d.err == nil; n-- {
			d.constExpr()
		}
		return
	}
	for n := d.count("element function indexes", MaxTableSize, 1); n > 0 && d.err == nil; n-- {
		d.uleb()
	}
}

func (d *decoder) dataSegment() {
	switch flags := d.uleb(); {
	case d.err != nil:
	case flags == 0:
		d.constExpr()
	case flags == 1:
	case flags == 2:
		d.uleb() // memory index
		d.constExpr()
	default:
		d.fail("unknown data segment flags %d", flags)
	}
	d.skip(d.size("data segment size"))
}

// body checks a function body's size and its locals, and skips its code.
func (d *decoder) body() {
	size := d.size("function body size")
	if d.err != nil {
		return
	}
	if size > MaxFunctionSize {
		d.fail("function body of %d bytes, more than the limit of %d", size, MaxFunctionSize)
		return
	}
	b := &decoder{b: d.b[d.i : d.i+size]}
	d.i += size
	var locals uint64
	for n := b.count("local declarations", MaxLocals, 2); n > 0 && b.err == nil; n-- {
		locals += b.uleb()
		b.valType()
		if b.err == nil && locals > MaxLocals {
			b.fail("%d locals or more, more than the limit of %d", locals, MaxLocals)
		}
	}
	if b.err != nil {
		d.err = b.err
	}
}

// custom checks the name section's subsections, which wazero decodes;
// other custom sections are opaque bytes.
func (d *decoder) custom() {
	n := d.size("custom section name length")
	if d.err != nil {
		return
	}
	isName := string(d.b[d.i:d.i+n]) == "name"
	d.skip(n)
	if !isName {
		d.i = len(d.b)
		return
	}
	for d.err == nil && d.i < len(d.b) {
		id := d.byte()
		size := d.size("name subsection size")
		if d.err != nil {
			return
		}
		s := &decoder{b: d.b[d.i : d.i+size]}
		d.i += size
		switch id {
		case 0: // module name
			s.name("module name")
		case 1: // function names
			s.nameMap("function names")
		case 2: // local names, per function
			for n := s.count("functions with local names", MaxFunctions, 2); n > 0 && s.err == nil; n-- {
				s.uleb()
				s.nameMap("local names")
			}
		default:
			s.i = len(s.b)
		}
		if s.err != nil {
			d.fail("name subsection %d: %v", id, s.err)
		}
	}
}

func (d *decoder) nameMap(what string) {
	for n := d.count(what, MaxFunctions, 2); n > 0 && d.err == nil; n-- {
		d.uleb()
		d.name("name")
	}
}

// TableGrowth is how many elements, in all, an instance's tables may grow
// by past what the module declares. wazero lets table.grow take a table to
// 2^27 elements of 8 bytes, a gigabyte outside the memory limit; CapTables
// holds it to about 8 MB.
const TableGrowth = 1 << 20

// CapTables returns wasm with a maximum size on every table it defines, so
// that table.grow fails (returns -1, as the specification allows) instead
// of growing a table without bound. A table's maximum becomes at most its
// minimum plus its share of TableGrowth; a declared maximum below that is
// kept. wasm must have passed Check. A module without tables is returned
// as it is.
func CapTables(wasm []byte) ([]byte, error) {
	d := &decoder{b: wasm, i: 8}
	for d.err == nil && d.i < len(d.b) {
		start := d.i
		id := d.byte()
		size := int(d.uleb())
		if d.err != nil || id != secTable {
			d.skip(size)
			continue
		}
		body := d.i
		table, err := capTables(d.b[body : body+size])
		if err != nil {
			return nil, fmt.Errorf("table section: %w", err)
		}
		out := make([]byte, 0, len(wasm)+len(table)-size)
		out = append(out, wasm[:start]...)
		out = append(out, secTable)
		out = appendULEB(out, uint64(len(table)))
		out = append(out, table...)
		return append(out, wasm[body+size:]...), nil
	}
	if d.err != nil {
		return nil, d.err
	}
	return wasm, nil
}

func capTables(payload []byte) ([]byte, error) {
	d := &decoder{b: payload}
	n := d.uleb()
	if n == 0 || d.err != nil {
		return payload, d.err
	}
	share := uint64(TableGrowth) / n
	out := appendULEB(nil, n)
	for ; n > 0 && d.err == nil; n-- {
		out = append(out, d.byte()) // reference type
		flags := d.byte()
		min := d.uleb()
		max, hasMax := uint64(0), flags&0x01 != 0
		if hasMax {
			max = d.uleb()
		}
		if flags&^0x01 != 0 {
			return nil, fmt.Errorf("table limits flags 0x%02x", flags)
		}
		if limit := min + share; !hasMax || max > limit {
			max = limit
		}
		out = append(out, 0x01)
		out = appendULEB(out, min)
		out = appendULEB(out, max)
	}
	if d.err == nil && d.i != len(d.b) {
		d.fail("%d bytes after the last table", len(d.b)-d.i)
	}
	return out, d.err
}

func appendULEB(out []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}
