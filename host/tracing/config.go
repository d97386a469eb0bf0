// Package tracing sets up OpenTelemetry tracing for a Trellis host: a
// Config read from the standard OTEL_* environment variables (and, through
// package config, from an HCL tracing block), and a Provider that exports
// spans by OTLP over gRPC or HTTP. Give Provider.TracerProvider to
// host.Options.TracerProvider; the host then traces every hop of a message
// (HTTP ingress, policies, handler calls, publishes, requests, KV calls)
// and carries W3C trace context in NATS and HTTP headers (HeaderCarrier).
//
// With no endpoint configured, or OTEL_SDK_DISABLED=true, the Provider is
// off: its TracerProvider is OpenTelemetry's no-op one, which the host
// recognises and then does nothing per message for tracing.
package tracing

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The protocols an exporter speaks (OTEL_EXPORTER_OTLP_PROTOCOL's values).
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// The samplers OTEL_TRACES_SAMPLER names. The parent-based ones follow a
// sampled parent's decision (so a trace is kept or dropped whole) and
// apply their own rule to a trace that starts here.
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// Defaults of a Config's fields left zero.
const (
	// DefaultServiceName is the service.name spans are exported under.
	DefaultServiceName = "trellis"
	// DefaultProtocol is the OTLP protocol (the OpenTelemetry default).
	DefaultProtocol = ProtocolHTTP
	// DefaultSampler samples a new trace by SampleRatio and follows a
	// parent's decision.
	DefaultSampler = SamplerParentBasedTraceIDRatio
)

// Bounds on a Config's values, checked by Check and so by everything that
// reads one: a value past them is refused with an error that names it.
const (
	// MaxEndpointLen is the longest endpoint URL, in bytes.
	MaxEndpointLen = 2048
	// MaxServiceNameLen is the longest service name, in bytes.
	MaxServiceNameLen = 256
)

// Config says whether and where a host exports its spans. The zero value
// is off.
type Config struct {
	// Endpoint is the OTLP receiver's URL, http://HOST:PORT (plain text)
	// or https://HOST:PORT: for gRPC the collector's address (Jaeger
	// listens on :4317), for HTTP its base URL (":4318"), to which
	// /v1/traces is added unless the URL has a path. Empty: tracing is off.
	Endpoint string
	// Protocol is ProtocolGRPC or ProtocolHTTP (default DefaultProtocol).
	Protocol string
	// Sampler is one of the Sampler* names (default DefaultSampler).
	Sampler string
	// SampleRatio is the share of new traces the ratio samplers keep,
	// from 0 to 1; nil means 1, every trace.
	SampleRatio *float64
	// ServiceName is the service.name resource of every span (default
	// DefaultServiceName).
	ServiceName string
	// Disabled turns tracing off whatever else is set
	// (OTEL_SDK_DISABLED=true).
	Disabled bool
}

// Enabled reports whether c exports spans: it has an endpoint and is not
// disabled.
func (c Config) Enabled() bool { return !c.Disabled && c.Endpoint != "" }

// Ratio returns SampleRatio, or 1 when it is nil.
func (c Config) Ratio() float64 {
	if c.SampleRatio == nil {
		return 1
	}
	return *c.SampleRatio
}

// WithDefaults returns c with its empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Protocol == "" {
		c.Protocol = DefaultProtocol
	}
	if c.Sampler == "" {
		c.Sampler = DefaultSampler
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	return c
}

// Override returns c with every field that o sets replacing c's: the
// HCL block over the environment, say. o.Disabled turns tracing off;
// it cannot turn on what c disabled.
func (c Config) Override(o Config) Config {
	if o.Endpoint != "" {
		c.Endpoint = o.Endpoint
	}
	if o.Protocol != "" {
		c.Protocol = o.Protocol
	}
	if o.Sampler != "" {
		c.Sampler = o.Sampler
	}
	if o.SampleRatio != nil {
		c.SampleRatio = o.SampleRatio
	}
	if o.ServiceName != "" {
		c.ServiceName = o.ServiceName
	}
	c.Disabled = c.Disabled || o.Disabled
	return c
}

// FieldError is a Config value Check refuses: Field names it as the
// source calls it (an environment variable, an HCL attribute).
type FieldError struct {
	Field string
	Value string
	Why   string
}

// Error names the field, its value (cut to 64 bytes) and why it is refused.
func (e *FieldError) Error() string {
	v := e.Value
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return fmt.Sprintf("%s %q: %s", e.Field, v, e.Why)
}

// Field names Check uses in its errors: the HCL attribute names.
const (
	FieldEndpoint    = "endpoint"
	FieldProtocol    = "protocol"
	FieldSampler     = "sampler"
	FieldSampleRatio = "sample_ratio"
	FieldServiceName = "service_name"
)

// Check refuses a Config whose values are out of their bounds or not
// understood, with a *FieldError naming the first such field (by its HCL
// attribute name). A zero field passes: its default applies.
func (c Config) Check() error {
	if c.Endpoint != "" {
		if why := checkEndpoint(c.Endpoint); why != "" {
			return &FieldError{FieldEndpoint, c.Endpoint, why}
		}
	}
	switch c.Protocol {
	case "", ProtocolGRPC, ProtocolHTTP:
	default:
		return &FieldError{FieldProtocol, c.Protocol, fmt.Sprintf("want %q or %q", ProtocolGRPC, ProtocolHTTP)}
	}
	switch c.Sampler {
	case "", SamplerAlwaysOn, SamplerAlwaysOff, SamplerTraceIDRatio,
		SamplerParentBasedAlwaysOn, SamplerParentBasedAlwaysOff, SamplerParentBasedTraceIDRatio:
	default:
		return &FieldError{FieldSampler, c.Sampler, "want one of always_on, always_off, traceidratio, " +
			"parentbased_always_on, parentbased_always_off, parentbased_traceidratio"}
	}
	if r := c.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		return &FieldError{FieldSampleRatio, strconv.FormatFloat(*r, 'g', -1, 64), "want a number from 0 to 1"}
	}
	if why := checkServiceName(c.ServiceName); why != "" {
		return &FieldError{FieldServiceName, c.ServiceName, why}
	}
	return nil
}

func checkEndpoint(s string) string {
	if len(s) > MaxEndpointLen {
		return fmt.Sprintf("%d bytes, more than %d", len(s), MaxEndpointLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL: " + err.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "want a URL such as http://127.0.0.1:4318 (http:// for plain text, https:// for TLS)"
	}
	if u.Host == "" {
		return "the URL names no host"
	}
	if u.User != nil {
		return "credentials do not belong in the URL: set OTEL_EXPORTER_OTLP_HEADERS"
	}
	return ""
}

func checkServiceName(s string) string {
	if len(s) > MaxServiceNameLen {
		return fmt.Sprintf("%d bytes, more than %d", len(s), MaxServiceNameLen)
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return "control characters are not allowed"
		}
	}
	return ""
}

// The environment variables FromEnv reads, as the OpenTelemetry
// specification names them.
const (
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvSampler        = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
	EnvServiceName    = "OTEL_SERVICE_NAME"
)

// FromEnv reads a Config from the standard variables, through getenv
// (os.Getenv, or a test's map): OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which wins), OTEL_EXPORTER_OTLP_PROTOCOL (or _TRACES_PROTOCOL),
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, OTEL_SERVICE_NAME,
// OTEL_SDK_DISABLED, and OTEL_TRACES_EXPORTER ("otlp", or "none" for
// off). A value it cannot use is an error that names the variable.
// The exporters read the other OTEL_EXPORTER_OTLP_* variables (headers,
// certificates, timeout, compression) themselves.
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	switch v := strings.ToLower(env(EnvSDKDisabled)); v {
	case "", "false":
	case "true":
		c.Disabled = true
	default:
		return c, &FieldError{EnvSDKDisabled, v, `want "true" or "false"`}
	}
	switch v := env(EnvTracesExporter); v {
	case "", "otlp":
	case "none":
		c.Disabled = true
	default:
		return c, &FieldError{EnvTracesExporter, v, `want "otlp" or "none" (the host exports by OTLP only)`}
	}
	field := map[string]string{}
	if v := env(EnvTracesEndpoint); v != "" {
		c.Endpoint, field[FieldEndpoint] = v, EnvTracesEndpoint
	} else if v := env(EnvEndpoint); v != "" {
		c.Endpoint, field[FieldEndpoint] = v, EnvEndpoint
	}
	if v := env(EnvTracesProtocol); v != "" {
		c.Protocol, field[FieldProtocol] = v, EnvTracesProtocol
	} else if v := env(EnvProtocol); v != "" {
		c.Protocol, field[FieldProtocol] = v, EnvProtocol
	}
	if v := env(EnvSampler); v != "" {
		c.Sampler, field[FieldSampler] = v, EnvSampler
	}
	if v := env(EnvSamplerArg); v != "" {
		// The argument is a ratio for the ratio samplers; others ignore it.
		if c.Sampler == "" || strings.HasSuffix(c.Sampler, SamplerTraceIDRatio) {
			r, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return c, &FieldError{EnvSamplerArg, v, "want a number from 0 to 1"}
			}
			c.SampleRatio, field[FieldSampleRatio] = &r, EnvSamplerArg
		}
	}
	if v := env(EnvServiceName); v != "" {
		c.ServiceName, field[FieldServiceName] = v, EnvServiceName
	}
	if err := c.Check(); err != nil {
		if fe, ok := err.(*FieldError); ok && field[fe.Field] != "" {
			fe.Field = field[fe.Field]
		}
		return c, err
	}
	return c, nil
}
