package config

import (
	"strings"
	"testing"
)

func TestParseNATSAuthentication(t *testing.T) {
	src := `
nats {
  listen        = "0.0.0.0:4222"
  export        = ["orders.>", "greet"]
  export_stream = ["notifications.>"]
  tls_cert      = "tls/server.pem"
  tls_key       = "tls/server-key.pem"
  tls_ca        = "tls/ca.pem"
  credentials   = "host.creds"

  user "alice" {
    password  = "$2a$11$abcdefghijklmnopqrstuu"
    publish   = ["greet"]
    subscribe = ["_INBOX.>"]
  }
  user "svc" {
    nkey           = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
    deny_publish   = ["orders.admin.>"]
    deny_subscribe = ["notifications.private.>"]
  }
}
`
	c, err := Parse([]byte(src), "/etc/trellis/trellis.hcl")
	if err != nil {
		t.Fatal(err)
	}
	n := c.NATS
	if len(n.Users) != 2 || n.Users[0].Name != "alice" || n.Users[0].Password == "" ||
		n.Users[0].Permissions.PublishAllow[0] != "greet" || n.Users[0].Permissions.SubscribeAllow[0] != "_INBOX.>" ||
		n.Users[1].NKey == "" || n.Users[1].Permissions.PublishDeny[0] != "orders.admin.>" ||
		n.Users[1].Permissions.SubscribeDeny[0] != "notifications.private.>" {
		t.Fatalf("users: %+v", n.Users)
	}
	if strings.Join(n.Export, ",") != "orders.>,greet" || n.ExportStream[0] != "notifications.>" {
		t.Fatalf("exports: %v %v", n.Export, n.ExportStream)
	}
	if n.TLS.Cert != "/etc/trellis/tls/server.pem" || n.TLS.Key != "/etc/trellis/tls/server-key.pem" || n.TLS.CA != "/etc/trellis/tls/ca.pem" {
		t.Fatalf("tls: %+v", n.TLS)
	}
	if n.Auth.CredsFile != "/etc/trellis/host.creds" || n.AllowUnauthenticated {
		t.Fatalf("auth: %+v", n.Auth)
	}

	c, err = Parse([]byte("nats {\n  url = \"tls://nats:4222\"\n  username = \"h\"\n  password = \"p\"\n  tls_ca = \"ca.pem\"\n}\n"), "/t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.Auth.User != "h" || c.NATS.Auth.Password != "p" || c.NATS.TLS.CA != "/ca.pem" {
		t.Fatalf("external: %+v", c.NATS)
	}
	c, err = Parse([]byte("nats {\n  listen = \"0.0.0.0:4222\"\n  allow_unauthenticated = true\n}\n"), "/t.hcl")
	if err != nil || !c.NATS.AllowUnauthenticated {
		t.Fatalf("allow_unauthenticated: %+v %v", c, err)
	}
}

func TestParseRefusesBadNATSAuthentication(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"no secret", "nats {\n  user \"a\" {\n  }\n}\n", `t.hcl:2:3: Invalid NATS user: user "a" needs password`},
		{"both", "nats {\n  user \"a\" {\n    password = \"x\"\n    nkey = \"UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4\"\n  }\n}\n", `not both`},
		{"seed as nkey", "nats {\n  user \"a\" {\n    nkey = \"SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\"\n  }\n}\n", `nkey must be a user public key`},
		{"duplicate", "nats {\n  user \"a\" {\n    password = \"x\"\n  }\n  user \"a\" {\n    password = \"y\"\n  }\n}\n", `t.hcl:5:3: Duplicate NATS user`},
		{"bad permission", "nats {\n  user \"a\" {\n    password = \"x\"\n    publish = [\"a..b\"]\n  }\n}\n", `t.hcl:4:15: Invalid subject: publish`},
		{"export without users", "nats {\n  export = [\"greet\"]\n}\n", `Export without users`},
		{"users with url", "nats {\n  url = \"nats://x\"\n  user \"a\" {\n    password = \"x\"\n  }\n}\n", `user blocks configure the embedded server`},
		{"username without url", "nats {\n  username = \"a\"\n  password = \"b\"\n}\n", `username authenticates the host to an external NATS`},
		{"two credentials", "nats {\n  url = \"nats://x\"\n  token = \"t\"\n  credentials = \"c\"\n}\n", `Conflicting NATS credentials`},
		{"half tls", "nats {\n  tls_cert = \"c.pem\"\n}\n", `Incomplete TLS settings`},
		{"export everything", "nats {\n  export = [\">\"]\n  user \"a\" {\n    password = \"x\"\n  }\n}\n", `t.hcl:2:12: Invalid export`},
		{"export KV", "nats {\n  export_stream = [\"$KV.trellis.>\"]\n  user \"a\" {\n    password = \"x\"\n  }\n}\n", `Invalid export`},
		{"ca alone", "nats {\n  tls_ca = \"ca.pem\"\n}\n", `tls_ca verifies client certificates`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src), "t.hcl")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
