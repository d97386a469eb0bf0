package config

import (
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/admin"
)

func TestParseAdmin(t *testing.T) {
	c, err := Parse([]byte("admin {}\n"), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Listen != admin.DefaultListen || c.Admin.Deploy {
		t.Errorf("default listen %q, deploy API %v", c.Admin.Listen, c.Admin.Deploy)
	}
	if c, err := Parse([]byte("admin {\n  deploy = true\n}\n"), "t.hcl"); err != nil || !c.Admin.Deploy {
		t.Errorf("deploy = true: %+v, %v", c.Admin, err)
	}
	c, err = Parse([]byte(`admin {
  listen = "0.0.0.0:9180"
  token  = "s3cret"
}
`), "t.hcl")
	if err != nil || c.Admin.Listen != "0.0.0.0:9180" || c.Admin.Token != "s3cret" {
		t.Fatalf("%+v, %v", c.Admin, err)
	}
	if c, err := Parse([]byte("log_level = \"info\"\n"), "t.hcl"); err != nil || c.Admin.Listen != "" {
		t.Fatalf("no admin block: %+v, %v", c.Admin, err)
	}
}

func TestParseAdminRefusesUnprotectedNonLoopback(t *testing.T) {
	for src, want := range map[string]string{
		"admin {\n  listen = \"0.0.0.0:9180\"\n}\n":                "t.hcl:1:1: Unprotected admin endpoint",
		"admin {\n  listen = \":9180\"\n  username = \"ops\"\n}\n": "Incomplete admin credentials",
		"admin {\n  listen = \"nonsense\"\n}\n":                    "Invalid admin listen address",
	} {
		_, err := Parse([]byte(src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
