package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "1048576": 1 << 20, " 512B ": 512, "64KiB": 64 << 10, "64 KiB": 64 << 10,
		"1MiB": 1 << 20, "2GiB": 2 << 30, "10KB": 10_000, "1MB": 1_000_000, "1GB": 1_000_000_000,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "KiB", "-1", "1.5MiB", "1 TiB", "1kib", "0x10", "010", "+5", "99999999999999999999", "9223372036854775807KiB"} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
}

// FuzzParseSize: no panic, and a size it accepts is a whole number of its unit.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1MiB", "64 KiB", "0", "18446744073709551615", "9GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n > 1<<63 {
			t.Fatalf("ParseSize(%q) = %d, past the limit", s, n)
		}
	})
}
