package tracing

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestFromEnv(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		EnvEndpoint: "http://collector:4317", EnvProtocol: "grpc",
		EnvSampler: "parentbased_traceidratio", EnvSamplerArg: "0.25", EnvServiceName: "edge",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint != "http://collector:4317" || c.Protocol != ProtocolGRPC || c.Ratio() != 0.25 || c.ServiceName != "edge" || !c.Enabled() {
		t.Fatalf("%+v", c)
	}
	// The traces-specific variables win over the general ones.
	c, _ = FromEnv(env(map[string]string{EnvEndpoint: "http://a:1", EnvTracesEndpoint: "http://b:2/v1/traces",
		EnvProtocol: "grpc", EnvTracesProtocol: "http/protobuf"}))
	if c.Endpoint != "http://b:2/v1/traces" || c.Protocol != ProtocolHTTP {
		t.Fatalf("%+v", c)
	}
	for vars, want := range map[string]map[string]string{
		"disabled":      {EnvEndpoint: "http://a:1", EnvSDKDisabled: "true"},
		"exporter none": {EnvEndpoint: "http://a:1", EnvTracesExporter: "none"},
		"no endpoint":   {EnvServiceName: "x"},
	} {
		if c, err := FromEnv(env(want)); err != nil || c.Enabled() {
			t.Errorf("%s: %+v, %v: want off", vars, c, err)
		}
	}
	// An argument for a sampler that takes none is ignored, as the
	// specification says.
	if c, err := FromEnv(env(map[string]string{EnvSampler: "always_on", EnvSamplerArg: "x"})); err != nil || c.SampleRatio != nil {
		t.Fatalf("%+v, %v", c, err)
	}
}

// Each bad variable is refused by name.
func TestFromEnvRefusesBadValues(t *testing.T) {
	for name, c := range map[string]map[string]string{
		EnvSDKDisabled:    {EnvSDKDisabled: "maybe"},
		EnvTracesExporter: {EnvTracesExporter: "zipkin"},
		EnvEndpoint:       {EnvEndpoint: "collector:4317"},
		EnvTracesEndpoint: {EnvTracesEndpoint: "http://" + strings.Repeat("x", MaxEndpointLen)},
		EnvProtocol:       {EnvProtocol: "http/json"},
		EnvSampler:        {EnvSampler: "jaeger_remote"},
		EnvSamplerArg:     {EnvSamplerArg: "2"},
		EnvServiceName:    {EnvServiceName: strings.Repeat("s", MaxServiceNameLen+1)},
	} {
		_, err := FromEnv(env(c))
		if err == nil || !strings.HasPrefix(err.Error(), name+" ") {
			t.Errorf("%v: got %v, want an error naming %s", c, err, name)
		}
	}
	if _, err := FromEnv(env(map[string]string{EnvSamplerArg: "half"})); err == nil || !strings.Contains(err.Error(), EnvSamplerArg) {
		t.Errorf("a ratio that is no number: %v", err)
	}
}

func TestOverride(t *testing.T) {
	half := 0.5
	c := Config{Endpoint: "http://env:1", ServiceName: "env", Protocol: ProtocolGRPC}.
		Override(Config{Endpoint: "http://hcl:2", SampleRatio: &half})
	if c.Endpoint != "http://hcl:2" || c.ServiceName != "env" || c.Protocol != ProtocolGRPC || c.Ratio() != 0.5 {
		t.Fatalf("%+v", c)
	}
	if c := (Config{Endpoint: "http://a:1", Disabled: true}).Override(Config{Endpoint: "http://b:1"}); c.Enabled() {
		t.Fatal("OTEL_SDK_DISABLED lost")
	}
}

// Off, the provider is OpenTelemetry's no-op one, which the host
// recognises as nothing to do; shutting it down does nothing.
func TestNewOff(t *testing.T) {
	p, err := New(context.Background(), Config{ServiceName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.TracerProvider().(noop.TracerProvider); !ok || p.Enabled() {
		t.Fatalf("off provider is %T", p.TracerProvider())
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{Endpoint: "localhost:4317"}); err == nil {
		t.Fatal("New took an endpoint that is no URL")
	}
}

// The carrier finds trace context in any case, writes one spelling, and
// ignores values over their limits.
func TestHeaderCarrier(t *testing.T) {
	h := HeaderCarrier{"Traceparent": {"a"}, "TRACESTATE": {strings.Repeat("s", 600)}}
	if h.Get("traceparent") != "a" || h.Get("tracestate") != "" {
		t.Fatalf("get: %q %q", h.Get("traceparent"), h.Get("tracestate"))
	}
	h.Set("traceparent", "b")
	if len(h["Traceparent"]) != 0 || h["traceparent"][0] != "b" {
		t.Fatalf("set: %v", h)
	}
	h2 := HeaderCarrier{"traceparent": {strings.Repeat("0", 300)}}
	if h2.Get("traceparent") != "" {
		t.Fatal("an oversized traceparent was read")
	}
}
