package config_test

import (
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/sign"
)

func TestTrustedKeysAndRequireSigned(t *testing.T) {
	pub, _, _ := sign.GenerateKey()
	key := sign.FormatPublicKey(pub)
	c, err := config.Parse([]byte(`trusted_keys = ["`+key+`"]
require_signed = true
`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !c.RequireSigned || len(c.TrustedKeys) != 1 || !c.TrustedKeys[0].Equal(pub) {
		t.Fatalf("RequireSigned %v, TrustedKeys %v", c.RequireSigned, c.TrustedKeys)
	}
	if c, err := config.Parse(nil, "t.hcl"); err != nil || c.RequireSigned {
		t.Fatalf("signatures required by default: %v", err)
	}

	for _, tc := range []struct{ src, says string }{
		{"trusted_keys = [\"ed25519:short\"]\n", `t.hcl:1:1: Invalid trusted key: public key "ed25519:short"`},
		{"trusted_keys = [\"rsa:AAAA\"]\n", `does not start with "ed25519:"`},
		{"require_signed = true\n", "t.hcl:1:1: No trusted key: require_signed needs trusted_keys"},
	} {
		_, err := config.Parse([]byte(tc.src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: error %v; want %q", tc.src, err, tc.says)
		}
	}
}
