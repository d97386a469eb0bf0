// Package wasmbin owns the framing of the WebAssembly binary format as the
// host's module checks and rewrites read and write it: the module header,
// section ids and the order the format puts them in, the section list,
// LEB128 numbers, vectors and names. It decodes no instruction and judges
// no count; packages limits (what a module may declare) and interrupt (the
// deadline rewrite) build on it, so that a load checks the header once,
// locates the sections once, and writes its rewritten module into one
// buffer.
//
// Every read is bounded by the bytes it is given: a Reader never reads past
// its slice and never panics, whatever the input.
//
// As an internal package of host/internal/plugin it serves the loader's packages
// only; host/sign, which walks section headers to find its signature,
// cannot import it from here and keeps its own walk.
package wasmbin

import (
	"errors"
	"fmt"
)

// HeaderSize is the size of the module header: the magic "\0asm" and the
// binary format version, 1 as a little-endian uint32.
const HeaderSize = 8

// Header is the header of every core module of binary format version 1.
const Header = "\x00asm\x01\x00\x00\x00"

// ErrHeader is matched (errors.Is) by CheckHeader's and Parse's error when
// the bytes are not a core WebAssembly module of version 1.
var ErrHeader = errors.New("not a core WebAssembly module")

// headerError says what is wrong with a header, and is ErrHeader.
type headerError string

func (e headerError) Error() string        { return string(e) }
func (e headerError) Is(target error) bool { return target == ErrHeader }

// CheckHeader returns nil if b starts with the header of a core module of
// binary format version 1, or an error matching ErrHeader that says what b
// is instead (empty, not Wasm, or another version, such as a component).
func CheckHeader(b []byte) error {
	switch {
	case len(b) == 0:
		return headerError("file is empty")
	case len(b) < HeaderSize || string(b[:4]) != Header[:4]:
		return headerError("not a WebAssembly module (no \\0asm header)")
	case string(b[4:HeaderSize]) != Header[4:]:
		return headerError(fmt.Sprintf("unsupported WebAssembly binary version %d (a component? only core modules are supported)", b[4]))
	}
	return nil
}

// SectionID is a section's id, its first byte.
type SectionID byte

// The section ids of the binary format, with the exception-handling
// proposal's tag section.
const (
	Custom SectionID = iota
	Type
	Import
	Function
	Table
	Memory
	Global
	Export
	Start
	Element
	Code
	Data
	DataCount
	Tag
)

var sectionNames = [...]string{"custom", "type", "import", "function", "table", "memory", "global",
	"export", "start", "element", "code", "data", "data count", "tag"}

// Known reports whether id is a section id this package knows.
func (id SectionID) Known() bool { return int(id) < len(sectionNames) }

// String returns the section's name as error messages give it ("data
// count"), or "section N" for an unknown id.
func (id SectionID) String() string {
	if id.Known() {
		return sectionNames[id]
	}
	return fmt.Sprintf("section %d", byte(id))
}

// rank is where the binary format puts each known non-custom section: the
// tag section comes between memory and global, data count before code.
var rank = [...]int{Type: 1, Import: 2, Function: 3, Table: 4, Memory: 5, Tag: 6,
	Global: 7, Export: 8, Start: 9, Element: 10, DataCount: 11, Code: 12, Data: 13}

// Rank returns the position the binary format gives a non-custom section
// among the others, from 1; a section must come after every section of a
// lower rank. Custom and unknown sections have rank 0: they may come
// anywhere.
func (id SectionID) Rank() int {
	if int(id) < len(rank) {
		return rank[id]
	}
	return 0
}

// Section is one section of a module.
type Section struct {
	ID SectionID
	// Offset is where the section starts in the module, at its id byte.
	Offset int
	// Payload is the section's content, after its id and size. It aliases
	// the module's bytes until replaced with Module.Replace.
	Payload []byte
}

// Module is a module's header and section list, located once by Parse. A
// check reads the sections' payloads; a rewrite replaces some of them and
// encodes the result once.
type Module struct {
	// Bytes is the module as given to Parse. It is never changed.
	Bytes []byte
	// Sections are the module's sections in the order of the file.
	Sections []Section
	replaced bool
}

// Parse checks b's header and locates its sections, without reading their
// contents. The error, if any, matches ErrHeader for a bad header, or names
// the offset of the section that is unknown or does not fit in b. The
// Module aliases b: b must not change while it is in use.
func Parse(b []byte) (*Module, error) {
	if err := CheckHeader(b); err != nil {
		return nil, err
	}
	m := &Module{Bytes: b}
	r := NewReader(b)
	r.Skip(HeaderSize)
	for !r.Done() {
		start := r.Offset()
		id := SectionID(r.Byte())
		if !id.Known() {
			return nil, fmt.Errorf("unknown section id %d at offset %d", byte(id), start)
		}
		size := r.ULEB()
		if r.Err() != nil {
			return nil, r.Err()
		}
		if size > uint64(r.Len()) {
			return nil, fmt.Errorf("%s section at offset %d declares %d bytes, but the file ends %d bytes later: is it truncated?",
				id, start, size, r.Len())
		}
		payload := r.Bytes(int(size))
		m.Sections = append(m.Sections, Section{ID: id, Offset: start, Payload: payload})
	}
	return m, nil
}

// Find returns the index in m.Sections of the first section with id, or -1.
func (m *Module) Find(id SectionID) int {
	for i, s := range m.Sections {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// Replace makes payload the content of section i in what Encode and any
// rewrite write; m.Bytes keeps the original.
func (m *Module) Replace(i int, payload []byte) {
	m.Sections[i].Payload = payload
	m.replaced = true
}

// Encode returns the module with its replaced sections: m.Bytes itself,
// without a copy, when none was replaced.
func (m *Module) Encode() []byte {
	if !m.replaced {
		return m.Bytes
	}
	out := make([]byte, 0, len(m.Bytes)+16)
	out = append(out, m.Bytes[:HeaderSize]...)
	for _, s := range m.Sections {
		out = AppendSection(out, s.ID, s.Payload)
	}
	return out
}

// AppendSection appends a section with id and payload to out.
func AppendSection(out []byte, id SectionID, payload []byte) []byte {
	out = append(out, byte(id))
	out = AppendULEB(out, uint64(len(payload)))
	return append(out, payload...)
}

// AppendULEB appends v as an unsigned LEB128 number, in as few bytes as
// it takes.
func AppendULEB(out []byte, v uint64) []byte {
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

// AppendSLEB appends v as a signed LEB128 number, in as few bytes as it
// takes.
func AppendSLEB(out []byte, v int64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

// PaddedU32Size is the size of a u32 written by PutPaddedU32.
const PaddedU32Size = 5

// PutPaddedU32 writes v into b[:5] as an unsigned LEB128 number padded to
// five bytes, which the format allows for a u32. It lets a writer reserve
// room for a size before it knows it, and fill it in without moving what
// follows.
func PutPaddedU32(b []byte, v uint32) {
	_ = b[4]
	b[0] = byte(v) | 0x80
	b[1] = byte(v>>7) | 0x80
	b[2] = byte(v>>14) | 0x80
	b[3] = byte(v>>21) | 0x80
	b[4] = byte(v >> 28)
}

// AppendName appends s as the format writes a name: its length, then its
// bytes.
func AppendName(out []byte, s string) []byte {
	out = AppendULEB(out, uint64(len(s)))
	return append(out, s...)
}

// ReadULEB reads the unsigned LEB128 number of up to 64 bits at b[i:] and
// returns it and the offset after it, or -1 if it runs past b or past ten
// bytes. It is the fast form for instruction streams, where a Reader's
// sticky error would cost too much.
func ReadULEB(b []byte, i int) (uint64, int) {
	var v uint64
	for shift := 0; i < len(b) && shift < 70; shift += 7 {
		c := b[i]
		i++
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, -1
}

// SkipLEB returns the offset after the LEB128 number at b[i:], signed or
// not, or -1 if it runs past b or past ten bytes.
func SkipLEB(b []byte, i int) int {
	for n := 0; i < len(b) && n < 10; n++ {
		c := b[i]
		i++
		if c < 0x80 {
			return i
		}
	}
	return -1
}

// BeginSize appends room for a size not known yet (a section's, a function
// body's) and returns out and where the room is; EndSize fills it in. The
// bytes in between are written once, in place: no buffer per section.
func BeginSize(out []byte) ([]byte, int) {
	return append(out, 0, 0, 0, 0, 0), len(out)
}

// EndSize fills the room BeginSize made at pos with the number of bytes
// appended after it, padded to PaddedU32Size bytes. It fails if they are
// more than a u32 can count.
func EndSize(out []byte, pos int) error {
	n := len(out) - pos - PaddedU32Size
	if uint64(n) > 1<<32-1 {
		return fmt.Errorf("%d bytes are more than a u32 can count", n)
	}
	PutPaddedU32(out[pos:], uint32(n))
	return nil
}
