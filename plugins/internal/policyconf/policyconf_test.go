package policyconf

import (
	"errors"
	"reflect"
	"strings"
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
		{"principal", KeyPrincipal, "Trellis-Principal"},
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
	for _, bad := range []string{"", "header:", "header:a b", "claim:", "ip", "remote_addr:x", "subject:x", "cookie:a", "principal:x"} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestKeyValue(t *testing.T) {
	httpReq := &trellis.Inbound{
		Msg: trellis.Msg{Subject: "orders.get", Header: trellis.Header{"X-Api-Key": {" k1\t"}, "X-Claim-sub": {"ada"},
			"Authorization": {"BEARER   Tok "}, "Trellis-Principal": {"token:alice"}}},
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
		{"header:Authorization", httpReq, "bearer Tok", true},
		{"principal", httpReq, "token:alice", true},
		{"principal", natsMsg, "", false},
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

func TestCanonicalHeaderValue(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"Authorization", "Bearer t", "bearer t"},
		{"Authorization", "bearer t", "bearer t"},
		{"Authorization", "BEARER t", "bearer t"},
		{"Authorization", "Bearer   t", "bearer t"},
		{"Authorization", "Bearer t   ", "bearer t"},
		{"Authorization", " \tBearer\t t \t", "bearer t"},
		{"authorization", "bEaReR t", "bearer t"},
		{"Authorization", "Bearer Tok", "bearer Tok"}, // the credentials keep their case
		{"Authorization", "Basic  YWRh  Og==", "basic YWRh Og=="},
		{"Authorization", "Bearer", "bearer"},
		{"Authorization", "   ", ""},
		{"X-API-Key", "  k1\t", "k1"},
		{"X-API-Key", "Bearer   K1", "Bearer   K1"}, // only trimmed
		{"X-API-Key", "", ""},
	} {
		if got := CanonicalHeaderValue(tc.name, tc.in); got != tc.want {
			t.Errorf("CanonicalHeaderValue(%q, %q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// FuzzCanonicalHeaderValue: the canonical form is a fixed point, has no
// surrounding whitespace, and for Authorization is the same whatever the
// case of the scheme and the whitespace around and between the parts.
func FuzzCanonicalHeaderValue(f *testing.F) {
	for _, seed := range [][2]string{
		{"Authorization", "Bearer t"},
		{"Authorization", "BEARER   t  "},
		{"authorization", "\tbearer\tt"},
		{"Authorization", "Digest username=\"a\",  realm=\"b\""},
		{"Authorization", ""},
		{"Authorization", "\u00a0Bearer\u2003t\u0085"},
		{"Authorization", "\xffBEARER \xfe"},
		{"X-API-Key", " k1 "},
		{"X-API-Key", "Bearer  k1"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, v string) {
		c := CanonicalHeaderValue(name, v)
		if again := CanonicalHeaderValue(name, c); again != c {
			t.Fatalf("not a fixed point: %q -> %q -> %q", v, c, again)
		}
		if c != strings.TrimSpace(c) {
			t.Fatalf("%q -> %q keeps surrounding whitespace", v, c)
		}
		if !strings.EqualFold(name, "Authorization") {
			if c != strings.TrimSpace(v) {
				t.Fatalf("%s: %q -> %q, want it trimmed only", name, v, c)
			}
			return
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			if c != "" {
				t.Fatalf("%q -> %q, want empty", v, c)
			}
			return
		}
		// Respell: the scheme's ASCII letters in the other case, and other
		// whitespace around and between the parts.
		scheme := []byte(fields[0])
		for i, b := range scheme {
			if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' {
				scheme[i] = b ^ 0x20
			}
		}
		respelt := " \t" + string(scheme) + "\t  " + strings.Join(fields[1:], " \t ") + "  "
		if got := CanonicalHeaderValue(name, respelt); got != c {
			t.Fatalf("%q -> %q but its respelling %q -> %q", v, c, respelt, got)
		}
	})
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
