package config

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, returns a config or an *Error, and every
// problem in an *Error is a diagnostic with a range in the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte(mesh))
	f.Add([]byte("plugin \"a\" { path = \"x\" }"))
	f.Add([]byte("plugin \"a\" {\n  path = \"a.wasm\"\n  pool_size = \"8abc\"\n  memory_limit = \"17179869185GiB\"\n}\n"))
	f.Add([]byte("plugin \"a\" {\n  path = \"a.wasm\"\n  config = { k = null, n = 1e99 }\n  retries = 1e400\n}\n"))
	f.Add([]byte("http {\n  max_conns = -1\n  idle_timeout = 5\n}\nhttp_route \"GET /{x}\" {\n  subject = \"a.{x}\"\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse(src, "fuzz.hcl")
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		if c != nil {
			t.Fatal("config returned with an error")
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %T is not an *Error: %v", err, err)
		}
		if len(ce.Diags) == 0 || !ce.Diags.HasErrors() {
			t.Fatal("an *Error without an error diagnostic")
		}
		for _, d := range ce.Diags {
			if d.Subject == nil || d.Subject.Filename != "fuzz.hcl" || d.Subject.Start.Line < 1 {
				t.Fatalf("diagnostic without a range in the file: %+v", d)
			}
		}
	})
}

// FuzzParseSize: ParseSize accepts only a value it can hold exactly (the
// number times its unit, checked with big integers), and reads back what
// FormatSize writes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "64MiB", "17179869185GiB", "18446744073709551615", "18446744073709551616",
		"16777215TiB", "16777216TiB", "1 GB", "0", "-1", "1.5MiB", "8abc", "MiB", "00064KiB"} {
		f.Add(s, uint64(0))
	}
	f.Add("", uint64(1<<64-1))
	f.Add("", uint64(64<<20))
	f.Add("", uint64(1000))
	f.Fuzz(func(t *testing.T, s string, n uint64) {
		if got, err := ParseSize(s); err == nil {
			num, mult := s, int64(1)
			for _, u := range sizeUnits {
				if rest, ok := strings.CutSuffix(s, u.suffix); ok {
					num, mult = strings.TrimSuffix(rest, " "), int64(u.mult)
					break
				}
			}
			want, ok := new(big.Int).SetString(num, 10)
			if !ok {
				t.Fatalf("ParseSize(%q) accepted a number big.Int cannot read", s)
			}
			want.Mul(want, big.NewInt(mult))
			if want.Sign() <= 0 || !want.IsUint64() || want.Uint64() != got {
				t.Fatalf("ParseSize(%q) = %d, want %s", s, got, want)
			}
		}
		if n == 0 {
			return
		}
		text := FormatSize(n)
		if got, err := ParseSize(text); err != nil || got != n {
			t.Fatalf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, text, got, err)
		}
	})
}
