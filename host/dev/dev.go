// Package dev is `trellis dev`: serve every plugin found under a directory,
// building sources first, with no configuration.
package dev

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/build"
	"github.com/trellis-mesh/trellis/host/plugin"
	"github.com/trellis-mesh/trellis/host/scan"
)

// Options configure dev mode.
type Options struct {
	// BuildDir receives the modules built from sources.
	BuildDir string
	// Strict grants plugins nothing beyond replying, as in production.
	// By default dev mode lets every plugin publish and request on any
	// subject, so that pipelines work without a config file.
	Strict bool
	// Spec is applied to every plugin: pool size, timeout, memory limit.
	Spec host.Spec
	// Logger (default: discard).
	Logger hclog.Logger
}

// Result lists what Load did.
type Result struct {
	Loaded  []string
	Failed  map[string]error
	Skipped []scan.Skipped
}

// Load scans dir, builds every source plugin into opts.BuildDir, and loads
// every plugin into h. A plugin that fails to build or load is logged and
// reported in Result.Failed; the others still load. The error is for a dir
// that cannot be scanned.
func Load(ctx context.Context, h *host.Host, dir string, opts Options) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	res := Result{Failed: map[string]error{}}
	found, skipped, err := scan.Dir(dir)
	if err != nil {
		return res, err
	}
	res.Skipped = skipped
	for _, s := range skipped {
		log.Warn("skipped", "path", s.Path, "reason", s.Reason)
	}
	if !opts.Strict {
		log.Warn("dev mode: plugins may publish and request on any subject; use `trellis run --config` for least privilege")
	}
	for _, p := range found {
		spec := opts.Spec
		spec.Name = p.Name
		spec.Path = p.Wasm
		if !opts.Strict {
			spec.Grants = plugin.Grants{Publish: []string{">"}, Request: []string{">"}}
		}
		if p.Source != "" {
			spec.Path = filepath.Join(opts.BuildDir, p.Name+".wasm")
			start := time.Now()
			if err := build.Build(ctx, p.Source, spec.Path); err != nil {
				log.Error("build failed", "plugin", p.Name, "source", p.Source, "error", err)
				res.Failed[p.Name] = err
				continue
			}
			log.Info("built", "plugin", p.Name, "lang", p.Lang, "source", p.Source, "time", time.Since(start).Round(time.Millisecond))
		}
		if err := h.Load(ctx, spec); err != nil {
			res.Failed[p.Name] = err
			continue
		}
		res.Loaded = append(res.Loaded, p.Name)
	}
	warnSharedSubjects(h, log)
	return res, nil
}

// warnSharedSubjects says when two plugins serve one subject: each has its
// own queue group, so each gets every message and a requester gets the
// fastest answer.
func warnSharedSubjects(h *host.Host, log hclog.Logger) {
	by := map[string][]string{}
	for _, info := range h.Plugins() {
		for _, s := range info.Subjects {
			by[s] = append(by[s], info.Name)
		}
	}
	for s, names := range by {
		if len(names) > 1 {
			log.Warn("several plugins serve one subject; each gets every message", "subject", s, "plugins", strings.Join(names, ","))
		}
	}
}
