package host

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
)

// FuzzHTTPToMessage feeds arbitrary paths, queries and headers through the
// ingress's mapping: it must never panic, a subject it accepts must be a
// valid literal subject, and hop-by-hop or Nats-* headers never reach the bus.
func FuzzHTTPToMessage(f *testing.F) {
	f.Add("/orders/42", "a=1", "X-Id", "7")
	f.Add("/orders/a.b", "", "Connection", "close")
	f.Add("/orders/%2A", "q", "Nats-Service-Error-Code", "500")
	f.Add("/orders/"+strings.Repeat("x", 5000), "", "X", "y")
	f.Add("/orders/a%00b", "", "X", "y")
	f.Add("/orders/1", "", "Trellis-Param-Admin", "true")
	mux := http.NewServeMux()
	var gotSubject string
	var gotErr error
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		gotSubject, gotErr = expandSubject("orders.get.{id}", r)
	})
	f.Fuzz(func(t *testing.T, path, query, hk, hv string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest("GET", "http://x"+path, nil)
		if err != nil {
			return
		}
		r.URL.RawQuery = query
		if hk != "" && !strings.ContainsAny(hk, "\r\n: \t") {
			r.Header[hk] = []string{hv}
		}
		gotSubject, gotErr = "", nil
		mux.ServeHTTP(httptest.NewRecorder(), r)
		if gotErr == nil && gotSubject != "" {
			if err := abi.ValidSubject(gotSubject, false); err != nil || len(gotSubject) > abi.MaxSubjectLen {
				t.Fatalf("accepted subject %q: %v", gotSubject, err)
			}
		}
		m := requestMessage(r, "s", []byte("b"))
		for k := range m.Header {
			if hopHeaders[k] || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(strings.ToLower(k), "trellis-param-") {
				t.Fatalf("header %q crossed to the bus", k)
			}
		}
		if m.HTTP.Path != r.URL.Path || m.HTTP.Query != query {
			t.Fatalf("request line lost: %+v", m.HTTP)
		}
		for _, name := range patternParams(path) {
			if strings.ContainsAny(name, "{}") {
				t.Fatalf("pattern parameter %q", name)
			}
		}
	})
}

// FuzzResponseOutcome decodes arbitrary replies, error replies included: the
// status is always a usable HTTP-like code and an error reply is never read
// as a success.
func FuzzResponseOutcome(f *testing.F) {
	f.Add("", "", []byte("ok"))
	f.Add("404", "not found", []byte(nil))
	f.Add("abc", "x", []byte("y"))
	f.Add("0", "", []byte(nil))
	f.Fuzz(func(t *testing.T, code, desc string, data []byte) {
		m := nats.NewMsg("r")
		m.Data = data
		if code != "" {
			m.Header.Set(abi.HeaderErrorCode, code)
			m.Header.Set(abi.HeaderError, desc)
		}
		out := responseOutcome(m)
		if code != "" && m.Header.Get(abi.HeaderErrorCode) != "" && out.status == 0 {
			t.Fatalf("error reply %q read as success", code)
		}
		if code == "" && out.status != 0 {
			t.Fatalf("success read as error %d", out.status)
		}
		w := httptest.NewRecorder()
		writeOutcome(w, out, nil, false)
		if w.Code < 100 || w.Code > 599 {
			t.Fatalf("HTTP status %d", w.Code)
		}
	})
}
