package config

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/dev/build"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// CheckOptions tune Check.
type CheckOptions struct {
	// BuildDir, if set, is where Check builds plugin sources, to check the
	// modules they make like any other. Without it, a source directory is
	// only checked to exist and to be a plugin source Build recognises.
	BuildDir string
}

// Check verifies, without starting a bus, what Parse cannot see and run
// would refuse: every plugin file exists and is a module that compiles,
// fits the ABI and initialises (its trellis_init runs, with no bus: its
// publishes and requests fail); a policy block's module is a policy and a
// plugin block's a handler with subjects; no subject is served by two
// handlers unless both are shared, counting the subjects modules declare;
// sources exist (or build, see CheckOptions); TLS files load. It reports
// every problem, each with the file, line and column of the block
// concerned, as an *Error. Compiling costs what loading does: about 0.6 s
// for a large Go module, far less for others.
func Check(ctx context.Context, c *Config, opts CheckOptions) error {
	d := &decoder{}
	served := make([]Plugin, 0, len(c.Plugins))
	for _, p := range c.Plugins {
		path := p.Path
		if p.Source != "" {
			if _, err := build.Detect(p.Source); err != nil {
				d.add(p.Range, "Invalid plugin source", fmt.Sprintf("plugin %q: %v", p.Name, err))
				continue
			}
			if opts.BuildDir == "" {
				continue
			}
			path = filepath.Join(opts.BuildDir, p.Name+".wasm")
			if err := build.Build(ctx, p.Source, path); err != nil {
				d.add(p.Range, "Plugin source does not build", fmt.Sprintf("plugin %q: %v", p.Name, err))
				continue
			}
		}
		subjects, ok := d.checkModule(ctx, p, path)
		if ok && !p.Policy {
			q := p
			q.Subjects = subjects
			served = append(served, q)
		}
	}
	d.subjectConflicts(served)
	if c.HTTP.TLSCert != "" && c.HTTP.TLSKey != "" {
		if _, err := tls.LoadX509KeyPair(c.HTTP.TLSCert, c.HTTP.TLSKey); err != nil {
			d.add(c.httpRange, "Invalid TLS settings", err.Error())
		}
	}
	if err := bus.Check(c.NATS); err != nil {
		d.add(c.natsRange, "Invalid nats settings", err.Error())
	}
	if d.diags.HasErrors() {
		return &Error{d.diags}
	}
	return nil
}

// checkModule loads one plugin's module as the host would, and returns the
// subjects it serves.
func (d *decoder) checkModule(ctx context.Context, p Plugin, path string) ([]string, bool) {
	st, err := os.Stat(path)
	if err == nil && st.Size() > plugin.MaxModuleSize {
		err = fmt.Errorf("%s: %d bytes, more than a module may have (%d)", path, st.Size(), plugin.MaxModuleSize)
	}
	var wasm []byte
	if err == nil {
		wasm, err = os.ReadFile(path)
	}
	if err != nil {
		d.add(p.Range, "Missing plugin file", fmt.Sprintf("plugin %q: %v", p.Name, err))
		return nil, false
	}
	// One instance is all a check needs; the pool's size changes nothing
	// in what is refused.
	m, err := plugin.Load(ctx, wasm, plugin.Options{Name: p.Name, Config: p.Config, PoolSize: 1,
		Timeout: p.Timeout, MemoryLimit: p.MemoryLimit, Grants: p.Granted()})
	if err != nil {
		d.add(p.Range, "Plugin refused", err.Error())
		return nil, false
	}
	// Nothing is in use, so Close does not wait; the caller's values go along.
	defer m.Close(context.WithoutCancel(ctx))
	kind := "plugin"
	if p.Policy {
		kind = "policy"
	}
	switch {
	case p.Policy && !m.IsPolicy():
		d.add(p.Range, "Not a policy", fmt.Sprintf("%s %q: its module does not export trellis_policy; load it as a plugin block?", kind, p.Name))
		return nil, false
	case !p.Policy && !m.IsHandler():
		d.add(p.Range, "Not a handler", fmt.Sprintf("%s %q: its module does not export trellis_handle; load it as a policy block?", kind, p.Name))
		return nil, false
	case p.Policy:
		return nil, true
	}
	subjects := p.Subjects
	if len(subjects) == 0 {
		for _, s := range m.Subscriptions() {
			subjects = append(subjects, s.Subject)
		}
	}
	if len(subjects) == 0 {
		d.add(p.Range, "No subjects", fmt.Sprintf("plugin %q subscribes to nothing: set subjects, or call subscribe in trellis_init", p.Name))
		return nil, false
	}
	return subjects, true
}
