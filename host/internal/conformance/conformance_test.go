package conformance_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// language is one row per plugin language: where its conformance plugin
// and examples are. Adding a language is adding a row.
type language struct {
	name string
	// conformance is the source of the plugin that implements the
	// behaviours (see doc.go), relative to this directory.
	conformance string
	// echoOnly marks a reference that implements only echo, on subject
	// "echo": it runs the behaviours marked echo, on conf.echo.
	echoOnly bool
	// echo and greet are the examples' sources; "" when there are none.
	echo, greet string
}

var languages = []language{
	{name: "go", conformance: "../../../sdk/go/conformance", echo: "../../../examples/echo", greet: "../../../examples/greet"},
	{name: "c", conformance: "../../../sdk/c/conformance", echo: "../../../examples/echo-c", greet: "../../../examples/greet-c"},
	{name: "rust", conformance: "../../../sdk/rust/conformance", echo: "../../../examples/echo-rust", greet: "../../../examples/greet-rust"},
	{name: "as", conformance: "../../../sdk/assemblyscript/conformance", echo: "../../../examples/echo-as", greet: "../../../examples/greet-as"},
	{name: "wat", conformance: "../../../abi/echo.wat", echoOnly: true},
}

const timeout = 10 * time.Second // per request; generous for -race on a busy machine

// suite is what a behaviour runs against: a host serving one language's
// conformance plugin.
type suite struct {
	h      *trellistest.Host
	plugin string // the plugin's name, as the host logs it
}

// behaviour is one row of the table in doc.go.
type behaviour struct {
	name string
	echo bool // part of the echo subset that echoOnly references run
	run  func(t *testing.T, s *suite)
}

// onlyIn names behaviours that a single SDK implements: the language's own
// API beyond the ABI.
var onlyIn = map[string]string{"reply-subject": "go"}

var behaviours = []behaviour{
	{"echo", true, func(t *testing.T, s *suite) {
		m := s.request(t, "conf.echo", []byte("hi"), nil)
		wantOK(t, m, "hi")
	}},
	{"empty", true, func(t *testing.T, s *suite) {
		m := s.request(t, "conf.echo", nil, nil)
		wantOK(t, m, "")
	}},
	{"large", true, func(t *testing.T, s *suite) {
		payload := make([]byte, 1<<20)
		for i := range payload {
			payload[i] = byte(i * 7 / 5)
		}
		m := s.request(t, "conf.echo", payload, nil)
		if code := m.Header.Get(abi.HeaderErrorCode); code != "" || !bytes.Equal(m.Data, payload) {
			t.Fatalf("1 MiB echo: %d bytes back, error %q %q", len(m.Data), code, m.Header.Get(abi.HeaderError))
		}
	}},
	{"sizes", true, func(t *testing.T, s *suite) {
		// Sizes that grow, shrink and grow again, so that an SDK that reuses
		// its message buffers shows any bytes left from an earlier message.
		for _, n := range []int{3 << 20, 5, 100 << 10, 0, 1, 2 << 20, 17} {
			payload := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			m := s.request(t, "conf.echo", payload, nil)
			if code := m.Header.Get(abi.HeaderErrorCode); code != "" || !bytes.Equal(m.Data, payload) {
				t.Fatalf("%d-byte echo: %d bytes back, error %q %q", n, len(m.Data), code, m.Header.Get(abi.HeaderError))
			}
		}
	}},
	{"reply-subject", false, func(t *testing.T, s *suite) {
		// The handler answers with the reply subject it was given.
		nc := s.h.Client()
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.PublishRequest("conf.replyto", inbox, nil); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(timeout)
		if err != nil {
			t.Fatalf("no answer on %s: %v", inbox, err)
		}
		wantOK(t, m, inbox)
	}},
	{"headers", false, func(t *testing.T, s *suite) {
		m := s.request(t, "conf.headers", nil, nats.Header{"X-In": {"blue: sky"}})
		wantOK(t, m, "blue: sky")
		if got := m.Header.Get("X-Out"); got != "blue: sky" {
			t.Errorf("X-Out = %q", got)
		}
		if got := m.Header.Get("X-Subject"); got != "conf.headers" {
			t.Errorf("X-Subject = %q", got)
		}
	}},
	{"publish", false, func(t *testing.T, s *suite) {
		sub, err := s.h.Client().SubscribeSync("published.conf")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		s.h.Client().Flush()
		wantOK(t, s.request(t, "conf.publish", []byte("news"), nil), "ok")
		p, err := sub.NextMsg(timeout)
		if err != nil {
			t.Fatalf("nothing published: %v", err)
		}
		if string(p.Data) != "news" || p.Header.Get("X-From") != "conformance" {
			t.Fatalf("published %q with headers %v", p.Data, p.Header)
		}
	}},
	{"request/answered", false, func(t *testing.T, s *suite) {
		sub, err := s.h.Client().Subscribe("upstream.conf", func(m *nats.Msg) {
			m.Respond(append([]byte("got "), m.Data...))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		s.h.Client().Flush()
		wantOK(t, s.request(t, "conf.request", []byte("ping"), nil), "upstream:got ping")
	}},
	{"request/no-responders", false, func(t *testing.T, s *suite) {
		wantError(t, s.request(t, "conf.request", []byte("ping"), nil), "504", "upstream: no responders")
	}},
	{"request/timeout", false, func(t *testing.T, s *suite) {
		answered := make(chan struct{})
		sub, err := s.h.Client().Subscribe("upstream.conf", func(m *nats.Msg) {
			time.AfterFunc(800*time.Millisecond, func() { // past the plugin's 500 ms
				m.Respond([]byte("too late"))
				close(answered)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		s.h.Client().Flush()
		wantError(t, s.request(t, "conf.request", []byte("ping"), nil), "504", "upstream: timeout")
		<-answered
	}},
	{"log", false, func(t *testing.T, s *suite) {
		text := "note from " + s.plugin
		wantOK(t, s.request(t, "conf.log", []byte(text), nil), "ok")
		for level := hclog.Trace; level <= hclog.Error; level++ {
			tag := "[" + strings.ToUpper(level.String()) + "]"
			line := fmt.Sprintf("level %d: %s", level, text)
			if !s.h.WaitLog(5*time.Second, tag, "trellis."+s.plugin+":", line) {
				t.Errorf("no %s line %q from %s in the host log", tag, line, s.plugin)
			}
		}
	}},
	{"error", false, func(t *testing.T, s *suite) {
		wantError(t, s.request(t, "conf.error", []byte("bad input"), nil), "422", "rejected: bad input")
	}},
	{"config", false, func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.config", []byte("colour"), nil), "green")
		wantError(t, s.request(t, "conf.config", []byte("size"), nil), "404", "no config key size")
	}},
	{"trap", false, func(t *testing.T, s *suite) {
		for i := 0; i < 3; i++ { // each trap costs an instance; the pool makes new ones
			m := s.request(t, "conf.trap", nil, nil)
			if code := m.Header.Get(abi.HeaderErrorCode); code != "500" {
				t.Fatalf("trap %d: code %q (%q), want 500", i, code, m.Header.Get(abi.HeaderError))
			}
			wantOK(t, s.request(t, "conf.echo", []byte("still here"), nil), "still here")
		}
		if !s.h.WaitLog(5*time.Second, "plugin fault", "plugin="+s.plugin, "subject=conf.trap") {
			t.Error("the trap was not logged as a fault with plugin and subject")
		}
	}},
	{"kv/set-get", false, func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.kv", []byte("colour=green"), nil), "green")
		wantOK(t, s.request(t, "conf.kv", []byte("colour=blue: sky=high"), nil), "blue: sky=high")
		wantOK(t, s.request(t, "conf.kv", []byte("empty="), nil), "")
	}},
	{"kv/incr", false, func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.kv", []byte("incr:hits"), nil), "2")
		wantOK(t, s.request(t, "conf.kv", []byte("incr:hits"), nil), "4") // the count lives in the host
	}},
	{"kv/cas", false, func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.kv", []byte("cas:lock"), nil), "conflict")
		// The key now exists, so even the first compare-and-set conflicts.
		wantError(t, s.request(t, "conf.kv", []byte("cas:lock"), nil), "500", "kv cas: trellis: conflict")
	}},
	{"respheader", false, func(t *testing.T, s *suite) {
		m := s.request(t, "conf.respheader", nil, nil)
		wantOK(t, m, "ok")
		if got := m.Header.Get("X-Resp"); got != "yes" {
			t.Fatalf("X-Resp = %q, headers %v", got, m.Header)
		}
	}},
}

// policyBehaviours run where each language's conformance module is loaded
// twice: as the policy, and as the handler behind it.
var policyBehaviours = []struct {
	name string
	run  func(t *testing.T, s *suite)
}{
	{"allow", func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.echo", []byte("hi"), nil), "hi")
		wantOK(t, s.request(t, "conf.echo", []byte("hi"), policyHeader("allow")), "hi")
	}},
	{"reject", func(t *testing.T, s *suite) {
		wantError(t, s.request(t, "conf.echo", []byte("hi"), policyHeader("reject")), "403", "rejected by conformance policy")
	}},
	{"answer", func(t *testing.T, s *suite) {
		// conf.error would fail: the answer shows the message went no further.
		wantOK(t, s.request(t, "conf.error", []byte("x"), policyHeader("answer")), "answered by conformance policy")
	}},
	{"header", func(t *testing.T, s *suite) {
		h := policyHeader("header")
		h.Set("X-In", "from-client")
		m := s.request(t, "conf.headers", nil, h)
		wantOK(t, m, "from-policy")
		if got := m.Header.Get("X-Out"); got != "from-policy" {
			t.Errorf("X-Out = %q", got)
		}
	}},
	{"route", func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.error", []byte("routed"), policyHeader("route")), "routed")
	}},
	{"data", func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.echo", []byte("original"), policyHeader("data")), "replaced")
	}},
	{"http", func(t *testing.T, s *suite) {
		// Through the HTTP ingress the policy sees method, path, query and
		// the client's address; over NATS the message goes on unchanged.
		url := "http://" + s.h.HTTPAddr() + "/conf/echo?x=1&y=two"
		resp, body := trellistest.HTTP(t, nil, "POST", url, "body", "X-Policy", "http")
		if want := "POST /conf/echo?x=1&y=two from 127.0.0.1:"; resp.StatusCode != 200 || !strings.HasPrefix(body, want) {
			t.Fatalf("HTTP %d %q, want 200 and a body starting %q", resp.StatusCode, body, want)
		}
		wantOK(t, s.request(t, "conf.echo", []byte("hi"), policyHeader("http")), "hi")
	}},
	{"unknown", func(t *testing.T, s *suite) {
		wantError(t, s.request(t, "conf.echo", nil, policyHeader("bogus")), "400", "unknown policy action bogus")
	}},
	{"response", func(t *testing.T, s *suite) {
		appendResp := nats.Header{"X-Response": {"append"}}
		wantOK(t, s.request(t, "conf.echo", []byte("hi"), appendResp), "hi [response]")
		wantOK(t, s.request(t, "conf.echo", nil, appendResp), " [response]")
		// Only successful responses change.
		wantError(t, s.request(t, "conf.error", []byte("x"), appendResp), "422", "rejected: x")
		h := policyHeader("data")
		h.Set("X-Response", "append")
		wantOK(t, s.request(t, "conf.echo", []byte("original"), h), "replaced [response]")
	}},
	{"respheader", func(t *testing.T, s *suite) {
		m := s.request(t, "conf.respheader", nil, nats.Header{"X-Response": {"append"}})
		wantOK(t, m, "ok [response]")
		if got := m.Header.Get("X-Resp"); got != "yes" {
			t.Fatalf("X-Resp = %q, headers %v", got, m.Header)
		}
	}},
	{"kv", func(t *testing.T, s *suite) {
		wantOK(t, s.request(t, "conf.kv", []byte("incr:behind-policy"), nil), "2")
	}},
}

func policyHeader(action string) nats.Header { return nats.Header{"X-Policy": {action}} }

func (s *suite) request(t *testing.T, subject string, data []byte, header nats.Header) *nats.Msg {
	t.Helper()
	m, err := s.h.Client().RequestMsg(&nats.Msg{Subject: subject, Data: data, Header: header}, timeout)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return m
}

func wantOK(t *testing.T, m *nats.Msg, data string) {
	t.Helper()
	if code := m.Header.Get(abi.HeaderErrorCode); code != "" {
		t.Fatalf("error reply %s %q, want %q", code, m.Header.Get(abi.HeaderError), data)
	}
	if string(m.Data) != data {
		t.Fatalf("reply %q, want %q", m.Data, data)
	}
}

func wantError(t *testing.T, m *nats.Msg, code, text string) {
	t.Helper()
	if got := m.Header.Get(abi.HeaderErrorCode); got != code || m.Header.Get(abi.HeaderError) != text {
		t.Fatalf("reply %q with error %q %q, want %s %q", m.Data, got, m.Header.Get(abi.HeaderError), code, text)
	}
}

// traceHost is a host whose log keeps every level, trace included.
func traceHost(t *testing.T) *trellistest.Host {
	return trellistest.NewHost(t, func(o *host.Options) { o.Logger.SetLevel(hclog.Trace) })
}

func TestConformance(t *testing.T) {
	for _, lang := range languages {
		t.Run(lang.name, func(t *testing.T) {
			t.Parallel()
			wasm := trellistest.Wasm(t, lang.conformance)
			s := &suite{h: traceHost(t), plugin: "conf-" + lang.name}
			s.h.Load(s.plugin, wasm, func(spec *host.Spec) {
				spec.Config = map[string]string{"colour": "green"}
				spec.Grants = plugin.Grants{Publish: []string{"published.conf"}, Request: []string{"upstream.conf"}, Subscribe: []string{"conf.>"}}
				if lang.echoOnly {
					// The operator's subjects are the grant.
					spec.Subjects = []string{"conf.echo"}
					spec.Grants.Subscribe = nil
				}
			})
			for _, b := range behaviours {
				if lang.echoOnly && !b.echo || onlyIn[b.name] != "" && onlyIn[b.name] != lang.name {
					continue
				}
				t.Run(b.name, func(t *testing.T) { b.run(t, s) })
			}
		})
	}
}

func TestExamples(t *testing.T) {
	for _, lang := range languages {
		if lang.echo == "" {
			continue
		}
		t.Run(lang.name, func(t *testing.T) {
			t.Parallel()
			h := trellistest.NewHost(t)
			h.Load("echo", trellistest.Wasm(t, lang.echo))
			h.Load("greet", trellistest.Wasm(t, lang.greet))
			cases := []struct {
				subject, payload, want string
			}{
				{"echo", "hi from " + lang.name, "hi from " + lang.name},
				{"greet", "Ada", "Hello, Ada!"},
			}
			for _, c := range cases {
				t.Run(c.subject, func(t *testing.T) {
					m, err := h.Client().Request(c.subject, []byte(c.payload), timeout)
					if err != nil {
						t.Fatal(err)
					}
					wantOK(t, m, c.want)
				})
			}
		})
	}
}

func TestConformancePolicies(t *testing.T) {
	for _, lang := range languages {
		if lang.echoOnly {
			continue
		}
		t.Run(lang.name, func(t *testing.T) {
			t.Parallel()
			wasm := trellistest.Wasm(t, lang.conformance)
			policy := lang.name + "-policy"
			s := &suite{plugin: "conf-" + lang.name}
			s.h = trellistest.NewHost(t, func(o *host.Options) {
				o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", Routes: []host.HTTPRoute{
					{Pattern: "POST /conf/{what}", Subject: "conf.{what}", Policies: []host.PolicyRef{{Name: policy}}},
				}}
			})
			s.h.Load(policy, wasm, func(spec *host.Spec) {
				spec.Policy = true
				spec.Grants = plugin.Grants{Request: []string{"conf.echo"}, Publish: []string{"conf.echo"}}
			})
			s.h.Load(s.plugin, wasm, func(spec *host.Spec) {
				spec.Policies = []host.PolicyRef{{Name: policy}}
			})
			for _, b := range policyBehaviours {
				t.Run(b.name, func(t *testing.T) { b.run(t, s) })
			}
		})
	}
}
