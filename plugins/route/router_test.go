package main

import (
	"testing"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func TestRouterTarget(t *testing.T) {
	rt, err := ParseRouter(policyconf.Map{"header": "X-Version", "routes": "v1=orders.get.v1, v2=orders.get.v2"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	withDefault, err := ParseRouter(policyconf.Map{"header": "X-Version", "routes": "v2=orders.get.v2", "default": "orders.get.v1"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rt     Router
		h      trellis.Header
		target string
		ok     bool
	}{
		{rt, trellis.Header{"X-Version": {"v2"}}, "orders.get.v2", true},
		{rt, trellis.Header{"x-version": {"v1"}}, "orders.get.v1", true},
		{rt, trellis.Header{"X-Version": {"V2"}}, "", false}, // values are exact
		{rt, trellis.Header{"X-Version": {"v3"}}, "", false},
		{rt, nil, "", false},
		{withDefault, trellis.Header{"X-Version": {"v2"}}, "orders.get.v2", true},
		{withDefault, trellis.Header{"X-Version": {"v3"}}, "orders.get.v1", true},
		{withDefault, nil, "orders.get.v1", true},
	} {
		target, ok := tc.rt.Target(tc.h)
		if target != tc.target || ok != tc.ok {
			t.Errorf("%v: got %q %v, want %q %v", tc.h, target, ok, tc.target, tc.ok)
		}
	}
}

func TestParseRouter(t *testing.T) {
	if rt, err := ParseRouter(policyconf.Map{"mirror": "shadow.orders"}.Get); err != nil || rt.Mirror != "shadow.orders" {
		t.Errorf("mirror only: %+v %v", rt, err)
	}
	for _, bad := range []policyconf.Map{
		{},
		{"routes": "v1=a"},                       // no header
		{"header": "X-V", "routes": "v1"},        // not name=value
		{"header": "X-V", "routes": "v1=a.*"},    // wildcard
		{"header": "X-V", "routes": "v1=a,v1=b"}, // twice
		{"header": "X V", "routes": "v1=a"},      // bad header
		{"header": "X-V", "default": "a b"},      // bad default
		{"mirror": "shadow.>"},                   // wildcard mirror
	} {
		if _, err := ParseRouter(bad.Get); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestMirrorHeader(t *testing.T) {
	in := trellis.Header{"X-Version": {"v2"}, MirroredFromHeader: {"forged"}}
	out := MirrorHeader(in, "orders.get")
	if out.Get(MirroredFromHeader) != "orders.get" || out.Get("X-Version") != "v2" {
		t.Errorf("got %v", out)
	}
	if in.Get(MirroredFromHeader) != "forged" {
		t.Error("MirrorHeader changed its input")
	}
	if MirrorHeader(nil, "s").Get(MirroredFromHeader) != "s" {
		t.Error("nil headers")
	}
}
