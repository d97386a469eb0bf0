package abi

import (
	"reflect"
	"testing"
)

func TestHeadersRoundTrip(t *testing.T) {
	cases := []map[string][]string{
		nil,
		{"A": {"1"}},
		{"Content-Type": {"text/plain"}, "X-Multi": {"a", "b"}, "Empty": {""}},
		{"Value-With-Colon": {"a: b"}},
	}
	for _, h := range cases {
		enc := AppendHeaders(nil, h)
		got, err := ParseHeaders(enc)
		if err != nil {
			t.Fatalf("ParseHeaders(%q): %v", enc, err)
		}
		if len(h) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, h) {
			t.Errorf("round trip of %v gave %v (encoded %q)", h, got, enc)
		}
	}
}

func TestHeadersEncodingIsSorted(t *testing.T) {
	got := string(AppendHeaders(nil, map[string][]string{"B": {"2"}, "A": {"1"}}))
	if want := "A: 1\r\nB: 2\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseHeadersRejectsMalformed(t *testing.T) {
	for _, in := range []string{"NoColon\r\n", ": empty-name\r\n", "A: 1\n", "A: 1\rB: 2", "A:1\r\n"} {
		if _, err := ParseHeaders([]byte(in)); err == nil {
			t.Errorf("ParseHeaders(%q) = nil error, want one", in)
		}
	}
	if h, err := ParseHeaders([]byte("A: 1")); err != nil || h["A"][0] != "1" {
		t.Errorf("last line without CRLF: %v %v", h, err)
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("A: 1\r\nB: 2\r\n"))
	f.Add([]byte("X: a: b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeaders(b)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip unchanged.
		h2, err := ParseHeaders(AppendHeaders(nil, h))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(h) != len(h2) {
			t.Fatalf("round trip changed %v to %v", h, h2)
		}
	})
}

func TestStatusNames(t *testing.T) {
	for s := StatusOK; s <= StatusConflict; s++ {
		if s.String() == "unknown status" || s.String() == "" {
			t.Errorf("status %d has no name", s)
		}
	}
	if StatusDenied.Result() != -4 {
		t.Errorf("Result() = %d", StatusDenied.Result())
	}
}
