package bus_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/bus"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, as PEM files in a temporary directory.
func certs(t *testing.T) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return write("ca.pem", "CERTIFICATE", caDER), serverCert, serverKey, clientCert, clientKey
}

func TestTLSWithClientCertificates(t *testing.T) {
	ca, sc, sk, cc, ck := certs(t)
	b := start(t, bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true,
		TLS:    bus.TLS{Cert: sc, Key: sk, CA: ca},
		Users:  []bus.User{{Name: "alice", Password: "pw"}},
		Export: []string{"greet"}})
	// The host's in-process connection needs no certificate.
	serve(t, b, "greet", "over TLS")
	if nc, err := bus.Connect(b.ClientURL(), bus.Credentials{User: "alice", Password: "pw"}); err == nil {
		nc.Close()
		t.Fatal("a client that does not trust the server's CA connected")
	}
	if nc, err := bus.Connect(b.ClientURL(), bus.Credentials{User: "alice", Password: "pw", TLS: bus.TLS{CA: ca}}); err == nil {
		nc.Close()
		t.Fatal("a client without a certificate connected to a server that verifies clients")
	}
	nc, err := bus.Connect(b.ClientURL(), bus.Credentials{User: "alice", Password: "pw", TLS: bus.TLS{Cert: cc, Key: ck, CA: ca}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Fatal("the server does not require TLS")
	}
	if m, err := nc.Request("greet", nil, 2*time.Second); err != nil || string(m.Data) != "over TLS" {
		t.Fatalf("request over TLS: %v %v", m, err)
	}
	// The host connects to an external server with the same settings.
	ext := start(t, bus.Options{URL: b.ClientURL(), Auth: bus.Credentials{User: "alice", Password: "pw",
		TLS: bus.TLS{Cert: cc, Key: ck, CA: ca}}})
	if m, err := ext.Conn().Request("greet", nil, 2*time.Second); err != nil || string(m.Data) != "over TLS" {
		t.Fatalf("external connection over TLS: %v %v", m, err)
	}
}
