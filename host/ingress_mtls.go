package host

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
)

// maxClientCABytes bounds the CA bundle read for HTTPOptions.ClientCA.
const maxClientCABytes = 1 << 20

// withClientCA makes cfg verify the client certificates a client presents
// against the CAs in file; a client may present none.
func withClientCA(cfg *tls.Config, file string) error {
	if file == "" {
		return nil
	}
	info, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("http ingress client_ca: %w", err)
	}
	if info.Size() > maxClientCABytes {
		return fmt.Errorf("http ingress client_ca %s: %d bytes, more than %d", file, info.Size(), maxClientCABytes)
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("http ingress client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("http ingress client_ca %s: no PEM certificate in it", file)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return nil
}

// clientClaims adds to hdr the claims of the certificate the client
// presented and the ingress verified, if any. The client's own identity
// headers are gone already (requestMessage), so these cannot be forged.
func clientClaims(r *http.Request, hdr map[string][]string) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	leaf := r.TLS.PeerCertificates[0]
	sans := append([]string(nil), leaf.DNSNames...)
	sans = append(sans, leaf.EmailAddresses...)
	for _, u := range leaf.URIs {
		sans = append(sans, u.String())
	}
	claims := [][2]string{
		{abi.ClaimTLSSubject, leaf.Subject.String()},
		{abi.ClaimTLSCN, leaf.Subject.CommonName},
		{abi.ClaimTLSSAN, strings.Join(sans, ",")},
	}
	for _, c := range claims {
		if c[1] == "" {
			continue
		}
		if len(c[1]) > abi.MaxHeaderValueLen {
			return errors.New("client certificate: " + c[0] + " longer than a header value may be")
		}
		hdr[abi.HeaderClaimPrefix+c[0]] = []string{c[1]}
	}
	return nil
}
