package reload

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/watch"
)

// ConfigLoop keeps a host serving what a config file says: it reapplies the
// file when it, or any plugin file or source it names, changes, and when
// Trigger is called (SIGHUP). A config with errors is refused whole, with
// file:line:col for each problem, and the running setup stays.
type ConfigLoop struct {
	host     Host
	file     string
	rec      *Reconciler
	log      hclog.Logger
	debounce time.Duration
	trigger  chan struct{}

	mu      sync.Mutex // serialises reloads
	current *config.Config
}

// NewConfigLoop returns a loop for file on h. debounce 0 means the default.
func NewConfigLoop(h Host, file string, debounce time.Duration, log hclog.Logger) *ConfigLoop {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &ConfigLoop{host: h, file: file, rec: New(h, log), log: log, debounce: debounce, trigger: make(chan struct{}, 1)}
}

// Wants turns a config into the list of plugins to run.
func Wants(c *config.Config) []Want {
	wants := make([]Want, 0, len(c.Plugins))
	for _, p := range c.Plugins {
		wants = append(wants, Want{Spec: p.Spec, Source: p.Source})
	}
	return wants
}

// Apply applies c now and remembers it as the running config. If the
// ingress would refuse any of c's HTTP routes, nothing of c is applied: the
// result's Failed holds each refused route under "http_route PATTERN".
func (l *ConfigLoop) Apply(ctx context.Context, c *config.Config) Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.apply(ctx, c)
}

func (l *ConfigLoop) apply(ctx context.Context, c *config.Config) Result {
	// The whole config is checked before anything changes: routes the
	// ingress would refuse leave every plugin and route as it is.
	hr, hasHTTP := l.host.(interface {
		SetHTTPRoutes([]host.HTTPRoute) error
	})
	hasHTTP = hasHTTP && c.HTTP.Listen != ""
	if hasHTTP {
		if errs := host.CheckHTTPRoutes(c.HTTP.Routes); len(errs) > 0 {
			res := Result{Failed: map[string]error{}}
			for _, err := range errs {
				l.log.Error("http route refused; nothing of this config is applied", "file", l.file, "error", err)
				res.Failed["http_route "+err.Pattern] = err
			}
			return res
		}
	}
	prev := l.current
	l.current = c
	// Plugins the new config drops go first, so that a plugin renamed (or
	// a subject moved to another plugin) does not meet its old self.
	var unloaded []string
	if prev != nil {
		keep := map[string]bool{}
		for _, p := range c.Plugins {
			keep[p.Name] = true
		}
		var stay []Want
		for _, w := range Wants(prev) {
			if keep[w.Spec.Name] {
				stay = append(stay, w)
			}
		}
		if len(stay) < len(prev.Plugins) {
			unloaded = l.rec.Apply(ctx, stay).Unloaded
		}
	}
	res := l.rec.Apply(ctx, Wants(c))
	res.Unloaded = append(unloaded, res.Unloaded...)
	// HTTP routes after plugins, so that new routes find their policies.
	if hasHTTP {
		if err := hr.SetHTTPRoutes(c.HTTP.Routes); err != nil {
			l.log.Error("http routes refused; the running routes stay", "file", l.file, "error", err)
		}
	}
	return res
}

// Trigger asks for a reload at the next opportunity.
func (l *ConfigLoop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// reloadFile reads the file again and applies it if it is valid.
func (l *ConfigLoop) reloadFile(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := config.Load(l.file)
	if err != nil {
		l.log.Error("config refused; the running setup stays", "file", l.file, "error", err)
		return
	}
	if l.current != nil {
		// Everything of the http block but its routes is the server's.
		newHTTP, oldHTTP := c.HTTP, l.current.HTTP
		newHTTP.Routes, oldHTTP.Routes = nil, nil
		if !reflect.DeepEqual(c.NATS, l.current.NATS) || c.DataDir != l.current.DataDir ||
			!reflect.DeepEqual(newHTTP, oldHTTP) ||
			c.MaxInFlight != l.current.MaxInFlight || c.LogLevel != l.current.LogLevel || c.LogFormat != l.current.LogFormat {
			l.log.Warn("config: nats, the http block's settings (all but routes), data_dir, max_in_flight and log settings apply at the next start", "file", l.file)
		}
	}
	res := l.apply(ctx, c)
	if len(res.Loaded)+len(res.Reloaded)+len(res.Unloaded)+len(res.Failed) > 0 {
		l.log.Info("config applied", "file", l.file, "loaded", res.Loaded, "reloaded", res.Reloaded,
			"unloaded", res.Unloaded, "failed", len(res.Failed))
	}
}

// paths lists what the loop watches for c: the config file, every plugin
// file, and every source directory.
func paths(file string, c *config.Config) []string {
	out := []string{file}
	for _, p := range c.Plugins {
		if p.Source != "" {
			out = append(out, p.Source)
		} else {
			out = append(out, p.Path)
		}
	}
	return out
}

// Run applies c, the config already loaded from the file, then watches
// until ctx ends.
func (l *ConfigLoop) Run(ctx context.Context, c *config.Config, started func(Result)) error {
	res := l.Apply(ctx, c)
	if started != nil {
		started(res)
	}
	for rebuilt := false; ctx.Err() == nil; rebuilt = true {
		l.mu.Lock()
		watched := paths(l.file, l.current)
		l.mu.Unlock()
		w, err := watch.New(watch.Options{Paths: watched, Recursive: true, Debounce: l.debounce, Logger: l.log})
		if err != nil {
			return err
		}
		if rebuilt {
			// Changes made while no watcher was running would go unseen.
			l.reloadFile(ctx)
		}
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-l.trigger:
				l.log.Info("reload requested", "file", l.file)
				l.reloadFile(wctx)
			case <-wctx.Done():
			}
			cancel() // rebuild the watcher: the config may name other paths now
		}()
		_ = w.Run(wctx, func(ctx context.Context) {
			l.reloadFile(ctx)
			l.mu.Lock()
			now := paths(l.file, l.current)
			l.mu.Unlock()
			if !reflect.DeepEqual(now, watched) {
				cancel()
			}
		})
		cancel()
	}
	return nil
}
