package reload_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/reload"
	"github.com/trellis-mesh/trellis/host/sign"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// TestWronglySignedVersionIsRefusedAndTheOldKeepsServing: under
// RequireSigned, a new version that is unsigned, signed by a key not
// trusted, changed after signing or carries two signatures is refused
// before it is compiled, with an error naming the plugin, its file and the
// reason, and the version serving goes on serving; a rightly signed one
// replaces it.
func TestWronglySignedVersionIsRefusedAndTheOldKeepsServing(t *testing.T) {
	fx := versions(t)
	pub, priv, _ := sign.GenerateKey()
	_, stranger, _ := sign.GenerateKey()
	mustSign := func(b []byte, k ed25519.PrivateKey) []byte {
		t.Helper()
		s, err := sign.Sign(b, k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.TrustedKeys = []ed25519.PublicKey{pub}
		o.RequireSigned = true
	})
	path := filepath.Join(t.TempDir(), "versioned.wasm")
	want := []reload.Want{{Spec: host.Spec{Name: "versioned", Path: path, Subjects: []string{"versioned"}}}}
	rec := reload.New(h.Host, h.Logger())
	ctx := context.Background()

	writeByRename(t, path, mustSign(fx.v1, priv))
	if res := rec.Apply(ctx, want); len(res.Loaded) != 1 {
		t.Fatalf("signed v1 not loaded: %+v", res)
	}
	waitAnswer(t, h.Client(), "v1:")

	v2 := mustSign(fx.v2, priv)
	tampered := bytes.Clone(v2)
	tampered[len(fx.v2)-3] ^= 0xff // in the code: compiling would fail differently
	for _, tc := range []struct {
		name   string
		module []byte
		says   string
	}{
		{"unsigned", fx.v2, "module is not signed"},
		{"untrusted key", mustSign(fx.v2, stranger), "signed by a key that is not trusted"},
		{"changed after signing", tampered, "signature does not match"},
		{"two signatures", append(bytes.Clone(v2), v2[len(fx.v2):]...), "2 trellis.signature sections"},
	} {
		writeByRename(t, path, tc.module)
		res := rec.Apply(ctx, want)
		err := res.Failed["versioned"]
		if err == nil || !strings.Contains(err.Error(), `plugin "versioned"`) || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "signed plugins are required") {
			t.Fatalf("%s: error %v; want one naming the plugin, %s and %q", tc.name, err, path, tc.says)
		}
		if m, err := h.Client().Request("versioned", []byte("x"), time.Second); err != nil || string(m.Data) != "v1:x" {
			t.Fatalf("%s: the old version stopped serving: %v", tc.name, err)
		}
	}

	writeByRename(t, path, v2)
	if res := rec.Apply(ctx, want); len(res.Reloaded) != 1 {
		t.Fatalf("signed v2 not reloaded: %+v", res)
	}
	waitAnswer(t, h.Client(), "v2:")
}

// TestSignaturesAreIgnoredUnlessRequired: without RequireSigned an
// unsigned module loads, and so does a signed one (the section is a custom
// section the compiler skips).
func TestSignaturesAreIgnoredUnlessRequired(t *testing.T) {
	fx := versions(t)
	_, priv, _ := sign.GenerateKey()
	signed, err := sign.Sign(fx.v2, priv)
	if err != nil {
		t.Fatal(err)
	}
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"unsigned": fx.v1, "signed": signed} {
		path := filepath.Join(dir, name+".wasm")
		os.WriteFile(path, b, 0o644)
		if err := h.Host.Load(context.Background(), host.Spec{Name: name, Path: path, Subjects: []string{name}}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if m, err := h.Client().Request("signed", []byte("x"), time.Second); err != nil || string(m.Data) != "v2:x" {
		t.Fatalf("the signed module does not answer: %v", err)
	}
}

// TestRequireSignedWithoutKeysIsRefused: a host that would refuse every
// plugin does not start.
func TestRequireSignedWithoutKeysIsRefused(t *testing.T) {
	_, err := host.New(context.Background(), host.Options{RequireSigned: true})
	if err == nil || !strings.Contains(err.Error(), "no key is trusted") {
		t.Fatalf("host.New = %v", err)
	}
}
