package wasmbin

import (
	"errors"
	"fmt"
)

// ErrUnexpectedEnd is wrapped by a Reader's error when a read runs past
// the end of its bytes.
var ErrUnexpectedEnd = errors.New("unexpected end")

// Reader decodes values of the binary format from a byte slice. The first
// error sticks: later reads return zero values and do not move, so a
// decoder can read a whole entry and check Err once. Offsets in its errors
// count from the start of the slice it was made with.
type Reader struct {
	b   []byte
	i   int
	err error
}

// NewReader returns a Reader at the start of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Fail records an error made from format and args, unless one is recorded
// already.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// SetErr records err, unless an error is recorded already.
func (r *Reader) SetErr(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Offset returns the offset of the next byte to read.
func (r *Reader) Offset() int { return r.i }

// Seek moves to offset i, which must be within the slice.
func (r *Reader) Seek(i int) {
	if r.err == nil {
		r.i = i
	}
}

// Len returns how many bytes are left to read.
func (r *Reader) Len() int { return len(r.b) - r.i }

// Done reports whether the bytes are all read or an error stopped the
// reader.
func (r *Reader) Done() bool { return r.err != nil || r.i >= len(r.b) }

// Finish returns the first error, or an error if bytes are left: a section
// or a vector that holds more than its entries is malformed, and a rewrite
// that dropped the excess would make it well-formed.
func (r *Reader) Finish() error {
	if r.err == nil && r.i != len(r.b) {
		r.err = fmt.Errorf("%d bytes after the last entry", len(r.b)-r.i)
	}
	return r.err
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.err = fmt.Errorf("%w at offset %d", ErrUnexpectedEnd, r.i)
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

// Peek returns the next byte without reading it, and false at the end.
func (r *Reader) Peek() (byte, bool) {
	if r.err != nil || r.i >= len(r.b) {
		return 0, false
	}
	return r.b[r.i], true
}

// Bytes reads n bytes and returns them, aliasing the reader's slice.
func (r *Reader) Bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.i {
		r.err = fmt.Errorf("%w at offset %d", ErrUnexpectedEnd, r.i)
		return nil
	}
	b := r.b[r.i : r.i+n]
	r.i += n
	return b
}

// Skip moves past n bytes, failing as Bytes does if fewer are left.
func (r *Reader) Skip(n int) { r.Bytes(n) }

// ULEB reads an unsigned LEB128 number of up to 64 bits. A signed number
// has the same extent, so it also skips one.
func (r *Reader) ULEB() uint64 {
	if r.err != nil {
		return 0
	}
	v, next := ReadULEB(r.b, r.i)
	if next < 0 {
		if len(r.b)-r.i < 10 {
			r.err = fmt.Errorf("%w at offset %d", ErrUnexpectedEnd, len(r.b))
		} else {
			r.err = fmt.Errorf("LEB128 number too long at offset %d", r.i+10)
		}
		return 0
	}
	r.i = next
	return v
}

// U32 reads an unsigned LEB128 number that must fit in 32 bits: a count,
// a size or an index.
func (r *Reader) U32() uint32 {
	start := r.i
	v := r.ULEB()
	if v > 1<<32-1 {
		r.Fail("u32 out of range at offset %d", start)
		return 0
	}
	return uint32(v)
}

// Size reads a byte length and checks that that many bytes are left; what
// names the length in the error.
func (r *Reader) Size(what string) int {
	n := r.ULEB()
	if r.err == nil && n > uint64(len(r.b)-r.i) {
		r.Fail("%s %d is more than the %d bytes left", what, n, len(r.b)-r.i)
		return 0
	}
	return int(n)
}

// Count reads a vector's length and checks it against max and against the
// bytes left, each entry taking at least minSize bytes; what names the
// entries in the error.
func (r *Reader) Count(what string, max uint64, minSize int) int {
	n := r.ULEB()
	switch {
	case r.err != nil:
		return 0
	case n > max:
		r.Fail("%d %s, more than the limit of %d", n, what, max)
		return 0
	case n*uint64(minSize) > uint64(len(r.b)-r.i):
		r.Fail("%d %s cannot fit in the %d bytes left", n, what, len(r.b)-r.i)
		return 0
	}
	return int(n)
}

// Name reads a name (a length, then as many bytes) and returns its bytes,
// aliasing the reader's slice.
func (r *Reader) Name() []byte { return r.Bytes(int(r.U32())) }

// Limits reads a limits entry (flags, minimum, and a maximum if flags say
// so) and returns its flags and minimum. It does not judge the flags.
func (r *Reader) Limits() (flags byte, min uint64) {
	flags = r.Byte()
	min = r.ULEB()
	if flags&0x01 != 0 {
		r.ULEB()
	}
	return flags, min
}
