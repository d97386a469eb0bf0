package policyconf

import (
	"errors"
	"reflect"
	"testing"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func TestListTrimsAndDropsEmptyItems(t *testing.T) {
	for in, want := range map[string][]string{
		"":              nil,
		" , ,":          nil,
		"a":             {"a"},
		" a, b,,c ":     {"a", "b", "c"},
		"GET /x, /y/**": {"GET /x", "/y/**"},
	} {
		if got := List(in); !reflect.DeepEqual(got, want) {
			t.Errorf("List(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPairs(t *testing.T) {
	got, err := Pairs(" eu = orders.eu ,us=orders.us,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{"eu", "orders.eu"}, {"us", "orders.us"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"eu", "=x", "eu=", "a=1,a=2"} {
		if _, err := Pairs(bad); err == nil {
			t.Errorf("Pairs(%q) accepted", bad)
		}
	}
}

func TestHeaderValuePrefersExactCase(t *testing.T) {
	h := trellis.Header{"x-api-key": {"lower"}, "X-Api-Key": {"exact"}, "Empty": {}}
	if v, ok := HeaderValue(h, "X-Api-Key"); !ok || v != "exact" {
		t.Errorf("exact: %q %v", v, ok)
	}
	if v, ok := HeaderValue(h, "X-API-KEY"); !ok || (v != "exact" && v != "lower") {
		t.Errorf("folded: %q %v", v, ok)
	}
	if _, ok := HeaderValue(h, "Empty"); ok {
		t.Error("a header with no values was found")
	}
	if _, ok := HeaderValue(nil, "X"); ok {
		t.Error("found a header in nil")
	}
}

func TestValidHeaderName(t *testing.T) {
	for s, want := range map[string]bool{
		"X-API-Key": true, "sub": true, "a_b.c~": true,
		"": false, "a b": false, "a:b": false, "a\r\nb": false, "é": false,
	} {
		if got := ValidHeaderName(s); got != want {
			t.Errorf("ValidHeaderName(%q) = %v", s, got)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		kind   KeyKind
		header string
	}{
		{"remote_addr", KeyRemoteAddr, ""},
		{" subject ", KeySubject, ""},
		{"header:X-API-Key", KeyHeader, "X-API-Key"},
		{"claim:sub", KeyClaim, "X-Claim-sub"},
	} {
		k, err := ParseKey(tc.spec)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if k.Kind != tc.kind || k.Header != tc.header {
			t.Errorf("%q: got %+v", tc.spec, k)
		}
	}
	for _, bad := range []string{"", "header:", "header:a b", "claim:", "ip", "remote_addr:x", "subject:x", "cookie:a"} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestKeyValue(t *testing.T) {
	httpReq := &trellis.Inbound{
		Msg:        trellis.Msg{Subject: "orders.get", Header: trellis.Header{"X-Api-Key": {"k1"}, "X-Claim-sub": {"ada"}}},
		Method:     "GET",
		RemoteAddr: "10.0.0.7:51234",
	}
	natsMsg := &trellis.Inbound{Msg: trellis.Msg{Subject: "orders.get"}}
	for _, tc := range []struct {
		spec string
		r    *trellis.Inbound
		want string
		ok   bool
	}{
		{"header:X-API-Key", httpReq, "k1", true},
		{"header:X-API-Key", natsMsg, "", false},
		{"claim:sub", httpReq, "ada", true},
		{"claim:tenant", httpReq, "", false},
		{"remote_addr", httpReq, "10.0.0.7", true},
		{"remote_addr", natsMsg, "", false},
		{"subject", natsMsg, "orders.get", true},
	} {
		k, err := ParseKey(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := k.Value(tc.r); got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %q %v, want %q %v", tc.spec, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRemoteHost(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.7:51234": "10.0.0.7",
		"[::1]:8080":     "::1",
		"[::1]":          "::1",
		"::1":            "::1",
		"example.org":    "example.org",
		"":               "",
		"[bad":           "[bad",
	} {
		if got := RemoteHost(in); got != want {
			t.Errorf("RemoteHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGetterOr(t *testing.T) {
	g := Getter(Map{"set": "v", "empty": ""}.Get)
	for key, want := range map[string]string{"set": "v", "empty": "", "unset": "def"} {
		if got := g.Or(key, "def"); got != want {
			t.Errorf("Or(%q) = %q, want %q", key, got, want)
		}
	}
}

// FuzzConfigValues: the parsers of config values never panic, and a key
// selector they accept reads any message.
func FuzzConfigValues(f *testing.F) {
	f.Add("a=b, c=d", "header:X-Key", "[::1]:80")
	f.Add("=,=", "claim:", "")
	f.Fuzz(func(t *testing.T, list, key, addr string) {
		List(list)
		Pairs(list)
		RemoteHost(addr)
		if k, err := ParseKey(key); err == nil {
			k.Value(&trellis.Inbound{Msg: trellis.Msg{Subject: list, Header: trellis.Header{k.Header: {addr}}}, RemoteAddr: addr})
		}
	})
}
