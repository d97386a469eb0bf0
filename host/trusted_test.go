package host_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// claimsSrc answers with the identity headers it got (X-Seen-Principal,
// X-Seen-Claims).
const claimsSrc = "../plugins/testdata/claims"

// forged are identity headers a client makes up, in several spellings, and
// a made-up seal.
var forged = map[string]string{
	abi.HeaderPrincipal:    "token:root",
	"trellis-principal":    "token:root2",
	"X-Claim-sub":          "root",
	"x-claim-admin":        "true",
	abi.HeaderIdentitySeal: "AAAA",
}

func TestIdentityHeadersOnlyFromPolicies(t *testing.T) {
	routes := []host.HTTPRoute{
		{Pattern: "GET /open", Subject: "claims"},
		{Pattern: "GET /identified", Subject: "claims", Policies: []host.PolicyRef{{Name: "testpolicy"}}},
		{Pattern: "POST /event", Subject: "events", Event: true, Policies: []host.PolicyRef{{Name: "testpolicy"}}},
	}
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: routes}
	})
	h.Load("testpolicy", trellistest.Wasm(t, "testdata/testpolicy"), func(s *host.Spec) { s.Policy = true })
	h.Load("claims", trellistest.Wasm(t, claimsSrc)) // no policies of its own
	h.Load("guarded", trellistest.Wasm(t, claimsSrc), func(s *host.Spec) {
		s.Subjects = []string{"guarded"}
		s.Policies = []host.PolicyRef{{Name: "testpolicy"}}
	})

	overNATS := func(t *testing.T, subject, action string, headers map[string]string) http.Header {
		t.Helper()
		m := nats.NewMsg(subject)
		for k, v := range headers {
			m.Header[k] = []string{v}
		}
		if action != "" {
			m.Header.Set("X-Policy", action)
		}
		reply, err := h.Client().RequestMsg(m, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := reply.Header.Get(abi.HeaderErrorCode); code != "" {
			t.Fatalf("error %s %s", code, reply.Header.Get(abi.HeaderError))
		}
		return http.Header(reply.Header)
	}
	overHTTP := func(t *testing.T, path, action string, headers map[string]string) http.Header {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+h.HTTPAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header[k] = []string{v} // as written, not canonicalised
		}
		if action != "" {
			req.Header.Set("X-Policy", action)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp.Header
	}

	for _, tc := range []struct {
		name      string
		send      func(t *testing.T) http.Header
		principal string
		claims    string
	}{
		{"NATS, handler without policies, forged", func(t *testing.T) http.Header { return overNATS(t, "claims", "", forged) }, "", ""},
		{"NATS, handler with a policy that sets none, forged", func(t *testing.T) http.Header { return overNATS(t, "guarded", "allow", forged) }, "", ""},
		{"NATS, handler with a policy that identifies, forged", func(t *testing.T) http.Header { return overNATS(t, "guarded", "identify", forged) }, "test:ada", "X-Claim-sub"},
		{"HTTP, route without policies, forged", func(t *testing.T) http.Header { return overHTTP(t, "/open", "", forged) }, "", ""},
		{"HTTP, route with a policy that sets none, forged", func(t *testing.T) http.Header { return overHTTP(t, "/identified", "allow", forged) }, "", ""},
		{"HTTP, route with a policy that identifies, forged", func(t *testing.T) http.Header { return overHTTP(t, "/identified", "identify", forged) }, "test:ada", "X-Claim-sub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.send(t)
			if p, c := got.Get("X-Seen-Principal"), got.Get("X-Seen-Claims"); p != tc.principal || c != tc.claims {
				t.Errorf("the handler got principal %q and claims %q, want %q and %q", p, c, tc.principal, tc.claims)
			}
		})
	}

	t.Run("a seal copied off the bus fits no other message", func(t *testing.T) {
		// An HTTP event carries the policy's identity, sealed, to "events";
		// a bus client that reads it there replays it to the handler.
		sub, err := h.Client().SubscribeSync("events")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Client().Flush(); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", "http://"+h.HTTPAddr()+"/event", nil)
		req.Header.Set("X-Policy", "identify")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ev, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Header.Get(abi.HeaderPrincipal) != "test:ada" || ev.Header.Get(abi.HeaderIdentitySeal) == "" {
			t.Fatalf("the event is not sealed: %v", ev.Header)
		}
		replay := func(change func(m map[string]string)) map[string]string {
			m := map[string]string{}
			for k := range ev.Header {
				m[k] = ev.Header.Get(k)
			}
			change(m)
			return m
		}
		for what, headers := range map[string]map[string]string{
			"another principal": replay(func(m map[string]string) { m[abi.HeaderPrincipal] = "test:root" }),
			"an added claim":    replay(func(m map[string]string) { m["X-Claim-admin"] = "true" }),
		} {
			if got := overNATS(t, "claims", "", headers); got.Get("X-Seen-Principal") != "" || got.Get("X-Seen-Claims") != "" {
				t.Errorf("%s: the handler got principal %q and claims %q", what, got.Get("X-Seen-Principal"), got.Get("X-Seen-Claims"))
			}
		}
		// On another subject (with the same empty payload) the seal does not fit either.
		if got := overNATS(t, "claims", "", replay(func(map[string]string) {})); got.Get("X-Seen-Principal") != "" {
			t.Errorf("a seal made for %q was accepted on %q", "events", "claims")
		}
	})
}
