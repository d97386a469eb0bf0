package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host/tracing"
)

// startTracing makes the tracer provider of the OTEL_* environment
// variables with file's settings (a config's tracing block) over them;
// off when neither names an endpoint. On a bad value it prints why and
// returns nil and exit code 2. The caller shuts the provider down after
// the host has closed, so the last spans go out.
func startTracing(verb string, file tracing.Config, log hclog.Logger, stderr io.Writer) (*tracing.Provider, int) {
	cfg, err := tracing.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "trellis %s: tracing: %v\n", verb, err)
		return nil, 2
	}
	p, err := tracing.New(context.Background(), cfg.Override(file))
	if err != nil {
		fmt.Fprintf(stderr, "trellis %s: %v\n", verb, err)
		return nil, 2
	}
	if p.Enabled() {
		c := p.Config()
		log.Info("tracing", "endpoint", c.Endpoint, "protocol", c.Protocol, "sampler", c.Sampler,
			"sample_ratio", c.Ratio(), "service", c.ServiceName)
	}
	return p, 0
}

// stopTracing exports the spans left and stops the exporter.
func stopTracing(p *tracing.Provider, log hclog.Logger) {
	if err := p.Shutdown(context.Background()); err != nil {
		log.Warn("tracing: spans not exported at shutdown", "error", err)
	}
}
