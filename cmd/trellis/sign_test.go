package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/sign"
)

// TestKeygenAndSign: keygen writes a private key only its owner can read
// and a public key in config form; sign appends a signature that key
// verifies, in place or to -o; neither overwrites a key.
func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k.key")
	code, out, errOut := runCLI("keygen", "-o", key)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, mode %v", err, fi.Mode())
	}
	pubText, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sign.ParsePublicKey(string(pubText))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `trusted_keys = ["`+strings.TrimSpace(string(pubText))+`"]`) {
		t.Errorf("keygen does not print the config line: %q", out)
	}
	if code, _, errOut := runCLI("keygen", "-o", key); code != 1 || !strings.Contains(errOut, "not overwriting") {
		t.Errorf("keygen over an existing key: %d %q", code, errOut)
	}

	module := filepath.Join(dir, "echo.wasm")
	if code, _, errOut := runCLI("build", "../../abi/echo.wat", "-o", module); code != 0 {
		t.Fatalf("build: %s", errOut)
	}
	unsigned, _ := os.ReadFile(module)
	signedCopy := filepath.Join(dir, "copy.wasm")
	for _, args := range [][]string{{"sign", module, "--key", key, "-o", signedCopy}, {"sign", module, "--key", key}} {
		code, out, errOut := runCLI(args...)
		if code != 0 || !strings.Contains(out, "signed ") {
			t.Fatalf("%v: %d %q %q", args, code, out, errOut)
		}
	}
	for _, f := range []string{module, signedCopy} {
		b, _ := os.ReadFile(f)
		if _, err := sign.Verify(b, []ed25519.PublicKey{pub}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if !strings.HasPrefix(string(b), string(unsigned)) {
			t.Errorf("%s: signing changed the module's bytes", f)
		}
	}
	if code, _, errOut := runCLI("sign", module, "--key", key); code != 1 || !strings.Contains(errOut, "signed already") {
		t.Errorf("signing twice: %d %q", code, errOut)
	}
	if code, _, _ := runCLI("sign", module); code != 2 {
		t.Errorf("sign without --key: exit %d", code)
	}
	for _, verb := range []string{"keygen", "sign"} {
		if code, _, errOut := runCLI(verb, "--help"); code != 0 || !strings.Contains(errOut, "Usage: trellis "+verb) {
			t.Errorf("%s --help: %d %q", verb, code, errOut)
		}
	}
}
