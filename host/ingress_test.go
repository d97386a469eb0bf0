package host_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func ingressHost(t *testing.T, routes ...host.HTTPRoute) *trellistest.Host {
	t.Helper()
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", MaxBody: 1024, Routes: routes}
	})
	h.Load("testpolicy", trellistest.Wasm(t, "testdata/testpolicy"), func(s *host.Spec) { s.Policy = true })
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	h.Load("conformance", trellistest.Wasm(t, "../sdk/go/conformance"))
	return h
}

func TestIngressRequestReplyAndEvents(t *testing.T) {
	h := ingressHost(t,
		host.HTTPRoute{Pattern: "POST /echo", Subject: "echo"},
		host.HTTPRoute{Pattern: "GET /conf/{what}", Subject: "conf.{what}"},
		host.HTTPRoute{Pattern: "POST /orders", Subject: "orders.created", Event: true},
		host.HTTPRoute{Pattern: "GET /param/{id}", Subject: "param.seen", Event: true},
	)
	base := "http://" + h.HTTPAddr()

	resp, body := trellistest.HTTP(t, nil, "POST", base+"/echo", "hello over http")
	if resp.StatusCode != 200 || body != "hello over http" {
		t.Fatalf("echo: %d %q", resp.StatusCode, body)
	}
	// Headers go HTTP -> NATS and back.
	resp, body = trellistest.HTTP(t, nil, "GET", base+"/conf/headers", "", "X-In", "from-http")
	if resp.StatusCode != 200 || body != "from-http" || resp.Header.Get("X-Out") != "from-http" {
		t.Fatalf("headers: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// A handler's error status becomes the HTTP status, with a JSON body.
	resp, body = trellistest.HTTP(t, nil, "GET", base+"/conf/error", "")
	var e struct{ Error string }
	if resp.StatusCode != 422 || json.Unmarshal([]byte(body), &e) != nil || !strings.HasPrefix(e.Error, "rejected:") {
		t.Fatalf("error: %d %q", resp.StatusCode, body)
	}
	// A path value that is not a subject token is refused.
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/conf/a.b", ""); resp.StatusCode != 400 {
		t.Fatalf("dotted path value: %d", resp.StatusCode)
	}
	// Events are published and answered 202.
	sub, _ := h.Client().SubscribeSync("orders.created")
	h.Client().Flush()
	resp, body = trellistest.HTTP(t, nil, "POST", base+"/orders", `{"id":"42"}`, "Content-Type", "application/json")
	if resp.StatusCode != 202 || !strings.Contains(body, "accepted") {
		t.Fatalf("event: %d %q", resp.StatusCode, body)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != `{"id":"42"}` || m.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("event on the bus: %v %v", m, err)
	}
	// Path wildcards travel as headers too.
	psub, _ := h.Client().SubscribeSync("param.seen")
	h.Client().Flush()
	trellistest.HTTP(t, nil, "GET", base+"/param/42", "")
	if m, err := psub.NextMsg(5 * time.Second); err != nil || m.Header.Get("Trellis-Param-id") != "42" {
		t.Fatalf("path parameter header: %v %v", m, err)
	}
	// Limits and misses.
	if resp, _ := trellistest.HTTP(t, nil, "POST", base+"/echo", strings.Repeat("x", 2000)); resp.StatusCode != 413 {
		t.Fatalf("oversized body: %d", resp.StatusCode)
	}
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/nowhere", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
}

func TestIngressNoRespondersAndTimeouts(t *testing.T) {
	h := ingressHost(t,
		host.HTTPRoute{Pattern: "GET /void", Subject: "nobody.home"},
		host.HTTPRoute{Pattern: "GET /slow", Subject: "slow", Timeout: 200 * time.Millisecond},
	)
	h.Client().Subscribe("slow", func(m *natsMsg) { time.Sleep(time.Second) })
	h.Client().Flush()
	base := "http://" + h.HTTPAddr()
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/void", ""); resp.StatusCode != 503 {
		t.Fatalf("no responders: %d", resp.StatusCode)
	}
	if resp, _ := trellistest.HTTP(t, nil, "GET", base+"/slow", ""); resp.StatusCode != 504 {
		t.Fatalf("timeout: %d", resp.StatusCode)
	}
}

func TestIngressPoliciesSeeHTTPAndDecide(t *testing.T) {
	pol := []host.PolicyRef{{Name: "testpolicy"}}
	h := ingressHost(t, host.HTTPRoute{Pattern: "POST /echo", Subject: "echo", Policies: pol})
	base := "http://" + h.HTTPAddr()

	resp, body := trellistest.HTTP(t, nil, "POST", base+"/echo?x=1", "ignored")
	if resp.StatusCode != 200 || body != "POST /echo?x=1 from 127.0.0.1"+seen {
		t.Fatalf("policy view of HTTP: %d %q", resp.StatusCode, body)
	}
	resp, body = trellistest.HTTP(t, nil, "POST", base+"/echo", "x", "X-Policy", "limit")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || !strings.Contains(body, "slow down") {
		t.Fatalf("limit: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = trellistest.HTTP(t, nil, "POST", base+"/echo", "x", "X-Policy", "reject")
	if resp.StatusCode != 403 || !strings.Contains(body, "rejected by test policy") {
		t.Fatalf("reject: %d %q", resp.StatusCode, body)
	}
	resp, body = trellistest.HTTP(t, nil, "POST", base+"/echo", "x", "X-Policy", "answer")
	if resp.StatusCode != 200 || body != "answered by policy" {
		t.Fatalf("answer: %d %q", resp.StatusCode, body)
	}
	resp, _ = trellistest.HTTP(t, nil, "POST", base+"/echo", "x", "X-Policy", "trap")
	if resp.StatusCode != 503 {
		t.Fatalf("fail closed: %d", resp.StatusCode)
	}
}

func TestIngressDrainsOnClose(t *testing.T) {
	h := ingressHost(t, host.HTTPRoute{Pattern: "GET /slow", Subject: "slow", Timeout: 5 * time.Second})
	// An upstream that holds the request, so it is in flight when Close
	// begins.
	held := make(chan *natsMsg, 1)
	h.Client().Subscribe("slow", func(m *natsMsg) { held <- m })
	h.Client().Flush()
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + h.HTTPAddr() + "/slow")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	var upstream *natsMsg
	select {
	case upstream = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	closed := make(chan error, 1)
	go func() { closed <- h.Close(t.Context()) }()
	// Close has begun once the ingress refuses new connections.
	trellistest.WaitFor(t, 5*time.Second, "the ingress to stop accepting", func() bool {
		c, err := net.Dial("tcp", h.HTTPAddr())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	upstream.Respond([]byte("finished"))
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "finished" {
		t.Fatalf("in-flight HTTP request ended with %q", got)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "trellis test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestIngressServesTLSAndLimitsHeaders(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, MaxHeaderBytes: 4096,
			Routes: []host.HTTPRoute{{Pattern: "POST /echo", Subject: "echo"}}}
	})
	h.Load("echo", trellistest.Wasm(t, echoSrc))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + h.HTTPAddr() + "/echo"
	resp, body := trellistest.HTTP(t, client, "POST", url, "secure")
	if resp.StatusCode != 200 || body != "secure" || resp.TLS == nil {
		t.Fatalf("TLS echo: %d %q", resp.StatusCode, body)
	}
	resp, _ = trellistest.HTTP(t, client, "POST", url, "x", "X-Big", strings.Repeat("a", 16<<10))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized headers: %d", resp.StatusCode)
	}
}

func TestIngressRefusesHalfTLSConfig(t *testing.T) {
	_, err := host.New(t.Context(), host.Options{
		Bus:  bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()},
		HTTP: host.HTTPOptions{Listen: "127.0.0.1:0", TLSCert: "/nonexistent/cert.pem"},
	})
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("error %v", err)
	}
}
