package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracesPath is what an HTTP endpoint without a path of its own gets: the
// OTLP/HTTP path of traces.
const TracesPath = "/v1/traces"

// Provider is the tracer provider a host traces with, and what flushes
// and stops its exporter. Its methods are safe for concurrent use.
type Provider struct {
	cfg Config
	sdk *sdktrace.TracerProvider // nil when off
	tp  trace.TracerProvider
}

// New makes the Provider cfg describes: off (a no-op TracerProvider, no
// exporter, nothing started) unless cfg.Enabled(), else an OpenTelemetry
// SDK TracerProvider whose spans a batching processor exports by OTLP to
// cfg.Endpoint. It fails for a Config Check refuses. The exporter connects
// lazily: a receiver that is down costs dropped spans (logged through
// OpenTelemetry's error handler), never a failed start.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	cfg = cfg.WithDefaults()
	if !cfg.Enabled() {
		return &Provider{cfg: cfg, tp: noop.NewTracerProvider()}, nil
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithSchemaURL(semconv.SchemaURL), resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(Sampler(cfg)),
		sdktrace.WithResource(res),
	)
	return &Provider{cfg: cfg, sdk: sdk, tp: sdk}, nil
}

// newExporter makes the OTLP exporter of cfg's protocol. The endpoint's
// scheme says whether it speaks TLS (https) or plain text (http).
func newExporter(ctx context.Context, cfg Config) (*otlptrace.Exporter, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Protocol == ProtocolGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
}

// Sampler returns the sampler cfg names, with its ratio for the ratio
// samplers; DefaultSampler when cfg names none.
func Sampler(cfg Config) sdktrace.Sampler {
	ratio := sdktrace.TraceIDRatioBased(cfg.Ratio())
	switch cfg.Sampler {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample()
	case SamplerAlwaysOff:
		return sdktrace.NeverSample()
	case SamplerTraceIDRatio:
		return ratio
	case SamplerParentBasedAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	}
	return sdktrace.ParentBased(ratio)
}

// Config returns the configuration the Provider was made with, defaults
// filled in.
func (p *Provider) Config() Config { return p.cfg }

// Enabled reports whether the Provider exports spans.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// TracerProvider is what to give host.Options.TracerProvider: the SDK's,
// or OpenTelemetry's no-op one when the Provider is off.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// ForceFlush exports the spans ended so far and waits, until ctx ends,
// for the receiver to take them.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// ShutdownTimeout bounds Shutdown when its context has no deadline.
const ShutdownTimeout = 5 * time.Second

// Shutdown exports what is left and stops the exporter; spans started
// afterwards are dropped. Call it after the host has closed, so that the
// spans of its last messages go out. It waits until ctx ends, or
// ShutdownTimeout when ctx has no deadline.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ShutdownTimeout)
		defer cancel()
	}
	return p.sdk.Shutdown(ctx)
}
