package config

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/trellis-mesh/trellis/host/tracing"
)

// The tracing block exports the host's spans by OpenTelemetry (package
// tracing):
//
//	tracing {
//	  endpoint     = "http://127.0.0.1:4317"  # the OTLP receiver (Jaeger, a collector)
//	  protocol     = "grpc"                   # or "http/protobuf" (the default; Jaeger's is :4318)
//	  sample_ratio = 0.1                      # share of new traces kept (default 1); a sampled parent's choice is followed
//	  sampler      = "parentbased_traceidratio"  # or always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off
//	  service_name = "trellis"                # service.name of the spans (default)
//	}
//
// The standard OTEL_* variables configure tracing too (see
// tracing.FromEnv); what the block sets wins over them. Without either,
// the host does not trace.
type tracingSchema struct {
	Endpoint    hcl.Expression `hcl:"endpoint,optional"`
	Protocol    hcl.Expression `hcl:"protocol,optional"`
	Sampler     hcl.Expression `hcl:"sampler,optional"`
	SampleRatio hcl.Expression `hcl:"sample_ratio,optional"`
	ServiceName hcl.Expression `hcl:"service_name,optional"`
	DefRange    hcl.Range      `hcl:",def_range"`
}

// tracing reads the tracing block into c.Tracing, refusing, at the
// attribute's file:line, what tracing.New would refuse.
func (d *decoder) tracing(ts *tracingSchema, c *Config) {
	if ts == nil {
		return
	}
	exprs := map[string]hcl.Expression{
		tracing.FieldEndpoint: ts.Endpoint, tracing.FieldProtocol: ts.Protocol,
		tracing.FieldSampler: ts.Sampler, tracing.FieldServiceName: ts.ServiceName,
	}
	t := &c.Tracing
	for name, dst := range map[string]*string{tracing.FieldEndpoint: &t.Endpoint, tracing.FieldProtocol: &t.Protocol,
		tracing.FieldSampler: &t.Sampler, tracing.FieldServiceName: &t.ServiceName} {
		e := exprs[name]
		if !set(e) {
			continue
		}
		v, ok := d.value(e)
		if !ok {
			continue
		}
		if v.IsNull() || v.Type() != cty.String || v.AsString() == "" {
			d.exprErr(e, "Invalid tracing "+name, "want a non-empty string")
			continue
		}
		*dst = v.AsString()
		if err := (tracing.Config{Endpoint: t.Endpoint, Protocol: t.Protocol, Sampler: t.Sampler, ServiceName: t.ServiceName}).Check(); err != nil {
			var fe *tracing.FieldError
			if errors.As(err, &fe) && fe.Field == name {
				d.exprErr(e, "Invalid tracing "+name, fmt.Sprintf("%s: %s", d.written(e), fe.Why))
				*dst = ""
			}
		}
	}
	if s, num, ok := d.scalar(ts.SampleRatio, tracing.FieldSampleRatio); ok {
		var r float64
		var err error
		if num != nil {
			r, _ = num.Float64()
		} else {
			r, err = strconv.ParseFloat(s, 64)
		}
		if err != nil || !(r >= 0 && r <= 1) {
			d.exprErr(ts.SampleRatio, "Invalid sample_ratio", d.written(ts.SampleRatio)+" is not a number from 0 to 1")
		} else {
			t.SampleRatio = &r
		}
	}
}
