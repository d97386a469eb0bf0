package config

import (
	"testing"
	"time"
)

func TestParseJWKSBlocks(t *testing.T) {
	src := `policy "auth" {
  path = "auth.wasm"
  jwks "corp" {
    issuer      = "https://idp.example/realms/corp"
    min_refresh = "30s"
    max_refresh = "2h"
  }
  jwks "partner" {
    uri = "https://partner.example/certs"
  }
  config = { jwt_issuers = "corp,partner", "jwks.partner.issuer" = "https://partner.example" }
}
`
	c, err := Parse([]byte(src), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	ks := c.Plugins[0].KeySources
	if len(ks) != 2 || ks[0].Name != "corp" || ks[0].Issuer != "https://idp.example/realms/corp" || ks[0].MinRefresh != 30*time.Second ||
		ks[0].MaxRefresh != 2*time.Hour || ks[1].URI != "https://partner.example/certs" || ks[1].MinRefresh != 0 {
		t.Fatalf("key sources %+v", ks)
	}
}

func TestParseJWKSErrorsNameFileAndLine(t *testing.T) {
	block := func(body string) string {
		return "policy \"auth\" {\n  path = \"auth.wasm\"\n  jwks \"corp\" {\n" + body + "  }\n}\n"
	}
	for _, c := range []struct{ name, src, want string }{
		{"no url", block(""), "t.hcl:3:3: Invalid jwks: key set \"corp\": set one of a JWKS URL and an OpenID issuer"},
		{"both", block("    uri = \"https://a/certs\"\n    issuer = \"https://a\"\n"), "t.hcl:3:3: Invalid jwks"},
		{"not http", block("    uri = \"file:///etc/keys\"\n"), "t.hcl:3:3: Invalid jwks: key set \"corp\": \"file:///etc/keys\" is not an http or https URL"},
		{"refresh too often", block("    uri = \"https://a/certs\"\n    min_refresh = \"10ms\"\n"), "t.hcl:5:19: Invalid min_refresh: 10ms is not between 1s and 24h0m0s"},
		{"refresh not a duration", block("    uri = \"https://a/certs\"\n    max_refresh = 60\n"), "t.hcl:5:19: Invalid max_refresh"},
		{"bounds reversed", block("    uri = \"https://a/certs\"\n    min_refresh = \"2h\"\n    max_refresh = \"1h\"\n"), "t.hcl:3:3: Invalid jwks"},
		{"unknown attribute", block("    uri = \"https://a/certs\"\n    url = \"https://a\"\n"), "t.hcl:5:5: Unsupported argument"},
		{"bad name", "policy \"auth\" {\n  path = \"auth.wasm\"\n  jwks \"co rp\" {\n    uri = \"https://a/certs\"\n  }\n}\n", "t.hcl:3:3: Invalid jwks: key set \"co rp\""},
		{"twice", "policy \"auth\" {\n  path = \"auth.wasm\"\n  jwks \"a\" {\n    uri = \"https://a/certs\"\n  }\n  jwks \"a\" {\n    uri = \"https://b/certs\"\n  }\n}\n", "t.hcl:6:3: Invalid jwks: key set \"a\" given twice"},
		{"config sets the host's key", "policy \"auth\" {\n  path = \"auth.wasm\"\n  jwks \"a\" {\n    issuer = \"https://a\"\n  }\n  config = { \"jwks.a.issuer\" = \"https://b\" }\n}\n", "t.hcl:3:3: Invalid jwks: config key \"jwks.a.issuer\" is filled in by the host"},
	} {
		t.Run(c.name, func(t *testing.T) { wantParseError(t, c.src, c.want) })
	}
}
