package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxKeyFile bounds a key file: a P-256 key in PKCS #8 PEM is about 240
// bytes.
const maxKeyFile = 16 << 10

// signingKey is the issuer's key and its key id.
type signingKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

// loadKey reads a P-256 private key in PKCS #8 PEM ("PRIVATE KEY") from
// file, refusing a file over maxKeyFile bytes and any other kind of key.
func loadKey(file string) (signingKey, error) {
	f, err := os.Open(file)
	if err != nil {
		return signingKey{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return signingKey{}, fmt.Errorf("%s: %w", file, err)
	}
	if len(b) > maxKeyFile {
		return signingKey{}, fmt.Errorf("%s: more than %d bytes, not a key file", file, maxKeyFile)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return signingKey{}, fmt.Errorf("%s: no PEM block \"PRIVATE KEY\" (PKCS #8)", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return signingKey{}, fmt.Errorf("%s: %w", file, err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return signingKey{}, fmt.Errorf("%s: a %T, want an ECDSA P-256 key (ES256)", file, k)
	}
	return signingKey{priv: priv, kid: thumbprint(&priv.PublicKey)}, nil
}

// newKey writes a new P-256 key to file (mode 0600), through a temporary
// file and a rename, so that a server reading file never sees half a key.
func newKey(file string) (signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return signingKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return signingKey{}, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return signingKey{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".issuer-key-*")
	if err != nil {
		return signingKey{}, err
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return signingKey{}, err
	}
	if err := tmp.Close(); err != nil {
		return signingKey{}, err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return signingKey{}, err
	}
	return signingKey{priv: priv, kid: thumbprint(&priv.PublicKey)}, nil
}

// loadOrCreateKey loads file, or writes a new key there if there is none.
func loadOrCreateKey(file string) (signingKey, bool, error) {
	k, err := loadKey(file)
	if errors.Is(err, os.ErrNotExist) {
		k, err = newKey(file)
		return k, true, err
	}
	return k, false, err
}

// rotate moves the key in file to file.prev, where serve keeps
// publishing it so that tokens it signed stay valid, and writes a new key
// to file.
func rotate(file string) (signingKey, error) {
	if _, err := loadKey(file); err != nil {
		return signingKey{}, fmt.Errorf("rotate: %w", err)
	}
	if err := os.Rename(file, file+".prev"); err != nil {
		return signingKey{}, err
	}
	return newKey(file)
}

// coordinates returns the base64url x and y of a P-256 public key.
func coordinates(pub *ecdsa.PublicKey) (x, y string) {
	raw, err := pub.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		panic("issuer: " + err.Error()) // a key loadKey or newKey made is on the curve
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return b64(raw[1:33]), b64(raw[33:])
}

// thumbprint is the key's RFC 7638 thumbprint: its kid, so that a new
// key always gets a new kid.
func thumbprint(pub *ecdsa.PublicKey) string {
	x, y := coordinates(pub)
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// jwk is the public JWK of k.
func (k signingKey) jwk() map[string]string {
	x, y := coordinates(&k.priv.PublicKey)
	return map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": k.kid, "use": "sig", "alg": "ES256"}
}

// jwks is the key set of the keys in file and file.prev (when there is
// one), as JSON.
func jwks(file string) ([]byte, error) {
	cur, err := loadKey(file)
	if err != nil {
		return nil, err
	}
	keys := []map[string]string{cur.jwk()}
	if prev, err := loadKey(file + ".prev"); err == nil {
		keys = append(keys, prev.jwk())
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return json.Marshal(map[string]any{"keys": keys})
}
