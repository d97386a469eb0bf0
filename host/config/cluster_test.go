package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/bus"
)

func TestParseCluster(t *testing.T) {
	src := `
nats {
  name   = "trellis-0"
  listen = "127.0.0.1:4222"
  cluster {
    name          = "mesh"
    listen        = "0.0.0.0:6222"
    advertise     = "trellis-0.trellis:6222"
    routes        = ["nats-route://trellis-0.trellis:6222", "nats-route://trellis-1.trellis:6222"]
    username      = "route"
    password_file = "secret/route-password"
  }
  leafnodes {
    remote {
      urls        = ["nats-leaf://hub:7422", "tls://hub2:7422"]
      credentials = "hub.creds"
    }
  }
  jetstream {
    replicas = 3
    domain   = "edge"
  }
}
`
	c, err := Parse([]byte(src), "/etc/trellis/trellis.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := bus.Cluster{Name: "mesh", Listen: "0.0.0.0:6222", Advertise: "trellis-0.trellis:6222",
		Routes: []string{"nats-route://trellis-0.trellis:6222", "nats-route://trellis-1.trellis:6222"},
		User:   "route", PasswordFile: "/etc/trellis/secret/route-password"}
	if !reflect.DeepEqual(c.NATS.Cluster, want) {
		t.Fatalf("cluster %+v\nwant    %+v", c.NATS.Cluster, want)
	}
	if len(c.NATS.LeafRemotes) != 1 || c.NATS.LeafRemotes[0].CredsFile != "/etc/trellis/hub.creds" || len(c.NATS.LeafRemotes[0].URLs) != 2 {
		t.Fatalf("leaf remotes %+v", c.NATS.LeafRemotes)
	}
	if c.NATS.Replicas != 3 || c.NATS.JetStreamDomain != "edge" || c.NATS.DisableJetStream || c.NATS.Name != "trellis-0" {
		t.Fatalf("nats %+v", c.NATS)
	}

	// The attribute form of jetstream still reads, and a cluster on
	// loopback needs no credentials.
	c, err = Parse([]byte("nats {\n  jetstream = false\n}\n"), "t.hcl")
	if err != nil || !c.NATS.DisableJetStream {
		t.Fatalf("jetstream = false: %+v %v", c, err)
	}
	c, err = Parse([]byte("nats {\n  cluster {\n    listen = \"127.0.0.1:6222\"\n    routes = [\"nats://127.0.0.1:6223\"]\n  }\n  jetstream {\n    enabled = true\n  }\n}\n"), "t.hcl")
	if err != nil || c.NATS.Cluster.Listen != "127.0.0.1:6222" || c.NATS.Replicas != 0 {
		t.Fatalf("loopback cluster: %+v %v", c, err)
	}
	// Replicas apply to an external cluster too.
	c, err = Parse([]byte("nats {\n  url = \"nats://a:4222,nats://b:4222\"\n  jetstream {\n    replicas = 3\n  }\n}\n"), "t.hcl")
	if err != nil || c.NATS.Replicas != 3 {
		t.Fatalf("external replicas: %+v %v", c, err)
	}
}

func TestParseRefusesBadClusterSettings(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"no listen", "nats {\n  cluster {\n    routes = []\n  }\n}\n", `t.hcl:2:11: Missing required argument: The argument "listen" is required`},
		{"random port", "nats {\n  cluster {\n    listen = \"127.0.0.1:0\"\n  }\n}\n", `t.hcl:2:3: Invalid cluster: listen "127.0.0.1:0": want HOST:PORT with a fixed port`},
		{"open routes", "nats {\n  cluster {\n    listen = \"0.0.0.0:6222\"\n  }\n}\n", `t.hcl:2:3: Unauthenticated cluster: routes would listen on 0.0.0.0:6222`},
		{"bad route", "nats {\n  cluster {\n    listen = \"127.0.0.1:6222\"\n    routes = [\"http://a:6222\"]\n  }\n}\n", `t.hcl:4:14: Invalid routes: route "http://a:6222": want nats-route://HOST:PORT`},
		{"password in route", "nats {\n  cluster {\n    listen = \"127.0.0.1:6222\"\n    routes = [\"nats-route://u:p@a:6222\"]\n  }\n}\n", `t.hcl:4:14: Invalid routes`},
		{"username alone", "nats {\n  cluster {\n    listen = \"0.0.0.0:6222\"\n    username = \"r\"\n  }\n}\n", `t.hcl:2:3: Invalid cluster: username needs password_file`},
		{"both passwords", "nats {\n  cluster {\n    listen = \"0.0.0.0:6222\"\n    username = \"r\"\n    password = \"p\"\n    password_file = \"f\"\n  }\n}\n", `not both`},
		{"cluster with url", "nats {\n  url = \"nats://a:4222\"\n  cluster {\n    listen = \"127.0.0.1:6222\"\n  }\n}\n", `t.hcl:3:3: Invalid nats setting: a cluster block makes the embedded server`},
		{"unknown cluster setting", "nats {\n  cluster {\n    listen = \"127.0.0.1:6222\"\n    route = []\n  }\n}\n", `t.hcl:4:5: Unsupported argument`},
		{"leafnodes without remote", "nats {\n  leafnodes {\n  }\n}\n", `t.hcl:2:3: Invalid leafnodes`},
		{"leaf url with password", "nats {\n  leafnodes {\n    remote {\n      urls = [\"nats-leaf://u:p@hub:7422\"]\n    }\n  }\n}\n", `t.hcl:4:14: Invalid urls`},
		{"leaf no urls", "nats {\n  leafnodes {\n    remote {\n      urls = []\n    }\n  }\n}\n", `t.hcl:4:14: Invalid urls`},
		{"replicas out of range", "nats {\n  jetstream {\n    replicas = 7\n  }\n}\n", `t.hcl:3:16: Invalid replicas: 7 is out of range; want a whole number from 1 to 5`},
		{"replicas without cluster", "nats {\n  jetstream {\n    replicas = 3\n  }\n}\n", `t.hcl:1:1: Replicas without a cluster`},
		{"replicas with jetstream off", "nats {\n  jetstream {\n    enabled = false\n    replicas = 1\n  }\n}\n", `t.hcl:2:3: Invalid jetstream: replicas and domain configure JetStream`},
		{"bad domain", "nats {\n  jetstream {\n    domain = \"a.b\"\n  }\n}\n", `t.hcl:2:3: Invalid jetstream: domain "a.b"`},
		{"unknown jetstream setting", "nats {\n  jetstream {\n    replica = 3\n  }\n}\n", `t.hcl:3:5: Unsupported argument`},
		{"unknown nats setting", "nats {\n  clustr = 1\n}\n", `t.hcl:2:3: Unsupported argument`},
		{"two jetstream blocks", "nats {\n  jetstream {\n  }\n  jetstream {\n  }\n}\n", `t.hcl:4:3: Duplicate jetstream block`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src), "t.hcl")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant %q", err, c.want)
			}
		})
	}
}
