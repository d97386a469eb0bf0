package reload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host/dev/build"
)

// Builder builds plugins from source when their source changed: a source
// whose fingerprint (build.Fingerprint: its files' content, its toolchain,
// the SDK and path dependencies it reads) matches the stamp beside its
// module is not built again, in this process or the next, and one whose
// last build failed is not tried again until it changes, so a broken source
// costs one log line, not one per event. It is safe for concurrent use on
// different sources.
type Builder struct {
	log hclog.Logger

	mu      sync.Mutex
	sources map[string]*source // by source directory
}

type source struct {
	mu     sync.Mutex // one build of a source at a time
	stamp  string     // fingerprint of the last failed build
	failed error      // of the last build attempt
}

// NewBuilder returns a Builder that logs builds and failures to log.
func NewBuilder(log hclog.Logger) *Builder {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Builder{log: log, sources: map[string]*source{}}
}

// Build brings out up to date with the source in dir (build.Update): it
// builds when the source's fingerprint changed since out was built or out
// is missing, and says so in built; a failure is the caller's to log. While
// the source has not changed since a build failed, it returns that failure
// without building. A build cut short by ctx is no verdict: the next call
// tries again.
func (b *Builder) Build(ctx context.Context, name, dir, out string) (built bool, err error) {
	b.mu.Lock()
	src := b.sources[dir]
	if src == nil {
		src = &source{}
		b.sources[dir] = src
	}
	b.mu.Unlock()
	src.mu.Lock()
	defer src.mu.Unlock()

	if src.failed != nil {
		if fp, err := build.Fingerprint(dir); err == nil && fp == src.stamp {
			return false, fmt.Errorf("plugin %q: source unchanged since its build failed: %w", name, src.failed)
		}
	}
	start := time.Now()
	fp, built, err := build.Update(ctx, dir, out)
	if ctx.Err() != nil {
		return false, ctx.Err() // not the source's fault: try again next time
	}
	if !built {
		src.failed = nil
		if err != nil {
			return false, fmt.Errorf("plugin %q: source: %w", name, err)
		}
		return false, nil
	}
	src.stamp, src.failed = fp, err
	if err != nil {
		return true, err
	}
	b.log.Info("built", "plugin", name, "source", dir, "time", time.Since(start).Round(time.Millisecond))
	return true, nil
}
