package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// startServe runs the serve command on a free loopback port until the
// test ends, and returns the issuer URL it printed.
func startServe(t *testing.T, keyFile string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--key", keyFile}, w, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case u := <-line:
		return u
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve printed no URL")
	}
	return ""
}

func getJSON(t *testing.T, url string, v any) http.Header {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.Header
}

// keySet fetches the issuer's keys by its discovery document, by kid.
func keySet(t *testing.T, issuer string) map[string]*ecdsa.PublicKey {
	t.Helper()
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, issuer+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != issuer {
		t.Fatalf("discovery names issuer %q, want %q", doc.Issuer, issuer)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if h := getJSON(t, doc.JWKSURI, &set); !strings.Contains(h.Get("Cache-Control"), "max-age=") {
		t.Errorf("no max-age: %q", h.Get("Cache-Control"))
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" || k["d"] != "" {
			t.Fatalf("unexpected key %v", k)
		}
		x, _ := base64.RawURLEncoding.DecodeString(k["x"])
		y, _ := base64.RawURLEncoding.DecodeString(k["y"])
		keys[k["kid"]] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	}
	return keys
}

func mintCLI(t *testing.T, keyFile, issuer string, args ...string) string {
	t.Helper()
	var out strings.Builder
	if err := run(context.Background(), append([]string{"mint", "--key", keyFile, "--issuer", issuer}, args...), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

// verify checks tok against the issuer's published keys and returns its
// claims and kid.
func verify(t *testing.T, tok string, keys map[string]*ecdsa.PublicKey) (jwt.MapClaims, string) {
	t.Helper()
	var kid string
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ = tk.Header["kid"].(string)
		return keys[kid], nil
	}, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatalf("token does not verify with the published keys: %v", err)
	}
	return claims, kid
}

// TestServeMintRotate: serve writes a key and publishes it; a minted token
// verifies with it and says what it was minted with; after rotate the set
// holds the new key and the old one, and new tokens name the new kid.
func TestServeMintRotate(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys", "issuer.pem")
	issuer := startServe(t, keyFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	keys := keySet(t, issuer)
	if len(keys) != 1 {
		t.Fatalf("%d keys, want 1", len(keys))
	}
	tok := mintCLI(t, keyFile, issuer, "--sub", "alice", "--scope", "orders:read  orders:write", "--roles", "clerk, admin")
	claims, firstKid := verify(t, tok, keys)
	roles, _ := claims["realm_access"].(map[string]any)["roles"].([]any)
	if claims["iss"] != issuer || claims["sub"] != "alice" || claims["aud"] != "orders" || claims["scope"] != "orders:read orders:write" ||
		len(roles) != 2 || roles[0] != "clerk" || roles[1] != "admin" {
		t.Fatalf("claims %v", claims)
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > time.Hour || time.Until(exp.Time) < 50*time.Minute {
		t.Fatalf("exp %v, want in an hour", exp)
	}

	if err := run(context.Background(), []string{"rotate", "--key", keyFile}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	keys = keySet(t, issuer)
	if len(keys) != 2 || keys[firstKid] == nil {
		t.Fatalf("after rotate: %d keys, the old one there: %v", len(keys), keys[firstKid] != nil)
	}
	verify(t, tok, keys) // the old token still verifies
	if _, kid := verify(t, mintCLI(t, keyFile, issuer, "--sub", "bob"), keys); kid == firstKid {
		t.Fatal("a token minted after rotate names the old kid")
	}
}

// TestRefusesBadInput: oversized, malformed or wrong key files, a listen
// address beyond loopback, and mint requests past their bounds.
func TestRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	for name, file := range map[string]string{
		"huge":     write("huge.pem", []byte(strings.Repeat("A", maxKeyFile+1))),
		"not PEM":  write("text.pem", []byte("hello")),
		"an RSA":   write("rsa.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})),
		"a P-384":  write("p384.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER})),
		"garbage":  write("garbage.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("xx")})),
		"a public": write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("xx")})),
	} {
		if _, err := loadKey(file); err == nil {
			t.Errorf("%s key file loaded", name)
		}
		if err := run(context.Background(), []string{"mint", "--key", file, "--sub", "a"}, io.Discard, io.Discard); err == nil {
			t.Errorf("%s key file: mint succeeded", name)
		}
	}
	for _, listen := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0", "nonsense"} {
		if err := run(context.Background(), []string{"serve", "--listen", listen, "--key", filepath.Join(dir, "k.pem")}, io.Discard, io.Discard); err == nil {
			t.Errorf("serve on %q", listen)
		}
	}
	k, err := newKey(filepath.Join(dir, "good.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ok := mintRequest{sub: "a", aud: "orders", issuer: "http://127.0.0.1:8090", ttl: time.Hour}
	for name, m := range map[string]func(*mintRequest){
		"no sub":         func(m *mintRequest) { m.sub = "" },
		"huge sub":       func(m *mintRequest) { m.sub = strings.Repeat("a", maxField+1) },
		"sub with CRLF":  func(m *mintRequest) { m.sub = "a\r\nb" },
		"huge scope":     func(m *mintRequest) { m.scope = strings.Repeat("s ", maxScope) },
		"too many roles": func(m *mintRequest) { m.roles = strings.Repeat("r,", maxRoles) + "r" },
		"zero ttl":       func(m *mintRequest) { m.ttl = 0 },
		"ttl of 2 days":  func(m *mintRequest) { m.ttl = 48 * time.Hour },
	} {
		bad := ok
		m(&bad)
		if _, err := mint(k, bad); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
	if _, err := mint(k, ok); err != nil {
		t.Fatalf("a good request: %v", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command ran")
	}
}
