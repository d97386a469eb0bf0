package plugin

import (
	"encoding/binary"
	"testing"

	"github.com/trellis-mesh/trellis/abi"
)

// custom returns a custom section named name with payload.
func custom(name string, payload []byte) []byte {
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(append(body, name...), payload...)
	return append(append([]byte{0}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
}

// producers returns a producers section payload with one field.
func producers(field string, values ...string) []byte {
	b := binary.AppendUvarint(nil, 1)
	b = append(binary.AppendUvarint(b, uint64(len(field))), field...)
	b = binary.AppendUvarint(b, uint64(len(values)))
	for _, v := range values {
		b = append(binary.AppendUvarint(b, uint64(len(v))), v...)
		b = append(binary.AppendUvarint(b, 3), "1.0"...)
	}
	return b
}

func TestLanguageReadsTheModulesOwnWord(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	mod := func(sections ...[]byte) []byte {
		out := append([]byte(nil), header...)
		for _, s := range sections {
			out = append(out, s...)
		}
		return out
	}
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"no custom section", mod(), "unknown"},
		{"not wasm", []byte("hello"), "unknown"},
		{"language section", mod(custom(abi.SectionLanguage, []byte("rust"))), "rust"},
		{"language section wins over producers", mod(custom("producers", producers("language", "C11")), custom(abi.SectionLanguage, []byte("wat"))), "wat"},
		{"producers C11", mod(custom("producers", producers("language", "C11"))), "c"},
		{"producers C++14", mod(custom("producers", producers("language", "C++14"))), "c++"},
		{"producers Rust", mod(custom("producers", producers("language", "Rust"))), "rust"},
		{"producers without language", mod(custom("producers", producers("processed-by", "clang"))), "unknown"},
		{"go build id", mod(custom("go:buildid", []byte("x"))), "go"},
		{"forged language with a newline", mod(custom(abi.SectionLanguage, []byte("go\nlevel=error"))), "unknown"},
		{"oversized language", mod(custom(abi.SectionLanguage, make([]byte, abi.MaxLanguage+1))), "unknown"},
		{"truncated producers", mod(custom("producers", []byte{5, 200})), "unknown"},
		{"producers count past the end", mod(custom("producers", []byte{0xff, 0xff, 0xff, 0x0f})), "unknown"},
	}
	for _, c := range cases {
		if got := Language(c.wasm); got != c.want {
			t.Errorf("%s: Language = %q, want %q", c.name, got, c.want)
		}
	}
}

func FuzzLanguage(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add(append([]byte("\x00asm\x01\x00\x00\x00"), custom("producers", producers("language", "C11"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		lang := Language(b)
		if lang == "" || len(lang) > abi.MaxLanguage {
			t.Fatalf("Language = %q", lang)
		}
	})
}
