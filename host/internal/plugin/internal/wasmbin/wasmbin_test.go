package wasmbin_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/wasmbin"
)

func TestLEBRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7F, 0x80, 624485, math.MaxUint32, math.MaxUint64} {
		b := wasmbin.AppendULEB(nil, v)
		got, next := wasmbin.ReadULEB(b, 0)
		if got != v || next != len(b) || wasmbin.SkipLEB(b, 0) != len(b) {
			t.Errorf("%d: encoded % x, read %d, next %d", v, b, got, next)
		}
	}
	for v, want := range map[int64]string{0: "00", -1: "7f", 63: "3f", 64: "c000", -64: "40", -65: "bf7f", 1024: "8008"} {
		if got := string(hex(wasmbin.AppendSLEB(nil, v))); got != want {
			t.Errorf("AppendSLEB(%d) = %s, want %s", v, got, want)
		}
	}
	var p [wasmbin.PaddedU32Size]byte
	for _, v := range []uint32{0, 5, 1 << 20, math.MaxUint32} {
		wasmbin.PutPaddedU32(p[:], v)
		if got, next := wasmbin.ReadULEB(p[:], 0); got != uint64(v) || next != len(p) {
			t.Errorf("PutPaddedU32(%d) = % x, reads %d", v, p, got)
		}
	}
}

func hex(b []byte) []byte {
	const digits = "0123456789abcdef"
	var out []byte
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0xF])
	}
	return out
}

func TestReaderErrorsNameOffsets(t *testing.T) {
	for _, c := range []struct {
		name, says string
		b          []byte
		read       func(r *wasmbin.Reader)
	}{
		{"byte", "unexpected end at offset 0", nil, func(r *wasmbin.Reader) { r.Byte() }},
		{"leb end", "unexpected end at offset 2", []byte{0x80, 0x80}, func(r *wasmbin.Reader) { r.ULEB() }},
		{"leb long", "LEB128 number too long at offset 10", []byte(strings.Repeat("\x80", 11)), func(r *wasmbin.Reader) { r.ULEB() }},
		{"u32", "u32 out of range at offset 0", wasmbin.AppendULEB(nil, 1<<32), func(r *wasmbin.Reader) { r.U32() }},
		{"count", "3 things cannot fit in the 2 bytes left", []byte{3, 0, 0}, func(r *wasmbin.Reader) { r.Count("things", 10, 1) }},
		{"limit", "11 things, more than the limit of 10", []byte{11}, func(r *wasmbin.Reader) { r.Count("things", 10, 0) }},
		{"size", "name length 5 is more than the 1 bytes left", []byte{5, 0}, func(r *wasmbin.Reader) { r.Size("name length") }},
		{"trailing", "1 bytes after the last entry", []byte{0, 0}, func(r *wasmbin.Reader) { r.Byte(); r.Finish() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := wasmbin.NewReader(c.b)
			c.read(r)
			if r.Err() == nil || !strings.Contains(r.Err().Error(), c.says) {
				t.Fatalf("error %v, want one saying %q", r.Err(), c.says)
			}
		})
	}
}

func TestParse(t *testing.T) {
	h := wasmbin.Header
	for _, c := range []struct {
		name, in, says string
		header         bool
	}{
		{"empty", "", "file is empty", true},
		{"text", "hello, world", "no \\0asm header", true},
		{"component", "\x00asm\x0d\x00\x01\x00", "component", true},
		{"unknown id", h + "\x0e\x00", "unknown section id 14 at offset 8", false},
		{"truncated", h + "\x01\x00" + "\x01\x05\x00", "type section at offset 10 declares 5 bytes, but the file ends 1 bytes later", false},
		{"size cut", h + "\x01\x80", "unexpected end at offset 10", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := wasmbin.Parse([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.says) || errors.Is(err, wasmbin.ErrHeader) != c.header {
				t.Fatalf("Parse = %v, want an error saying %q (header: %v)", err, c.says, c.header)
			}
		})
	}

	in := []byte(h + "\x01\x04\x01\x60\x00\x00" + "\x00\x03\x01x\x00" + "\x04\x04\x01\x70\x00\x01")
	m, err := wasmbin.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Sections) != 3 || m.Sections[2].ID != wasmbin.Table || m.Sections[2].Offset != 19 {
		t.Fatalf("sections %+v", m.Sections)
	}
	if out := m.Encode(); &out[0] != &in[0] {
		t.Fatal("Encode copied a module with no section replaced")
	}
	m.Replace(m.Find(wasmbin.Table), []byte{0})
	if got, want := string(m.Encode()), string(in[:19])+"\x04\x01\x00"; got != want {
		t.Fatalf("Encode = % x, want % x", got, want)
	}
}

func TestSectionOrder(t *testing.T) {
	order := []wasmbin.SectionID{wasmbin.Type, wasmbin.Import, wasmbin.Function, wasmbin.Table, wasmbin.Memory,
		wasmbin.Tag, wasmbin.Global, wasmbin.Export, wasmbin.Start, wasmbin.Element, wasmbin.DataCount,
		wasmbin.Code, wasmbin.Data}
	for i, id := range order {
		if id.Rank() != i+1 {
			t.Errorf("%s has rank %d, want %d", id, id.Rank(), i+1)
		}
	}
	if wasmbin.Custom.Rank() != 0 || wasmbin.SectionID(14).Known() || wasmbin.DataCount.String() != "data count" {
		t.Error("custom, unknown or names wrong")
	}
}

// FuzzParse holds Parse to its promise: it never panics, and the sections
// it finds are what Encode writes back.
func FuzzParse(f *testing.F) {
	f.Add([]byte(wasmbin.Header + "\x01\x04\x01\x60\x00\x00\x04\x04\x01\x70\x00\x01"))
	f.Add([]byte(wasmbin.Header + "\x00\x85\x80\x80\x80\x00\x01x\x00\x00\x00"))
	f.Add([]byte(wasmbin.Header + "\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wasmbin.Parse(b)
		if err != nil {
			return
		}
		for i, s := range m.Sections {
			m.Replace(i, s.Payload)
		}
		again, err := wasmbin.Parse(m.Encode())
		if err != nil {
			t.Fatalf("Encode wrote a module Parse refuses: %v", err)
		}
		if len(again.Sections) != len(m.Sections) {
			t.Fatalf("%d sections, then %d", len(m.Sections), len(again.Sections))
		}
		for i, s := range again.Sections {
			if s.ID != m.Sections[i].ID || string(s.Payload) != string(m.Sections[i].Payload) {
				t.Fatalf("section %d changed: %s % x, then %s % x", i, m.Sections[i].ID, m.Sections[i].Payload, s.ID, s.Payload)
			}
		}
	})
}
