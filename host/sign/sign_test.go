package sign_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/sign"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// fuzzKey is the key FuzzVerify trusts; its seed is fixed so that the seed
// corpus can hold modules it signed.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func echo(t testing.TB) []byte { return trellistest.WasmBytes(t, "../../abi/echo.wat") }

func TestSignAndVerifyRoundTrip(t *testing.T) {
	module := echo(t)
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := sign.Sign(module, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed[:len(module)], module) {
		t.Fatal("signing changed the module's bytes")
	}
	other, _, _ := sign.GenerateKey()
	key, err := sign.Verify(signed, []ed25519.PublicKey{other, pub})
	if err != nil || !key.Equal(pub) {
		t.Fatalf("Verify = %v, %v", key, err)
	}
	if _, err := sign.Sign(signed, priv); err == nil {
		t.Error("a signed module was signed again")
	}
	text := sign.FormatPublicKey(pub)
	if back, err := sign.ParsePublicKey(" " + text + "\n"); err != nil || !back.Equal(pub) {
		t.Fatalf("ParsePublicKey(%q) = %v, %v", text, back, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	module := echo(t)
	pub, priv, _ := sign.GenerateKey()
	signed, err := sign.Sign(module, priv)
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := sign.GenerateKey()
	byStranger, _ := sign.Sign(module, stranger)
	tampered := bytes.Clone(signed)
	tampered[len(module)/2] ^= 1
	badSig := bytes.Clone(signed)
	badSig[len(badSig)-1] ^= 1
	tail := signed[len(module):]
	twice := append(bytes.Clone(signed), tail...)
	// The signature section, then a custom section after it.
	notLast := append(bytes.Clone(signed), 0, 2, 1, 'x')
	badVersion := bytes.Clone(signed)
	badVersion[len(badVersion)-98] = 9
	short := append(bytes.Clone(module), 0, 19, 17)
	short = append(short, sign.SectionName...)
	short = append(short, 1)

	for _, tc := range []struct {
		name   string
		module []byte
		is     error
		says   string
	}{
		{"unsigned", module, sign.ErrUnsigned, "not signed"},
		{"tampered byte", tampered, sign.ErrBadSignature, "does not match"},
		{"tampered signature", badSig, sign.ErrBadSignature, "does not match"},
		{"untrusted key", byStranger, sign.ErrUntrustedKey, sign.FormatPublicKey(stranger.Public().(ed25519.PublicKey))},
		{"two signature sections", twice, sign.ErrMalformed, "2 trellis.signature sections"},
		{"not the last section", notLast, sign.ErrMalformed, "not the module's last"},
		{"unknown format", badVersion, sign.ErrMalformed, "format version 9"},
		{"short payload", short, sign.ErrMalformed, "1 bytes of payload"},
		{"truncated", signed[:len(signed)-1], sign.ErrMalformed, "declares"},
		{"not a module", []byte("hello, world"), sign.ErrMalformed, "not a WebAssembly module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sign.Verify(tc.module, []ed25519.PublicKey{pub})
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Verify: %v; want %v saying %q", err, tc.is, tc.says)
			}
		})
	}
}

func TestPrivateKeyFile(t *testing.T) {
	_, priv, _ := sign.GenerateKey()
	pem, err := sign.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	os.WriteFile(path, pem, 0o600)
	back, err := sign.LoadPrivateKey(path)
	if err != nil || !back.Equal(priv) {
		t.Fatalf("LoadPrivateKey = %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := sign.LoadPrivateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key others can read: %v", err)
	}
}

// FuzzVerify checks that Verify never panics and never accepts a module
// whose signature is not fuzzKey's over the bytes before its signature
// section. module is any bytes; when withSection is set, a signature section
// with payload (any bytes) is appended to it.
func FuzzVerify(f *testing.F) {
	module := echo(f)
	signed, err := sign.Sign(module, fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed, []byte(nil), false)
	f.Add(module, signed[len(signed)-98:], true)
	f.Add(module, []byte{1, 1}, true)
	f.Add([]byte("\x00asm\x01\x00\x00\x00"), []byte(nil), false)
	trusted := []ed25519.PublicKey{fuzzKey.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, module, payload []byte, withSection bool) {
		if withSection {
			module = appendSection(module, payload)
		}
		key, err := sign.Verify(module, trusted)
		if err != nil {
			if key != nil {
				t.Fatal("a key returned with an error")
			}
			return
		}
		// Accepted: some prefix of the module, ending where a signature
		// section of 116 to 124 bytes would start, is signed by fuzzKey
		// with the module's last 64 bytes. Ed25519 signatures are
		// deterministic, so signing each candidate prefix finds it.
		sig := module[len(module)-ed25519.SignatureSize:]
		for size := 116; size <= 124 && size <= len(module); size++ {
			if bytes.Equal(ed25519.Sign(fuzzKey, module[:len(module)-size]), sig) {
				return
			}
		}
		t.Fatalf("accepted a module fuzzKey did not sign: %x", module)
	})
}

func appendSection(module, payload []byte) []byte {
	name := append([]byte{byte(len(sign.SectionName))}, sign.SectionName...)
	size := len(name) + len(payload)
	out := append(bytes.Clone(module), 0)
	for {
		c := byte(size & 0x7f)
		size >>= 7
		if size != 0 {
			out = append(out, c|0x80)
			continue
		}
		out = append(out, c)
		break
	}
	out = append(out, name...)
	return append(out, payload...)
}
