package config

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/reload"
	"github.com/trellis-mesh/trellis/host/internal/watch"
)

// Loop keeps a host serving what a config file says: it reapplies the
// file when it, or any plugin file or source it names, changes, and when
// Trigger is called (SIGHUP). A config with errors is refused whole, with
// file:line:col for each problem, and the running setup stays.
type Loop struct {
	host     Host
	file     string
	rec      *reload.Reconciler
	log      hclog.Logger
	debounce time.Duration
	trigger  chan struct{}

	mu      sync.Mutex // orders reloads: read, compare and Start one at a time
	current *Config
	waits   sync.WaitGroup // goroutines waiting for reloads to finish
}

// NewLoop returns a loop for file on h. debounce 0 means the default.
func NewLoop(h Host, file string, debounce time.Duration, log hclog.Logger) *Loop {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Loop{host: h, file: file, rec: reload.New(h, log), log: log, debounce: debounce, trigger: make(chan struct{}, 1)}
}

// Wants turns a config into the list of plugins to run.
func wants(c *Config) []reload.Want {
	wants := make([]reload.Want, 0, len(c.Plugins))
	for _, p := range c.Plugins {
		wants = append(wants, reload.Want{Spec: p.Spec, Source: p.Source})
	}
	return wants
}

// Apply applies c now, remembers it as the running config, and returns
// once its plugins are loaded (or refused). If the ingress would refuse any
// of c's HTTP routes, nothing of c is applied: the result's Failed holds
// each refused route under "http_route PATTERN".
func (l *Loop) Apply(ctx context.Context, c *Config) Result {
	l.mu.Lock()
	pass, res, ok := l.start(ctx, c)
	l.mu.Unlock()
	if !ok {
		return res
	}
	return l.finish(c, pass, res.Unloaded)
}

// httpHost is the part of the host that takes HTTP routes.
type httpHost interface {
	SetHTTPRoutes([]host.HTTPRoute) error
}

// start checks c whole, then makes it the running config and starts
// loading its plugins; it reports false, having changed nothing, if the
// ingress would refuse any of c's routes. Plugins c drops are unloaded
// first, so that a plugin renamed (or a subject moved to another plugin)
// does not meet its old self; their names are in the result. l.mu is held,
// so that configs are started in the order they were read.
func (l *Loop) start(ctx context.Context, c *Config) (*reload.Pass, Result, bool) {
	if _, ok := l.host.(httpHost); ok && c.HTTP.Listen != "" {
		if errs := host.CheckHTTPRoutes(c.HTTP.Routes); len(errs) > 0 {
			res := Result{Failed: map[string]error{}}
			for _, err := range errs {
				l.log.Error("http route refused; nothing of this config is applied", "file", l.file, "error", err)
				res.Failed["http_route "+err.Pattern] = err
			}
			return nil, res, false
		}
	}
	prev := l.current
	l.current = c
	var res Result
	if prev != nil {
		keep := map[string]bool{}
		for _, p := range c.Plugins {
			keep[p.Name] = true
		}
		var stay []reload.Want
		for _, w := range wants(prev) {
			if keep[w.Spec.Name] {
				stay = append(stay, w)
			}
		}
		if len(stay) < len(prev.Plugins) {
			res.Unloaded = l.rec.Apply(ctx, stay).Unloaded
		}
	}
	return l.rec.Start(ctx, wants(c)), res, true
}

// finish waits for c's plugins, then installs its HTTP routes (after the
// plugins, so that new routes find their policies) unless a newer config
// has been started meanwhile: that one's routes win.
func (l *Loop) finish(c *Config, pass *reload.Pass, unloaded []string) Result {
	res := pass.Wait()
	res.Unloaded = append(unloaded, res.Unloaded...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if hr, ok := l.host.(httpHost); ok && c.HTTP.Listen != "" && l.current == c {
		if err := hr.SetHTTPRoutes(c.HTTP.Routes); err != nil {
			l.log.Error("http routes refused; the running routes stay", "file", l.file, "error", err)
		}
	}
	return res
}

// Trigger asks for a reload at the next opportunity.
func (l *Loop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// reloadFile reads the file again and, if it is valid, starts applying it.
// It does not wait for the plugins to load: a goroutine in l.waits does, so
// that the next change is seen (and a plugin named in it reloaded) while a
// slow plugin of this one is still loading.
func (l *Loop) reloadFile(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := Load(l.file)
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
			c.MaxInFlight != l.current.MaxInFlight || c.LogLevel != l.current.LogLevel || c.LogFormat != l.current.LogFormat ||
			c.RequireSigned != l.current.RequireSigned || !reflect.DeepEqual(c.TrustedKeys, l.current.TrustedKeys) {
			l.log.Warn("config: nats, the http block's settings (all but routes), data_dir, max_in_flight, log, trusted_keys and require_signed settings apply at the next start", "file", l.file)
		}
	}
	pass, pre, ok := l.start(ctx, c)
	if !ok {
		return // start logged every refused route
	}
	l.waits.Add(1)
	go func() {
		defer l.waits.Done()
		res := l.finish(c, pass, pre.Unloaded)
		if len(res.Loaded)+len(res.Reloaded)+len(res.Unloaded)+len(res.Failed) > 0 {
			l.log.Info("config applied", "file", l.file, "loaded", res.Loaded, "reloaded", res.Reloaded,
				"unloaded", res.Unloaded, "failed", len(res.Failed), "pending", res.Pending)
		}
	}()
}

// paths lists what the loop watches for c: the config file, every plugin
// file, and every source directory.
func paths(file string, c *Config) []string {
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
// until ctx ends. It returns once every reload it began has ended.
func (l *Loop) Run(ctx context.Context, c *Config, started func(Result)) error {
	defer l.waits.Wait()
	res := l.Apply(ctx, c)
	if started != nil {
		started(res)
	}
	for ctx.Err() == nil {
		l.mu.Lock()
		watched := paths(l.file, l.current)
		l.mu.Unlock()
		w, err := watch.New(watch.Options{Paths: watched, Recursive: true, Debounce: l.debounce, Logger: l.log})
		if err != nil {
			return err
		}
		// Changes made while no watcher was running (before the first,
		// while c was applied, or while this one was made) would go unseen.
		l.reloadFile(ctx)
		wctx, cancel := context.WithCancel(ctx)
		triggered := make(chan struct{})
		go func() {
			defer close(triggered)
			select {
			case <-l.trigger:
				l.log.Info("reload requested", "file", l.file)
				l.reloadFile(ctx)
			case <-wctx.Done():
			}
			cancel() // rebuild the watcher: the config may name other paths now
		}()
		// Reloads run under ctx, not wctx: rebuilding the watcher must not
		// cut short a plugin's load.
		_ = w.Run(wctx, func(context.Context) {
			l.reloadFile(ctx)
			l.mu.Lock()
			now := paths(l.file, l.current)
			l.mu.Unlock()
			if !reflect.DeepEqual(now, watched) {
				cancel()
			}
		})
		cancel()
		<-triggered // a reload it began ends before the next watcher, or Run's return
	}
	return nil
}

// Result says what applying a config did; see Loop.Apply.
type Result = reload.Result

// Host is what a Loop drives; *host.Host implements it.
type Host = reload.Host
