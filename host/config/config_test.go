package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const full = `
data_dir      = "state"
log_level     = "debug"
max_in_flight = 64

nats {
  listen      = "127.0.0.1:0"
  max_payload = "4MiB"
}

plugin "greet" {
  path         = "plugins/greet.wasm"
  subjects     = ["greet", "hello.*"]
  queue        = "greeters"
  pool_size    = 3
  timeout      = "250ms"
  memory_limit = "16MiB"
  config       = { greeting = "Bonjour" }
  publish      = ["audit.>"]
  request      = ["users.lookup"]
  env          = { TZ = "UTC" }
  dir "/data" {
    host_path = "data"
  }
}

plugin "enrich" {
  source = "../examples/orders-enrich"
}
`

func TestParseFullConfig(t *testing.T) {
	c, err := Parse([]byte(full), "/etc/trellis/trellis.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/etc/trellis/state" || c.LogLevel != "debug" || c.MaxInFlight != 64 {
		t.Fatalf("top level: %+v", c)
	}
	if c.NATS.Listen != "127.0.0.1:0" || c.NATS.MaxPayload != 4<<20 {
		t.Fatalf("nats: %+v", c.NATS)
	}
	if len(c.Plugins) != 2 {
		t.Fatalf("%d plugins", len(c.Plugins))
	}
	g := c.Plugins[0]
	if g.Name != "greet" || g.Path != "/etc/trellis/plugins/greet.wasm" || g.Queue != "greeters" ||
		len(g.Subjects) != 2 || g.Subjects[1] != "hello.*" || g.PoolSize != 3 ||
		g.Timeout != 250*time.Millisecond || g.MemoryLimit != 16<<20 || g.Config["greeting"] != "Bonjour" ||
		g.Grants.Publish[0] != "audit.>" || g.Grants.Request[0] != "users.lookup" || g.Grants.Env["TZ"] != "UTC" {
		t.Fatalf("greet: %+v", g)
	}
	if d := g.Grants.Dirs; len(d) != 1 || d[0].GuestPath != "/data" || d[0].HostPath != "/etc/trellis/data" || !d[0].ReadOnly {
		t.Fatalf("dirs: %+v", d)
	}
	e := c.Plugins[1]
	if e.Source != "/etc/examples/orders-enrich" || e.Path != filepath.Join("/etc/trellis/state", "build", "enrich.wasm") {
		t.Fatalf("enrich: %+v", e)
	}
}

func TestParseEmptyConfigHasDefaults(t *testing.T) {
	c, err := Parse(nil, "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != ".trellis" || c.LogLevel != "info" || len(c.Plugins) != 0 {
		t.Fatalf("%+v", c)
	}
}

func TestParseErrorsNameFileLineAndColumn(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"syntax", "plugin \"a\" {\n  path = \n}\n", "t.hcl:2:"},
		{"unknown attribute", "plugin \"a\" {\n  path = \"a.wasm\"\n  colour = \"red\"\n}\n", "t.hcl:3:3: Unsupported argument"},
		{"bad duration", "plugin \"a\" {\n  path = \"a.wasm\"\n  timeout = \"soon\"\n}\n", `t.hcl:3:13: Invalid timeout: "soon" is not a positive duration`},
		{"bad size", "plugin \"a\" {\n  path = \"a.wasm\"\n  memory_limit = \"lots\"\n}\n", `t.hcl:3:18: Invalid memory_limit`},
		{"bad subject", "plugin \"a\" {\n  path = \"a.wasm\"\n  subjects = [\"a b\"]\n}\n", `t.hcl:3:14: Invalid subject: "a b"`},
		{"bad grant", "plugin \"a\" {\n  path = \"a.wasm\"\n  publish = [\"x..y\"]\n}\n", `t.hcl:3:13: Invalid subject`},
		{"no path", "plugin \"a\" {\n}\n", `t.hcl:1:1: Missing plugin file`},
		{"both path and source", "plugin \"a\" {\n path = \"x\"\n source = \"y\"\n}\n", `t.hcl:1:1: Conflicting plugin settings`},
		{"duplicate", "plugin \"a\" {\n path = \"x\"\n}\nplugin \"a\" {\n path = \"y\"\n}\n", `t.hcl:4:1: Duplicate plugin: "a" is already defined at t.hcl:1`},
		{"bad level", "log_level = \"loud\"\n", `t.hcl:1:1: Invalid log level`},
		{"pool size", "plugin \"a\" {\n  path = \"a.wasm\"\n  pool_size = 0\n}\n", `t.hcl:3:15: Invalid pool_size`},
		{"url and listen", "nats {\n  url = \"nats://x\"\n  listen = \"127.0.0.1:1\"\n}\n", `Conflicting NATS settings`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantParseError(t, c.src, c.want) })
	}
}

// wantParseError parses src as t.hcl and wants an error containing want.
func wantParseError(t *testing.T, src, want string) {
	t.Helper()
	_, err := Parse([]byte(src), "t.hcl")
	if err == nil {
		t.Fatal("accepted")
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := "plugin \"a\" {\n  path = \"a.wasm\"\n  timeout = \"x\"\n  pool_size = -1\n}\n"
	_, err := Parse([]byte(src), "t.hcl")
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Fatalf("want two problems, one per line: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"1": 1, "64KiB": 64 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30, "2MB": 2e6} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "MiB", "1.5MiB", "12 apples"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

const mesh = `
http {
  listen   = "127.0.0.1:0"
  max_body = "64KiB"
}

policy "auth" {
  path      = "auth.wasm"
  config    = { tokens = "dev-token" }
  fail_open = false
}

policy "metrics" {
  path      = "metrics.wasm"
  fail_open = true
}

plugin "orders" {
  path         = "orders.wasm"
  policies     = ["auth", "metrics"]
  idempotent   = true
  retries      = 2
  backoff      = "20ms"
  fallback     = "{}"
  dead_letter  = "orders.dlq"
  kv_namespace = "shop"
  breaker {
    failures = 5
    cooldown = "3s"
  }
}

http_route "POST /orders" {
  subject  = "orders.created"
  event    = true
  policies = ["auth"]
}

http_route "GET /orders/{id}" {
  subject = "orders.get.{id}"
  timeout = "2s"
}
`

func TestParseMeshConfig(t *testing.T) {
	c, err := Parse([]byte(mesh), "/srv/mesh.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 3 || !c.Plugins[0].Policy || !c.Plugins[1].Policy || c.Plugins[2].Policy {
		t.Fatalf("plugins: %+v", c.Plugins)
	}
	o := c.Plugins[2]
	if len(o.Policies) != 2 || o.Policies[0].Name != "auth" || o.Policies[0].FailOpen || !o.Policies[1].FailOpen {
		t.Fatalf("policies: %+v", o.Policies)
	}
	r := o.Resilience
	if !r.Idempotent || r.Retries != 2 || r.Backoff != 20*time.Millisecond || string(r.Fallback) != "{}" ||
		r.DeadLetter != "orders.dlq" || r.BreakerFailures != 5 || r.BreakerCooldown != 3*time.Second || o.KVNamespace != "shop" {
		t.Fatalf("resilience: %+v", o)
	}
	if c.HTTP.Listen != "127.0.0.1:0" || c.HTTP.MaxBody != 64<<10 || len(c.HTTP.Routes) != 2 {
		t.Fatalf("http: %+v", c.HTTP)
	}
	if rt := c.HTTP.Routes[0]; rt.Pattern != "POST /orders" || !rt.Event || len(rt.Policies) != 1 {
		t.Fatalf("route: %+v", rt)
	}
	if rt := c.HTTP.Routes[1]; rt.Subject != "orders.get.{id}" || rt.Timeout != 2*time.Second {
		t.Fatalf("route: %+v", rt)
	}
}

func TestParseMeshErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"unknown policy", "plugin \"a\" {\n  path = \"a.wasm\"\n  policies = [\"nope\"]\n}\n", `t.hcl:3:14: Unknown policy: no policy block named "nope"`},
		{"retries without idempotent", "plugin \"a\" {\n  path = \"a.wasm\"\n  retries = 2\n}\n", "Retries on a handler not marked idempotent"},
		{"subjects on a policy", "policy \"p\" {\n  path = \"p.wasm\"\n  subjects = [\"x\"]\n}\n", "t.hcl:1:1: Invalid policy setting: subjects"},
		{"route without http", "http_route \"GET /x\" {\n  subject = \"x\"\n}\n", "HTTP route without ingress"},
		{"bad route pattern", "http {}\nhttp_route \"/x\" {\n  subject = \"x\"\n}\n", "t.hcl:2:1: Invalid http_route"},
		{"bad route subject", "http {}\nhttp_route \"GET /x\" {\n  subject = \"a..b\"\n}\n", "Invalid subject"},
		{"half TLS", "http {\n  tls_cert = \"c.pem\"\n}\n", "Incomplete TLS settings"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src), "t.hcl")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseRefusesBadNumbers(t *testing.T) {
	plugin := func(attr string) string {
		return "plugin \"a\" {\n  path = \"a.wasm\"\n  " + attr + "\n}\n"
	}
	cases := []struct{ name, src, want string }{
		{"size overflow", plugin(`memory_limit = "17179869185GiB"`), `t.hcl:3:18: Invalid memory_limit: "17179869185GiB" is more than 2^64-1 bytes`},
		{"size over wasm32", plugin(`memory_limit = "5GiB"`), `t.hcl:3:18: Invalid memory_limit: 5GiB is out of range; want 64KiB to 4GiB`},
		{"size under a page", plugin(`memory_limit = 1000`), `t.hcl:3:18: Invalid memory_limit: 1000 is out of range`},
		{"size negative", plugin(`memory_limit = -65536`), `t.hcl:3:18: Invalid memory_limit: -65536 is not a positive whole number`},
		{"size number overflow", plugin(`memory_limit = 1e30`), `t.hcl:3:18: Invalid memory_limit: 1e30 is more than 2^64-1 bytes`},
		{"tiny number literal", plugin(`memory_limit = 1e-99999`), `t.hcl:3:18: Number out of range: "1e-99999": a number may have at most 64 characters and an exponent from -400 to 400`},
		{"long number literal", plugin(`pool_size = 1` + strings.Repeat("0", 100)), `t.hcl:3:15: Number out of range`},
		{"size fraction", plugin(`memory_limit = "1.5MiB"`), `t.hcl:3:18: Invalid memory_limit: "1.5MiB" is not a size`},
		{"size trailing garbage", plugin(`memory_limit = "64MiBx"`), `t.hcl:3:18: Invalid memory_limit: "64MiBx" is not a size`},
		{"pool trailing garbage", plugin(`pool_size = "8abc"`), `t.hcl:3:15: Invalid pool_size: "8abc" is not a whole number; want a whole number from 1 to 4096`},
		{"pool fraction", plugin(`pool_size = 2.5`), `t.hcl:3:15: Invalid pool_size: 2.5 is not a whole number`},
		{"pool negative", plugin(`pool_size = -3`), `t.hcl:3:15: Invalid pool_size: -3 is out of range`},
		{"pool over max", plugin(`pool_size = 4097`), `t.hcl:3:15: Invalid pool_size: 4097 is out of range`},
		{"pool int64 overflow", plugin(`pool_size = "99999999999999999999"`), `t.hcl:3:15: Invalid pool_size: "99999999999999999999" is out of range`},
		{"pool bool", plugin(`pool_size = true`), `t.hcl:3:15: Invalid pool_size: want a number or a string, not bool`},
		{"retries fraction", plugin("idempotent = true\n  retries = 1.5"), `t.hcl:4:13: Invalid retries: 1.5 is not a whole number`},
		{"retries negative", plugin(`retries = -1`), `t.hcl:3:13: Invalid retries: -1 is out of range; want a whole number from 0 to 10`},
		{"breaker failures", plugin("breaker {\n    failures = \"5x\"\n  }"), `t.hcl:4:16: Invalid failures: "5x" is not a whole number`},
		{"max_in_flight", "max_in_flight = \"64 \"\n", `t.hcl:1:17: Invalid max_in_flight: "64 " is not a whole number`},
		{"max_in_flight zero", "max_in_flight = 0\n", `t.hcl:1:17: Invalid max_in_flight: 0 is out of range`},
		{"duration overflow", plugin(`timeout = "9999999999h"`), `t.hcl:3:13: Invalid timeout: "9999999999h" is not a positive duration`},
		{"duration negative", plugin(`timeout = "-2s"`), `t.hcl:3:13: Invalid timeout: "-2s" is not a positive duration`},
		{"duration without unit", plugin(`timeout = 5`), `t.hcl:3:13: Invalid timeout: 5 has no unit`},
		{"backoff none", plugin(`backoff = "none"`), `t.hcl:3:13: Invalid backoff: "none" is not a positive duration`},
		{"max_payload", "nats {\n  max_payload = \"65MiB\"\n}\n", `t.hcl:2:17: Invalid max_payload: 65MiB is out of range; want 1 to 64MiB`},
		{"max_body", "http {\n  max_body = \"2GiB\"\n}\n", `t.hcl:2:14: Invalid max_body: 2GiB is out of range`},
		{"max_conns", "http {\n  max_conns = \"many\"\n}\n", `t.hcl:2:15: Invalid max_conns: "many" is not a whole number`},
		{"idle_timeout", "http {\n  idle_timeout = \"0s\"\n}\n", `t.hcl:2:18: Invalid idle_timeout: "0s" is not a positive duration`},
		{"config key too long", plugin(`config = { ` + strings.Repeat("k", 257) + ` = "v" }`), `t.hcl:3:12: Invalid config: key`},
		{"config value too long", plugin(`config = { k = "` + strings.Repeat("v", 64<<10+1) + `" }`), `t.hcl:3:12: Invalid config: value of "k" is 65537 bytes; at most 65536 (MaxConfigValueLen)`},
		{"config value null", plugin(`config = { k = null }`), `t.hcl:3:12: Invalid config: "k": want a string`},
		{"config not a map", plugin(`config = ["a"]`), `t.hcl:3:12: Invalid config: want a map of strings`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantParseError(t, c.src, c.want) })
	}
}

func TestParseAcceptsNumbersAsNumbersOrStrings(t *testing.T) {
	src := `max_in_flight = "64"
nats {
  max_payload = 1048576
}
http {
  max_body      = "2 MiB"
  read_timeout  = "1s"
  write_timeout = "20s"
  idle_timeout  = "30s"
  max_conns     = 100
}
plugin "a" {
  path         = "a.wasm"
  pool_size    = "8"
  memory_limit = 4294967296
  timeout      = "none"
  config       = { n = 3, on = true }
}
`
	c, err := Parse([]byte(src), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugins[0]
	if c.MaxInFlight != 64 || c.NATS.MaxPayload != 1<<20 || c.HTTP.MaxBody != 2<<20 || p.PoolSize != 8 ||
		p.MemoryLimit != 4<<30 || p.Timeout != -1 || p.Config["n"] != "3" || p.Config["on"] != "true" {
		t.Fatalf("%+v %+v", c, p)
	}
	if h := c.HTTP; h.ReadTimeout != time.Second || h.WriteTimeout != 20*time.Second || h.IdleTimeout != 30*time.Second || h.MaxConns != 100 {
		t.Fatalf("http: %+v", h)
	}
}

func TestParseSizeRefusesOverflow(t *testing.T) {
	for _, in := range []string{"17179869185GiB", "18446744073709551616", "16777216TiB", "18446744073709551616B", "99999999999999999999999KiB"} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, n)
		}
	}
	if n, err := ParseSize("16777215TiB"); err != nil || n != 16777215<<40 {
		t.Errorf("largest TiB: %d %v", n, err)
	}
	if n, err := ParseSize("18446744073709551615"); err != nil || n != 1<<64-1 {
		t.Errorf("largest: %d %v", n, err)
	}
}

func TestParseRefusesConflictingRoutes(t *testing.T) {
	src := `http {}
http_route "GET /a/{x}" {
  subject = "a"
}
http_route "GET /{y}/b" {
  subject = "b"
}
http_route "GET /a/{x}" {
  subject = "c"
}
http_route "GET /slow" {
  subject = "d"
  timeout = "2m"
}
`
	_, err := Parse([]byte(src), "t.hcl")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"t.hcl:5:1: Invalid http_route", "t.hcl:8:1: Invalid http_route", `"GET /{y}/b" conflicts with pattern "GET /a/{x}": GET /{y}/b and GET /a/{x} both match some paths, like "/a/b".`,
		"t.hcl:13:13: Invalid timeout: 2m0s is not shorter than the http block's write_timeout (1m0s)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestParseRefusesSubjectServedByTwoPlugins(t *testing.T) {
	src := `plugin "a" {
  path     = "a.wasm"
  subjects = ["orders.*"]
}
plugin "b" {
  path     = "b.wasm"
  subjects = ["orders.new"]
}
plugin "c" {
  path     = "c.wasm"
  subjects = ["audit.>"]
  shared   = true
}
plugin "d" {
  path     = "d.wasm"
  subjects = ["audit.x"]
  shared   = true
}
plugin "e" {
  path     = "e.wasm"
  subjects = ["orders.new.x", "other"]
}
`
	_, err := Parse([]byte(src), "t.hcl")
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, `t.hcl:7:14: Subject served by two plugins: "orders.new" of "b" overlaps "orders.*" of "a" (t.hcl:1)`) {
		t.Fatalf("error %q", msg)
	}
	if strings.Count(msg, "\n") != 0 {
		t.Fatalf("want only b's conflict (c and d are shared, e overlaps nothing): %q", msg)
	}
}

func TestDurableBlockDecodesAndRefusesBadValues(t *testing.T) {
	c, err := Parse([]byte(`plugin "orders" {
  path     = "orders.wasm"
  subjects = ["orders.created"]
  durable {
    stream      = "ORDERS"
    max_deliver = 4
    backoff     = ["1s", "10s"]
    max_age     = "24h"
    max_bytes   = "1GiB"
    replicas    = 3
    ordered     = true
  }
}
`), "trellis.hcl")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Plugins[0].Durable
	if d == nil || d.Stream != "ORDERS" || d.MaxDeliver != 4 || len(d.Backoff) != 2 || d.Backoff[1] != 10*time.Second ||
		d.MaxAge != 24*time.Hour || d.MaxBytes != 1<<30 || d.Replicas != 3 || !d.Ordered {
		t.Fatalf("durable %+v", d)
	}
	_, err = Parse([]byte(`plugin "orders" {
  path     = "orders.wasm"
  subjects = ["orders.created"]
  durable {
    max_deliver = 0
    backoff     = ["soon"]
    replicas    = 9
  }
}
`), "trellis.hcl")
	for _, want := range []string{"trellis.hcl:5:", "max_deliver", `"soon"`, "replicas"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
