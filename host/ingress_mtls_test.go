package host_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), name+".pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return &testCA{cert: cert, key: key, file: file}
}

// client issues a client certificate for cn, with a DNS name and a URI.
func (ca *testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spiffe, _ := url.Parse("spiffe://trellis.test/" + cn)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{"Trellis Test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{cn + ".internal"}, URIs: []*url.URL{spiffe},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A client certificate the ingress verifies identifies the client to
// policies and handlers as claims; a route whose acl policy requires one
// refuses a client without, and one forging the claims; a certificate
// from another CA is refused at the handshake.
func TestIngressIdentifiesClientsByVerifiedCertificates(t *testing.T) {
	certFile, keyFile, serverPool := selfSigned(t)
	ca, other := newTestCA(t, "trellis-test-ca"), newTestCA(t, "another-ca")
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.HTTP = host.HTTPOptions{Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, ClientCA: ca.file}
	})
	h.Load("acl", trellistest.Wasm(t, "../plugins/acl"), func(s *host.Spec) {
		s.Policy = true
		s.Config = map[string]string{"require_client_cert": "true"}
	})
	h.Load("claims", trellistest.Wasm(t, claimsSrc), func(s *host.Spec) { s.Subjects = []string{"claims"} })
	if err := h.SetHTTPRoutes([]host.HTTPRoute{{Pattern: "POST /claims", Subject: "claims", Policies: []host.PolicyRef{{Name: "acl"}}}}); err != nil {
		t.Fatal(err)
	}
	url := "https://" + h.HTTPAddr() + "/claims"
	with := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool, Certificates: certs}}}
	}

	resp, body := trellistest.HTTP(t, with(ca.client(t, "billing")), "POST", url, "")
	seen := resp.Header.Get("X-Seen-Claims")
	if resp.StatusCode != 200 || !strings.Contains(seen, "Tls-Cn") || !strings.Contains(seen, "Tls-San") || !strings.Contains(seen, "Tls-Subject") {
		t.Fatalf("with a certificate: %d %q, claims seen %q", resp.StatusCode, body, seen)
	}
	if resp, body := trellistest.HTTP(t, with(), "POST", url, ""); resp.StatusCode != 403 {
		t.Fatalf("without a certificate: %d %q", resp.StatusCode, body)
	}
	if resp, body := trellistest.HTTP(t, with(), "POST", url, "", "X-Claim-Tls-Subject", "CN=billing", "X-Claim-Tls-Cn", "billing"); resp.StatusCode != 403 {
		t.Fatalf("forged claims: %d %q", resp.StatusCode, body)
	}
	// Sent whatever the server asks for, a certificate from another CA
	// fails the handshake.
	foreign := other.client(t, "billing")
	insist := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }}}}
	req, _ := http.NewRequest("POST", url, nil)
	if resp, err := insist.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate from another CA was accepted: %d", resp.StatusCode)
	}
}

func TestIngressClientCANeedsTLS(t *testing.T) {
	ca := newTestCA(t, "ca")
	_, err := host.New(t.Context(), host.Options{HTTP: host.HTTPOptions{Listen: "127.0.0.1:0", ClientCA: ca.file},
		Bus: bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "needs TLS") {
		t.Fatalf("error %v", err)
	}
}
