package config

import (
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host/tracing"
)

func TestParseTracing(t *testing.T) {
	c, err := Parse([]byte(`tracing {
  endpoint     = "http://127.0.0.1:4317"
  protocol     = "grpc"
  sample_ratio = 0.1
  service_name = "orders"
}
`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tc := c.Tracing
	if tc.Endpoint != "http://127.0.0.1:4317" || tc.Protocol != tracing.ProtocolGRPC || tc.Ratio() != 0.1 ||
		tc.ServiceName != "orders" || !tc.Enabled() {
		t.Fatalf("%+v", tc)
	}
	if c, err := Parse([]byte("tracing {\n  sample_ratio = \"0.5\"\n}\n"), "t.hcl"); err != nil || c.Tracing.Ratio() != 0.5 || c.Tracing.Enabled() {
		t.Fatalf("a block without an endpoint (the environment may give one): %+v, %v", c.Tracing, err)
	}
	if c, err := Parse([]byte("log_level = \"info\"\n"), "t.hcl"); err != nil || c.Tracing.Enabled() || c.Tracing.SampleRatio != nil {
		t.Fatalf("no tracing block: %+v, %v", c.Tracing, err)
	}
}

// Each bad value is refused at its own line, saying what is wanted.
func TestParseTracingRefusesBadValues(t *testing.T) {
	for src, want := range map[string]string{
		"tracing {\n  endpoint = \"127.0.0.1:4317\"\n}\n":                           "t.hcl:2:14: Invalid tracing endpoint",
		"tracing {\n  endpoint = \"ftp://x:1\"\n}\n":                                "want a URL such as http://",
		"tracing {\n  endpoint = \"http://u:p@x:1\"\n}\n":                           "credentials do not belong",
		"tracing {\n  endpoint = \"http://" + strings.Repeat("a", 3000) + "\"\n}\n": "more than 2048",
		"tracing {\n  endpoint = \"\"\n}\n":                                         "t.hcl:2:14: Invalid tracing endpoint: want a non-empty string",
		"tracing {\n\n  protocol = \"thrift\"\n}\n":                                 "t.hcl:3:14: Invalid tracing protocol",
		"tracing {\n  sampler = \"sometimes\"\n}\n":                                 "t.hcl:2:13: Invalid tracing sampler",
		"tracing {\n  sample_ratio = 1.5\n}\n":                                      "t.hcl:2:18: Invalid sample_ratio: 1.5 is not a number from 0 to 1",
		"tracing {\n  sample_ratio = -0.1\n}\n":                                     "Invalid sample_ratio",
		"tracing {\n  sample_ratio = \"half\"\n}\n":                                 "Invalid sample_ratio",
		"tracing {\n  sample_ratio = 1e999\n}\n":                                    "Number out of range",
		"tracing {\n  service_name = \"a\\nb\"\n}\n":                                "control characters",
		"tracing {\n  service_name = 42\n}\n":                                       "Invalid tracing service_name",
		"tracing {\n  sampel_ratio = 0.1\n}\n":                                      "Unsupported argument",
	} {
		_, err := Parse([]byte(src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
}
