package main

import "testing"

func TestRuleMatches(t *testing.T) {
	nats := func(subject string) Request { return Request{Subject: subject} }
	http := func(method, path string) Request { return Request{Subject: "api", Method: method, Path: path} }
	for _, tc := range []struct {
		rule string
		req  Request
		want bool
	}{
		{"orders.get", nats("orders.get"), true},
		{"orders.get", nats("orders.get.v2"), false},
		{"orders.*", nats("orders.get"), true},
		{"orders.*", nats("orders.get.v2"), false},
		{"orders.>", nats("orders.get.v2"), true},
		{"orders.>", nats("orders"), false},
		{"api", http("GET", "/x"), true}, // subject rules see HTTP requests' subjects too
		{"/orders/*", nats("orders.get"), false},
		{"/orders/*", http("GET", "/orders/42"), true},
		{"/orders/*", http("DELETE", "/orders/42"), true},
		{"/orders/*", http("GET", "/orders/42/items"), false},
		{"/orders/*", http("GET", "/orders"), false},
		{"GET /orders/*", http("GET", "/orders/42"), true},
		{"GET /orders/*", http("POST", "/orders/42"), false},
		{"/orders/**", http("GET", "/orders"), true},
		{"/orders/**", http("GET", "/orders/"), true},
		{"/orders/**", http("GET", "/orders/42/items/7"), true},
		{"/orders/**", http("GET", "/ordersX"), false},
		{"/orders/**", http("GET", "/"), false},
		{"/tenants/*/orders/**", http("GET", "/tenants/t1/orders/42"), true},
		{"/tenants/*/orders/**", http("GET", "/tenants/t1/users"), false},
		{"/**", http("GET", "/anything/at/all"), true},
		{"/**", http("GET", "/"), true},
		{"/admin/**", http("GET", "/orders/../admin/users"), true},
		{"/admin/**", http("GET", "//admin//users"), true},
		{"/admin/**", http("GET", "admin"), true},
		{"/orders/[0-9]*", http("GET", "/orders/42"), true},
		{"/orders/[0-9]*", http("GET", "/orders/x"), false},
	} {
		r, err := ParseRule(tc.rule)
		if err != nil {
			t.Errorf("%q: %v", tc.rule, err)
			continue
		}
		if got := r.Matches(tc.req); got != tc.want {
			t.Errorf("%q on %+v: got %v, want %v", tc.rule, tc.req, got, tc.want)
		}
	}
}

func TestParseRuleRefusesBadPatterns(t *testing.T) {
	for _, bad := range []string{"", "orders..get", "orders.>.x", "or ders", "get /x", "GET x", "GET  x", "/a/**/b", "/a/[", "/a**"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
}

func TestACLDenyWinsAndAllowListCloses(t *testing.T) {
	a, err := ParseACL([]string{"orders.>", "GET /orders/**"}, []string{"orders.admin.>", "/orders/*/secret"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  Request
		want bool
	}{
		{Request{Subject: "orders.get"}, true},
		{Request{Subject: "orders.admin.drop"}, false},
		{Request{Subject: "billing.get"}, false},
		{Request{Subject: "http", Method: "GET", Path: "/orders/42"}, true},
		{Request{Subject: "http", Method: "GET", Path: "/orders/42/secret"}, false},
		{Request{Subject: "http", Method: "POST", Path: "/orders/42"}, false},
	} {
		if got := a.Allows(tc.req); got != tc.want {
			t.Errorf("%+v: got %v, want %v", tc.req, got, tc.want)
		}
	}

	denyOnly, err := ParseACL(nil, []string{"/admin/**"})
	if err != nil {
		t.Fatal(err)
	}
	if !denyOnly.Allows(Request{Subject: "anything"}) || denyOnly.Allows(Request{Subject: "x", Method: "GET", Path: "/admin"}) {
		t.Error("deny-only list")
	}
	if _, err := ParseACL(nil, nil); err == nil {
		t.Error("accepted an ACL with no rules")
	}
	if _, err := ParseACL([]string{"ok"}, []string{"bad..subject"}); err == nil {
		t.Error("accepted a bad deny rule")
	}
}

// FuzzRule parses arbitrary patterns and matches them against arbitrary
// requests: neither may panic.
func FuzzRule(f *testing.F) {
	f.Add("GET /orders/*/**", "GET", "/orders/42/x", "orders.get")
	f.Add("orders.>", "", "", "orders.get")
	f.Add("/[", "GET", "/", "x")
	f.Fuzz(func(t *testing.T, pattern, method, path, subject string) {
		r, err := ParseRule(pattern)
		if err != nil {
			return
		}
		r.Matches(Request{Subject: subject, Method: method, Path: path})
	})
}
