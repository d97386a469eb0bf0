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
//
// Parse is Check that also returns the sections it located (package
// wasmbin reads the format's framing for both), so that what a load does
// next, CapModuleTables and the interrupt rewrite, does not locate them
// again.
package limits

import (
	"errors"
	"fmt"

	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/wasmbin"
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

// Check returns nil if every count and size in wasm fits, or an error that
// wraps ErrLimit and names the section and what is wrong (or, for a bad
// header, matches wasmbin.ErrHeader). Check does not otherwise validate
// the module. It is Parse for callers that need no section list.
func Check(wasm []byte) error {
	_, err := Parse(wasm)
	return err
}

// Parse checks wasm's header, locates its sections (once, for the checks
// here and for any rewrite after them) and checks every count and size in
// them, as Check does. A load calls it first: nothing else reads the
// module before it has passed.
func Parse(wasm []byte) (*wasmbin.Module, error) {
	if err := wasmbin.CheckHeader(wasm); err != nil {
		return nil, err
	}
	if len(wasm) > MaxModuleSize {
		return nil, fmt.Errorf("%w: %d bytes is more than the %d a module may have", ErrLimit, len(wasm), MaxModuleSize)
	}
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLimit, err)
	}
	for _, s := range m.Sections {
		d := decoder{*wasmbin.NewReader(s.Payload)}
		d.section(s.ID)
		if err := d.Err(); err != nil {
			return nil, fmt.Errorf("%w: %s section: %v", ErrLimit, s.ID, err)
		}
	}
	return m, nil
}

// decoder reads one section, or a part of one, on wasmbin's Reader: the
// first error sticks and later reads return zero values.
type decoder struct{ wasmbin.Reader }

func (d *decoder) name(what string) { d.Skip(d.Size(what)) }

func (d *decoder) section(id wasmbin.SectionID) {
	switch id {
	case wasmbin.Custom:
		d.custom()
	case wasmbin.Type:
		for n := d.Count("types", MaxTypes, 3); n > 0 && d.Err() == nil; n-- {
			d.funcType()
		}
	case wasmbin.Import:
		for n := d.Count("imports", MaxImports, 4); n > 0 && d.Err() == nil; n-- {
			d.name("module name length")
			d.name("import name length")
			d.importDesc()
		}
	case wasmbin.Function:
		for n := d.Count("functions", MaxFunctions, 1); n > 0 && d.Err() == nil; n-- {
			d.ULEB()
		}
	case wasmbin.Table:
		var total uint64
		for n := d.Count("tables", MaxTables, 3); n > 0 && d.Err() == nil; n-- {
			total += d.tableType()
			if d.Err() == nil && total > MaxTableSize {
				d.Fail("tables of %d elements or more in all, more than the limit of %d", total, MaxTableSize)
			}
		}
	case wasmbin.Memory:
		for n := d.Count("memories", MaxMemories, 2); n > 0 && d.Err() == nil; n-- {
			d.limits()
		}
	case wasmbin.Global:
		for n := d.Count("globals", MaxGlobals, 4); n > 0 && d.Err() == nil; n-- {
			d.valType()
			d.Byte() // mutability
			d.constExpr()
		}
	case wasmbin.Export:
		for n := d.Count("exports", MaxExports, 3); n > 0 && d.Err() == nil; n-- {
			d.name("export name length")
			d.Byte()
			d.ULEB()
		}
	case wasmbin.Start, wasmbin.DataCount:
		d.ULEB()
	case wasmbin.Element:
		for n := d.Count("element segments", MaxElemSegments, 2); n > 0 && d.Err() == nil; n-- {
			d.elemSegment()
		}
	case wasmbin.Code:
		for n := d.Count("function bodies", MaxFunctions, 2); n > 0 && d.Err() == nil; n-- {
			d.body()
		}
	case wasmbin.Data:
		for n := d.Count("data segments", MaxDataSegments, 2); n > 0 && d.Err() == nil; n-- {
			d.dataSegment()
		}
	case wasmbin.Tag:
		for n := d.Count("tags", MaxTags, 2); n > 0 && d.Err() == nil; n-- {
			d.Byte() // attribute
			d.ULEB() // type index
		}
	}
	d.Finish()
}

func (d *decoder) funcType() {
	if form := d.Byte(); d.Err() == nil && form != 0x60 {
		d.Fail("type form 0x%02x is not a function type", form)
		return
	}
	for n := d.Count("parameters", MaxParams, 1); n > 0 && d.Err() == nil; n-- {
		d.valType()
	}
	for n := d.Count("results", MaxResults, 1); n > 0 && d.Err() == nil; n-- {
		d.valType()
	}
}

func (d *decoder) valType() {
	switch t := d.Byte(); {
	case d.Err() != nil:
	case t >= 0x7B && t <= 0x7F, t == 0x70, t == 0x6F: // i32 i64 f32 f64 v128, funcref, externref
	default:
		d.Fail("unknown value type 0x%02x", t)
	}
}

func (d *decoder) refType() {
	if t := d.Byte(); d.Err() == nil && t != 0x70 && t != 0x6F {
		d.Fail("unknown reference type 0x%02x", t)
	}
}

func (d *decoder) limits() (min uint64) {
	flags := d.Byte()
	if d.Err() == nil && flags > 0x07 {
		d.Fail("unknown limits flags 0x%02x", flags)
		return 0
	}
	min = d.ULEB()
	if flags&0x01 != 0 {
		d.ULEB()
	}
	return min
}

// tableType checks a table type and returns its minimum size.
func (d *decoder) tableType() uint64 {
	d.refType()
	min := d.limits()
	if d.Err() == nil && min > MaxTableSize {
		d.Fail("table of %d elements, more than the limit of %d", min, MaxTableSize)
	}
	return min
}

func (d *decoder) importDesc() {
	switch kind := d.Byte(); {
	case d.Err() != nil:
	case kind == 0x00: // function
		d.ULEB()
	case kind == 0x01:
		d.tableType()
	case kind == 0x02:
		d.limits()
	case kind == 0x03: // global
		d.valType()
		d.Byte()
	case kind == 0x04: // tag
		d.Byte()
		d.ULEB()
	default:
		d.Fail("unknown import kind 0x%02x", kind)
	}
}

// constExpr skips a constant expression up to and including its end.
func (d *decoder) constExpr() {
	for d.Err() == nil {
		switch op := d.Byte(); {
		case d.Err() != nil:
		case op == 0x0B: // end
			return
		case op == 0x41 || op == 0x42 || op == 0x23 || op == 0xD0 || op == 0xD2:
			d.ULEB() // i32/i64.const, global.get, ref.null, ref.func
		case op == 0x43:
			d.Skip(4)
		case op == 0x44:
			d.Skip(8)
		case op == 0xFD: // v128.const
			if sub := d.ULEB(); d.Err() == nil && sub != 12 {
				d.Fail("instruction 0xFD %d in a constant expression", sub)
			}
			d.Skip(16)
		case op == 0x6A || op == 0x6B || op == 0x6C || op == 0x7C || op == 0x7D || op == 0x7E:
			// extended constant expressions: add, sub, mul
		default:
			d.Fail("instruction 0x%02x in a constant expression", op)
		}
	}
}

func (d *decoder) elemSegment() {
	flags := d.ULEB()
	if d.Err() == nil && flags > 7 {
		d.Fail("unknown element segment flags %d", flags)
		return
	}
	if flags&0x02 != 0 && flags&0x01 == 0 { // explicit table index
		d.ULEB()
	}
	if flags&0x01 == 0 { // active: offset
		d.constExpr()
	}
	exprs := flags&0x04 != 0
	if flags&0x03 != 0 { // element kind or reference type
		if exprs {
			d.refType()
		} else if kind := d.Byte(); d.Err() == nil && kind != 0x00 {
			d.Fail("unknown element kind 0x%02x", kind)
		}
	}
	if exprs {
		for n := d.Count("element expressions", MaxTableSize, 2); n > 0 && d.Err() == nil; n-- {
			d.constExpr()
		}
		return
	}
	for n := d.Count("element function indexes", MaxTableSize, 1); n > 0 && d.Err() == nil; n-- {
		d.ULEB()
	}
}

func (d *decoder) dataSegment() {
	switch flags := d.ULEB(); {
	case d.Err() != nil:
	case flags == 0:
		d.constExpr()
	case flags == 1:
	case flags == 2:
		d.ULEB() // memory index
		d.constExpr()
	default:
		d.Fail("unknown data segment flags %d", flags)
	}
	d.Skip(d.Size("data segment size"))
}

// body checks a function body's size and its locals, and skips its code.
func (d *decoder) body() {
	size := d.Size("function body size")
	if d.Err() != nil {
		return
	}
	if size > MaxFunctionSize {
		d.Fail("function body of %d bytes, more than the limit of %d", size, MaxFunctionSize)
		return
	}
	b := decoder{*wasmbin.NewReader(d.Bytes(size))}
	var locals uint64
	for n := b.Count("local declarations", MaxLocals, 2); n > 0 && b.Err() == nil; n-- {
		locals += b.ULEB()
		b.valType()
		if b.Err() == nil && locals > MaxLocals {
			b.Fail("%d locals or more, more than the limit of %d", locals, MaxLocals)
		}
	}
	if b.Err() != nil {
		d.SetErr(b.Err())
	}
}

// custom checks the name section's subsections, which wazero decodes;
// other custom sections are opaque bytes.
func (d *decoder) custom() {
	n := d.Size("custom section name length")
	if d.Err() != nil {
		return
	}
	if string(d.Bytes(n)) != "name" {
		d.Skip(d.Len())
		return
	}
	for !d.Done() {
		id := d.Byte()
		size := d.Size("name subsection size")
		if d.Err() != nil {
			return
		}
		s := decoder{*wasmbin.NewReader(d.Bytes(size))}
		switch id {
		case 0: // module name
			s.name("module name length")
		case 1: // function names
			s.nameMap("function names")
		case 2: // local names, per function
			for n := s.Count("functions with local names", MaxFunctions, 2); n > 0 && s.Err() == nil; n-- {
				s.ULEB()
				s.nameMap("local names")
			}
		default:
			s.Skip(s.Len())
		}
		if s.Err() != nil {
			d.Fail("name subsection %d: %v", id, s.Err())
		}
	}
}

func (d *decoder) nameMap(what string) {
	for n := d.Count(what, MaxFunctions, 2); n > 0 && d.Err() == nil; n-- {
		d.ULEB()
		d.name("name length")
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
// kept. A module without tables is returned as it is. wasm must have
// passed Check: CapTables locates its sections but checks nothing else.
// It is CapModuleTables for callers that have not parsed the module.
func CapTables(wasm []byte) ([]byte, error) {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return nil, err
	}
	if err := CapModuleTables(m); err != nil {
		return nil, err
	}
	return m.Encode(), nil
}

// CapModuleTables replaces m's table section, if it has one, with one that
// caps every table as CapTables does. m must have come from Parse. The new
// section is small; the module is not copied.
func CapModuleTables(m *wasmbin.Module) error {
	i := m.Find(wasmbin.Table)
	if i < 0 {
		return nil
	}
	table, err := capTables(m.Sections[i].Payload)
	if err != nil {
		return fmt.Errorf("table section: %w", err)
	}
	m.Replace(i, table)
	return nil
}

func capTables(payload []byte) ([]byte, error) {
	d := decoder{*wasmbin.NewReader(payload)}
	n := d.ULEB()
	if n == 0 || d.Err() != nil {
		return payload, d.Err()
	}
	share := uint64(TableGrowth) / n
	out := wasmbin.AppendULEB(nil, n)
	for ; n > 0 && d.Err() == nil; n-- {
		out = append(out, d.Byte()) // reference type
		flags := d.Byte()
		min := d.ULEB()
		max, hasMax := uint64(0), flags&0x01 != 0
		if hasMax {
			max = d.ULEB()
		}
		if flags&^0x01 != 0 {
			return nil, fmt.Errorf("table limits flags 0x%02x", flags)
		}
		if limit := min + share; !hasMax || max > limit {
			max = limit
		}
		out = append(out, 0x01)
		out = wasmbin.AppendULEB(out, min)
		out = wasmbin.AppendULEB(out, max)
	}
	if d.Err() == nil && d.Len() != 0 {
		d.Fail("%d bytes after the last table", d.Len())
	}
	return out, d.Err()
}
