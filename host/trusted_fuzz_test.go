package host

import (
	"maps"
	"testing"

	"github.com/trellis-mesh/trellis/abi"
)

func TestSealFitsOnlyItsMessage(t *testing.T) {
	var s identitySeal
	hdr := map[string][]string{abi.HeaderPrincipal: {"token:alice"}, "X-Claim-sub": {"alice"}, "X-Other": {"1"}}
	sealed := s.sealed("orders.get", hdr, []byte("42"))
	if _, ok := hdr[sealHeader]; ok {
		t.Fatal("sealed changed its argument")
	}
	for _, tc := range []struct {
		name    string
		subject string
		data    string
		change  func(h map[string][]string)
		kept    bool
	}{
		{"as sealed", "orders.get", "42", func(map[string][]string) {}, true},
		{"another subject", "orders.put", "42", func(map[string][]string) {}, false},
		{"another payload", "orders.get", "43", func(map[string][]string) {}, false},
		{"another principal", "orders.get", "42", func(h map[string][]string) { h[abi.HeaderPrincipal] = []string{"token:bob"} }, false},
		{"a claim added", "orders.get", "42", func(h map[string][]string) { h["x-claim-admin"] = []string{"true"} }, false},
		{"a claim removed", "orders.get", "42", func(h map[string][]string) { delete(h, "X-Claim-sub") }, false},
		{"a second seal", "orders.get", "42", func(h map[string][]string) { h[sealHeader] = append(h[sealHeader], "AAAA") }, false},
		{"another header changed", "orders.get", "42", func(h map[string][]string) { h["X-Other"] = []string{"2"} }, false},
		{"a header added", "orders.get", "42", func(h map[string][]string) { h["Trellis-Param-id"] = []string{"7"} }, false},
	} {
		h := maps.Clone(sealed)
		tc.change(h)
		s.admit(tc.subject, h, []byte(tc.data))
		if hasIdentity(h) != tc.kept || h[sealHeader] != nil {
			t.Errorf("%s: after admit %v, want identity kept %v and no seal", tc.name, h, tc.kept)
		}
		if h["X-Other"] == nil {
			t.Errorf("%s: admit removed a header that says nothing about identity", tc.name)
		}
	}
	var other identitySeal
	h := maps.Clone(sealed)
	other.admit("orders.get", h, []byte("42"))
	if hasIdentity(h) {
		t.Error("another host's seal was accepted")
	}
	// What nats.go does to values in transit does not break the seal.
	spaced := s.sealed("orders.get", map[string][]string{abi.HeaderPrincipal: {" token:alice\t"}, "X-Note": {"a\r\nb"}}, nil)
	spaced[abi.HeaderPrincipal], spaced["X-Note"] = []string{"token:alice"}, []string{"a  b"}
	if s.admit("orders.get", spaced, nil); !hasIdentity(spaced) {
		t.Error("a seal over values as sent did not fit them as received")
	}
	if got := s.sealed("x", map[string][]string{"X-Other": {"1"}}, nil); got[sealHeader] != nil {
		t.Error("a message without identity was sealed")
	}
}

// FuzzIdentityAdmit feeds arbitrary headers, as a bus client may send, to a
// handler's entry: it never panics, and no identity header gets through
// without the host's own seal.
func FuzzIdentityAdmit(f *testing.F) {
	f.Add("Trellis-Principal", "token:root", "Trellis-Identity-Seal", "AAAA", "orders.get", []byte("x"))
	f.Add("x-claim-sub", "root", "trellis-identity-seal", "", "a", []byte(nil))
	f.Add("X-Other", "1", "X-Claim-", "!", "", []byte("{}"))
	var s identitySeal
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, subject string, data []byte) {
		h := map[string][]string{k1: {v1}, k2: {v2}}
		s.admit(subject, h, data)
		for name := range h {
			if isIdentityHeader(name) {
				t.Fatalf("%q got through: %v", name, h)
			}
		}
	})
}
