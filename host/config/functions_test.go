package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvAndFileKeepSecretsOutOfTheConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secret"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret", "tokens"), []byte("dev:abc,ops:def\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRELLIS_TEST_ADMIN_TOKEN", "s3cret")
	src := `admin {
  listen = "0.0.0.0:9180"
  token  = env("TRELLIS_TEST_ADMIN_TOKEN")
}

policy "auth" {
  path   = "auth.wasm"
  config = { tokens = file("secret/tokens") }
}
`
	file := filepath.Join(dir, "trellis.hcl")
	c, err := Parse([]byte(src), file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != "s3cret" {
		t.Errorf("admin token %q", c.Admin.Token)
	}
	if len(c.Plugins) != 1 || c.Plugins[0].Config["tokens"] != "dev:abc,ops:def" {
		t.Errorf("auth config %+v", c.Plugins)
	}
	secret := filepath.Join(dir, "secret", "tokens")
	if len(c.Files) != 1 || c.Files[0] != secret {
		t.Errorf("files read %q, want %q", c.Files, secret)
	}
	// The loop watches the secret and fingerprints it with the config.
	if p := paths(file, c); len(p) < 2 || p[1] != secret {
		t.Errorf("watched %q", p)
	}
}

func TestEnvAndFileRefusalsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxReadFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("TRELLIS_TEST_UNSET")
	for _, c := range []struct{ expr, want string }{
		{`env("TRELLIS_TEST_UNSET")`, "environment variable TRELLIS_TEST_UNSET is not set"},
		{`env("")`, "is not an environment variable's name"},
		{`env("A=B")`, "is not an environment variable's name"},
		{`env("` + strings.Repeat("A", 300) + `")`, "is not an environment variable's name"},
		{`file("missing")`, "missing"},
		{`file("big")`, "MaxReadFile"},
		{`file(".")`, "not a regular file"},
		{`file("/dev/zero")`, "not a regular file"},
		{`file("")`, "is not a path"},
		{`file()`, "Not enough function arguments"},
		{`nosuch("x")`, "Call to unknown function"},
	} {
		src := "admin {\n  listen = \"0.0.0.0:9180\"\n  token  = " + c.expr + "\n}\n"
		_, err := Parse([]byte(src), filepath.Join(dir, "t.hcl"))
		if err == nil || !strings.Contains(err.Error(), "t.hcl:3:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want t.hcl:3 and %q", c.expr, err, c.want)
		}
	}
}
