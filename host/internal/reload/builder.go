package reload

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host/dev/build"
)

// Builder builds plugins from source when their source changed: a source
// whose files (names, sizes, modification times) are as they were at its
// last build is not built again, and one whose last build failed is not
// tried again until it changes, so a broken source costs one log line, not
// one per event. It is safe for concurrent use on different sources.
type Builder struct {
	log hclog.Logger

	mu      sync.Mutex
	sources map[string]*source // by source directory
}

type source struct {
	mu     sync.Mutex // one build of a source at a time
	stamp  string     // of the last build attempt
	failed error      // of the last build attempt
}

// NewBuilder returns a Builder that logs builds and failures to log.
func NewBuilder(log hclog.Logger) *Builder {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Builder{log: log, sources: map[string]*source{}}
}

// Build brings out up to date with the source in dir: it builds when the
// source changed since the last attempt or out is missing, and says so in
// built; a failure is the caller's to log. While the source has not
// changed since a build failed, it returns that failure without building.
// A build cut short by ctx is no verdict: the next call tries again.
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

	stamp, err := sourceStamp(dir)
	if err != nil {
		return false, fmt.Errorf("plugin %q: source: %w", name, err)
	}
	_, statErr := os.Stat(out)
	if stamp == src.stamp && (statErr == nil || src.failed != nil) {
		if src.failed != nil {
			return false, fmt.Errorf("plugin %q: source unchanged since its build failed: %w", name, src.failed)
		}
		return false, nil
	}
	start := time.Now()
	err = build.Build(ctx, dir, out)
	if ctx.Err() != nil {
		return false, ctx.Err() // not the source's fault: try again next time
	}
	src.stamp, src.failed = stamp, err
	if err != nil {
		return true, err
	}
	b.log.Info("built", "plugin", name, "source", dir, "time", time.Since(start).Round(time.Millisecond))
	return true, nil
}
