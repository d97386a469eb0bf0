package host

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/resilience"
	"github.com/trellis-mesh/trellis/host/sign"
)

// Change is what Apply makes take effect together, or not at all: plugins
// to load or replace, plugins to unload, and, if SetHTTPRoutes, the
// ingress's routes.
type Change struct {
	// Load lists plugins to load, or to replace when one of that name is
	// loaded. A spec whose module and settings equal those of the version
	// serving is left alone (Applied.Unchanged).
	Load []Spec
	// Unload names loaded plugins to stop serving.
	Unload []string
	// HTTPRoutes replace the ingress's routes when SetHTTPRoutes is set.
	HTTPRoutes    []HTTPRoute
	SetHTTPRoutes bool
}

// Applied says what Apply did, each list sorted by name.
type Applied struct {
	Loaded, Reloaded, Unloaded, Unchanged []string
}

// prepared is one plugin of a Change made ready to serve: compiled,
// checked and with its first instance started, but not yet serving.
type prepared struct {
	spec     Spec // Wasm cleared
	wasm     []byte
	version  string
	p        *plugin.Plugin
	subjects []string // a handler's
	queue    string
	took     time.Duration
}

// Apply makes c take effect whole or not at all, the way a new
// configuration should. It prepares everything first, with nothing
// serving changed: every plugin to load is read, verified
// (Options.RequireSigned), compiled and started (at most GOMAXPROCS at a
// time), and every new subscription is made. Only then does it commit:
// each binding's new snapshot is published with one atomic store (a
// handler's snapshot names its policies' versions, so a new policy version
// reaches every handler and HTTP route that names it in the same commit),
// the ingress's routes with another, and subscriptions no longer wanted are
// drained. Versions replaced are closed once their calls in flight finish,
// by goroutines that Close waits for; plugins unloaded are drained and
// closed before Apply returns (or ctx ends).
//
// If anything fails (a bad module, a module that does not export what its
// role needs, a subject another handler serves when
// Options.ExclusiveSubjects is set, a route the ingress refuses, a
// subscription the bus refuses) nothing of c is applied: the subscriptions
// made for it are undone and the versions made for it closed, and the
// error lists every reason, each naming its plugin. Each is logged too.
//
// Applies are committed one at a time; their preparations overlap.
func (h *Host) Apply(ctx context.Context, c Change) (done Applied, err error) {
	c, keysApplied, err := h.fillKeys(ctx, c)
	if err != nil {
		return done, h.refuse([]error{err})
	}
	defer func() { keysApplied(err) }()
	if err := h.checkChange(c); err != nil {
		return done, err
	}
	todo, unchanged, err := h.read(c.Load)
	if err != nil {
		return done, err
	}
	done.Unchanged = unchanged
	h.preparing.set(todo, StateQueued)
	defer h.preparing.done(todo)
	if err := h.prepare(ctx, todo); err != nil {
		return done, err
	}
	h.preparing.set(todo, StateBinding)
	if len(todo)+len(c.Unload) == 0 && !c.SetHTTPRoutes {
		return done, nil
	}
	removed, err := h.commit(c, todo, &done)
	if err != nil {
		return done, err
	}
	h.applyRecording(ctx, todo)
	for _, name := range c.Unload {
		h.forgetKeys(name, nil)
		h.preparing.forget(name)
	}
	// Plugins unloaded drain and close on goroutines Close waits for; wait
	// here as well, so that Unload returns with them gone.
	for _, ch := range removed {
		select {
		case err := <-ch:
			if err != nil {
				return done, err
			}
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
	return done, nil
}

// checkChange refuses, before any work, what no state of the host could
// make right: a bad name, queue, subject or KV namespace, a name twice,
// an HTTP route the ingress would refuse.
func (h *Host) checkChange(c Change) error {
	var errs []error
	seen := map[string]bool{}
	for _, spec := range c.Load {
		if err := checkSpec(spec); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[spec.Name] {
			errs = append(errs, fmt.Errorf("plugin %q: named twice in one change", spec.Name))
		}
		seen[spec.Name] = true
	}
	for _, name := range c.Unload {
		if seen[name] {
			errs = append(errs, fmt.Errorf("plugin %q: both loaded and unloaded in one change", name))
		}
		seen[name] = true
	}
	if c.SetHTTPRoutes {
		for _, err := range CheckHTTPRoutes(c.HTTPRoutes) {
			errs = append(errs, err)
		}
	}
	return h.refuse(errs)
}

// refusal is why one plugin of a Change was refused. Its text names the
// plugin already; the fields are for the log.
type refusal struct {
	name, version, path string
	err                 error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse logs every reason (nil ones aside) and returns them joined, or
// nil. A reason that is only a context's end is not the plugin's fault and
// is not logged as a refusal.
func (h *Host) refuse(errs []error) error {
	h.recordRefused(errs)
	for _, err := range errs {
		if err == nil {
			continue
		}
		var kv []any
		var r *refusal
		if errors.As(err, &r) {
			kv = append(kv, "plugin", r.name)
			if r.version != "" {
				kv = append(kv, "version", r.version)
			}
			if r.path != "" {
				kv = append(kv, "path", r.path)
			}
		}
		kv = append(kv, "error", err)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			h.log.Debug("plugin not applied", kv...)
			continue
		}
		h.log.Error("plugin refused", kv...)
	}
	return errors.Join(errs...)
}

// checkSpec checks what a spec says on its own.
func checkSpec(spec Spec) error {
	if spec.Name == "" {
		return errors.New("plugin spec without a name")
	}
	if err := validName(spec.Name); err != nil {
		return err
	}
	if spec.Wasm == nil && spec.Path == "" {
		return fmt.Errorf("plugin %q: neither Path nor Wasm given", spec.Name)
	}
	if spec.Durable != nil {
		if spec.Policy {
			return fmt.Errorf("plugin %q: a policy cannot be durable; its handlers can", spec.Name)
		}
		if err := spec.Durable.check(spec.Name); err != nil {
			return err
		}
	}
	if ns := kvNamespace(spec); !plugin.ValidKey(ns) {
		return fmt.Errorf("plugin %q: KV namespace %.64q: want 1 to %d bytes of A-Z a-z 0-9 - _ = . /", spec.Name, ns, abi.MaxKVKeyLen)
	}
	if r := spec.Record; r != nil {
		if spec.Policy || spec.Durable != nil {
			return fmt.Errorf("plugin %q: record applies to handlers fed by subscriptions, not to policies or durable handlers", spec.Name)
		}
		if _, err := r.withDefaults(); err != nil {
			return fmt.Errorf("plugin %q: %w", spec.Name, err)
		}
	}
	if spec.Queue != "" {
		if err := abi.ValidQueue(spec.Queue); err != nil {
			return fmt.Errorf("plugin %q: queue %q: %w", spec.Name, spec.Queue, err)
		}
	}
	for _, s := range spec.Subjects {
		if err := subscribable(s); err != nil {
			return fmt.Errorf("plugin %q: subject %q: %w", spec.Name, s, err)
		}
	}
	return nil
}

// read reads each spec's module and sets aside those equal to the version
// serving, module and settings alike.
func (h *Host) read(specs []Spec) (todo []*prepared, unchanged []string, err error) {
	var errs []error
	for _, spec := range specs {
		wasm := spec.Wasm
		if wasm == nil {
			b, err := plugin.ReadModule(spec.Path)
			if err != nil {
				errs = append(errs, &refusal{name: spec.Name, path: spec.Path, err: fmt.Errorf("plugin %q: %w", spec.Name, err)})
				continue
			}
			wasm = b
		}
		spec.Wasm = nil
		version := plugin.Version(wasm)
		if cur := h.serving(spec.Name); cur != nil && cur.version == version && reflect.DeepEqual(cur.spec, spec) {
			unchanged = append(unchanged, spec.Name)
			continue
		}
		todo = append(todo, &prepared{spec: spec, wasm: wasm, version: version})
	}
	sort.Strings(unchanged)
	return todo, unchanged, h.refuse(errs)
}

// serving returns the snapshot serving under name, or nil.
func (h *Host) serving(name string) *snapshot {
	h.mu.Lock()
	b := h.bindings[name]
	h.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.snap.Load()
}

// prepare makes every plugin of todo, in parallel up to GOMAXPROCS (but at
// least two, so that on one CPU a guest whose init loops until its
// deadline does not hold up the others). If any fails, it closes those
// made and returns every reason.
func (h *Host) prepare(ctx context.Context, todo []*prepared) error {
	errs := make([]error, len(todo))
	slots := make(chan struct{}, max(runtime.GOMAXPROCS(0), 2))
	var wg sync.WaitGroup
	for i, pr := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("plugin %q: %w", pr.spec.Name, ctx.Err())
				return
			}
			defer func() { <-slots }()
			h.preparing.set([]*prepared{pr}, StateLoading)
			if err := h.make(ctx, pr); err != nil {
				errs[i] = &refusal{name: pr.spec.Name, version: pr.version, path: pr.spec.Path, err: err}
			}
		}()
	}
	wg.Wait()
	if err := h.refuse(errs); err != nil {
		for _, pr := range todo {
			if pr.p != nil {
				_ = pr.p.Close(context.WithoutCancel(ctx))
			}
		}
		return err
	}
	return nil
}

// make verifies, compiles and starts one plugin, and works out the
// subjects and queue of a handler.
func (h *Host) make(ctx context.Context, pr *prepared) error {
	spec := pr.spec
	start := time.Now()
	if h.opts.RequireSigned {
		// Before compiling: an unsigned module gets no further than this.
		if _, err := sign.Verify(pr.wasm, h.opts.TrustedKeys); err != nil {
			file := spec.Path
			if file == "" {
				file = "(module given as bytes)"
			}
			return fmt.Errorf("plugin %q: %s: refused, signed plugins are required: %w", spec.Name, file, err)
		}
	}
	// Two loads of one module at once (two plugins built from one source,
	// or two applies) would compile it at once into the shared
	// compilation cache, which wazero does not make safe; the second waits
	// and finds it cached.
	unlock := h.lockVersion(pr.version)
	defer unlock()
	p, err := plugin.Load(ctx, pr.wasm, plugin.Options{
		Name:        spec.Name,
		Config:      spec.Config,
		PoolSize:    spec.PoolSize,
		Timeout:     spec.Timeout,
		InitTimeout: spec.InitTimeout,
		MemoryLimit: spec.MemoryLimit,
		Grants:      spec.Granted(),
		Logger:      h.log.Named(spec.Name).With("version", pr.version),
		Outbox:      h.instrumentOutbox(spec.Name, h.outboxFor(spec.Name)),
		KV:          h.instrumentKV(spec.Name, kvNamespace(spec), h.kv.Namespace(kvNamespace(spec))),
		Cache:       h.cache,
	})
	if err != nil {
		return err
	}
	pr.took = time.Since(start)
	if err := roleCheck(spec, p, pr); err != nil {
		_ = p.Close(ctx)
		return err
	}
	pr.p = p
	return nil
}

// roleCheck checks that p can play the role spec gives it and, for a
// handler, fills in pr's subjects and queue.
func roleCheck(spec Spec, p *plugin.Plugin, pr *prepared) error {
	if spec.Policy {
		if !p.IsPolicy() {
			return fmt.Errorf("plugin %q: it does not export %s, so it cannot be a policy", spec.Name, abi.ExportPolicy)
		}
		return nil
	}
	if !p.IsHandler() {
		return fmt.Errorf("plugin %q: it does not export %s, so it cannot be a handler (load it as a policy?)", spec.Name, abi.ExportHandle)
	}
	subjects, queue := spec.Subjects, spec.Queue
	if len(subjects) == 0 {
		for _, s := range p.Subscriptions() {
			subjects = append(subjects, s.Subject)
			if queue == "" && s.Queue != "" {
				queue = s.Queue
			}
		}
	}
	if queue == "" {
		queue = spec.Name
	}
	if len(subjects) == 0 {
		return fmt.Errorf("plugin %q: it subscribes to no subjects; call subscribe in trellis_init or set subjects in the config", spec.Name)
	}
	for _, s := range subjects {
		if err := subscribable(s); err != nil {
			return fmt.Errorf("plugin %q: subject %q: %w", spec.Name, s, err)
		}
	}
	if err := abi.ValidQueue(queue); err != nil {
		return fmt.Errorf("plugin %q: queue %q: %w", spec.Name, queue, err)
	}
	pr.subjects, pr.queue = subjects, queue
	return checkRecord(spec, subjects)
}

// generation is the host's bindings as a Change would leave them, worked
// out before anything is committed.
type generation struct {
	bindings map[string]*binding  // every binding of the new generation
	snaps    map[string]*snapshot // new snapshots, by binding name
	created  map[string]bool      // bindings made for this change
	removed  []*binding
	replaced []*plugin.Plugin // versions the new snapshots replace
	policies map[string]*plugin.Plugin
}

// commit checks todo against the bindings serving, subscribes, and swaps
// the new generation in; on any failure it undoes what it did and closes
// todo's versions. It returns a channel per plugin unloaded that reports
// its close.
func (h *Host) commit(c Change, todo []*prepared, done *Applied) ([]chan error, error) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	abandon := func(err error) ([]chan error, error) {
		for _, pr := range todo {
			_ = pr.p.Close(h.life)
		}
		return nil, err
	}
	h.mu.Lock()
	closing := h.closing
	current := make(map[string]*binding, len(h.bindings))
	for name, b := range h.bindings {
		current[name] = b
	}
	h.mu.Unlock()
	if closing {
		return abandon(errors.New("host is closing"))
	}
	gen, err := h.plan(current, c, todo)
	if err != nil {
		return abandon(h.refuse([]error{err}))
	}

	// Subscribe: new subscriptions come before anything is swapped, so a
	// refusal leaves the running generation as it was.
	made := map[string][]*nats.Subscription{}
	consumers := map[string]*consumer{}
	var subErr error
	for _, pr := range todo {
		if pr.spec.Policy {
			continue
		}
		b := gen.bindings[pr.spec.Name]
		snap := gen.snaps[b.name]
		if gen.created[b.name] {
			b.snap.Store(snap) // nobody else sees b yet
		}
		_, _, poolSize := pr.p.PoolStats()
		b.ensureWorkers(poolSize)
		if snap.durable != nil {
			// A durable handler's events come from its consumer; one
			// already consuming the same way stays, like a subscription.
			if b.cons.same(*snap.durable, pr.subjects, pr.queue) {
				continue
			}
			cons, err := b.startConsumer(h.life, *snap.durable, pr.subjects, pr.queue, poolSize)
			if err != nil {
				subErr = &refusal{name: b.name, version: pr.version, path: pr.spec.Path, err: fmt.Errorf("plugin %q: %w", b.name, err)}
				break
			}
			consumers[b.name] = cons
			continue
		}
		subs, err := b.subscribeNew(pr.subjects, pr.queue)
		made[b.name] = subs
		if err != nil {
			subErr = &refusal{name: b.name, version: pr.version, path: pr.spec.Path, err: fmt.Errorf("plugin %q: %w", b.name, err)}
			break
		}
	}
	if subErr == nil {
		if err := h.bus.Conn().Flush(); err != nil {
			subErr = fmt.Errorf("subscribe: %w", err)
		}
	}
	if subErr != nil {
		closed := map[string]bool{}
		for name, cons := range consumers {
			if b := gen.bindings[name]; gen.created[name] {
				b.cons = cons
				_ = b.close(h.life)
				closed[name] = true
				continue
			}
			cons.stop()
		}
		for name, subs := range made {
			b := gen.bindings[name]
			if !gen.created[name] {
				unsubscribe(subs)
				continue
			}
			for _, sub := range subs {
				b.subs[sub.Subject] = sub
			}
			_ = b.close(h.life) // drains, ends its workers, closes its version
			closed[name] = true
		}
		for _, pr := range todo {
			if !closed[pr.spec.Name] {
				_ = pr.p.Close(h.life)
			}
		}
		return nil, h.refuse([]error{subErr})
	}

	// Commit: one store per binding whose snapshot changed, then the
	// ingress's routes, then the clean-up of what the old generation held.
	for name, s := range gen.snaps {
		b := gen.bindings[name]
		if old := b.snap.Swap(s); old != nil && old.plugin != s.plugin && b.direct != nil {
			b.direct.reset()
		}
	}
	h.policies.Store(&gen.policies)
	h.mu.Lock()
	h.bindings = gen.bindings
	h.mu.Unlock()
	var stored []string
	for _, b := range gen.bindings {
		if s := b.snap.Load(); !b.policy && s.durable != nil {
			stored = append(stored, s.subjects...)
		}
	}
	h.storedSubjects.Store(&storedSubjects{patterns: stored})
	for _, pr := range todo {
		if pr.spec.Policy {
			continue
		}
		b := gen.bindings[pr.spec.Name]
		if gen.snaps[b.name].durable != nil {
			b.adopt(nil, nil, pr.queue) // subscriptions it had go
			if cons := consumers[b.name]; cons != nil {
				if old := b.cons; old != nil {
					h.retire(func(context.Context) error { old.stop(); return nil })
				}
				b.cons = cons
			}
			continue
		}
		if old := b.cons; old != nil {
			b.cons = nil
			h.retire(func(context.Context) error { old.stop(); return nil })
		}
		b.adopt(made[b.name], pr.subjects, pr.queue)
	}
	routes := h.httpRoutes
	if c.SetHTTPRoutes {
		routes = c.HTTPRoutes
	}
	h.httpRoutes = routes
	h.httpMux.Store(h.mux(routes, gen.policies))
	for _, p := range gen.replaced {
		// In-flight calls finish on the old version; a call that raced
		// with the swap runs again on the new one (see binding.call).
		h.retire(p.Close)
	}
	var removed []chan error
	for _, b := range gen.removed {
		ch := make(chan error, 1)
		removed = append(removed, ch)
		name, version := b.name, b.snap.Load().version
		h.retire(func(ctx context.Context) error {
			start := time.Now()
			err := b.close(ctx)
			h.log.Info("plugin unloaded", "plugin", name, "version", version, "drain_time", time.Since(start))
			h.recordApplied(EventUnloaded, name, version, 0)
			ch <- err
			return err
		})
		done.Unloaded = append(done.Unloaded, name)
	}
	for _, pr := range todo {
		h.logApplied(pr, current[pr.spec.Name], done)
	}
	sort.Strings(done.Loaded)
	sort.Strings(done.Reloaded)
	sort.Strings(done.Unloaded)
	return removed, nil
}

// logApplied logs one plugin of a committed change and counts it in done.
func (h *Host) logApplied(pr *prepared, old *binding, done *Applied) {
	kind := "plugin"
	if pr.spec.Policy {
		kind = "policy"
	}
	name := pr.spec.Name
	if old == nil {
		h.recordApplied(EventLoaded, name, pr.version, pr.took)
		done.Loaded = append(done.Loaded, name)
		if pr.spec.Policy {
			h.log.Info(kind+" loaded", "plugin", name, "version", pr.version, "load_time", pr.took)
			return
		}
		h.log.Info(kind+" loaded", "plugin", name, "version", pr.version, "subjects", pr.subjects,
			"queue", pr.queue, "load_time", pr.took)
		return
	}
	h.recordApplied(EventReloaded, name, pr.version, pr.took)
	done.Reloaded = append(done.Reloaded, name)
	previous := ""
	if s := old.snap.Load(); s != nil {
		previous = s.version
	}
	h.log.Info(kind+" reloaded", "plugin", name, "version", pr.version, "previous", previous,
		"subjects", pr.subjects, "load_time", pr.took)
}

// plan works out the generation c makes of current: which bindings stay,
// come and go, each one's new snapshot, and whether the new set is
// consistent (roles kept, subjects exclusive when required).
func (h *Host) plan(current map[string]*binding, c Change, todo []*prepared) (*generation, error) {
	gen := &generation{
		bindings: make(map[string]*binding, len(current)+len(todo)),
		snaps:    map[string]*snapshot{},
		created:  map[string]bool{},
		policies: map[string]*plugin.Plugin{},
	}
	for name, b := range current {
		gen.bindings[name] = b
	}
	for _, name := range c.Unload {
		b := gen.bindings[name]
		if b == nil && h.preparing.wasRefused(name) {
			// Never served, only refused: unloading it forgets the
			// refusal (Apply does, once committed).
			continue
		}
		if b == nil {
			return nil, fmt.Errorf("plugin %q is not loaded", name)
		}
		delete(gen.bindings, name)
		gen.removed = append(gen.removed, b)
	}
	fresh := map[string]*prepared{}
	for _, pr := range todo {
		name := pr.spec.Name
		fresh[name] = pr
		if b := gen.bindings[name]; b != nil {
			if b.policy && !pr.spec.Policy {
				return nil, fmt.Errorf("plugin %q is loaded as a policy; unload it before loading a handler of that name", name)
			}
			if !b.policy && pr.spec.Policy {
				return nil, fmt.Errorf("plugin %q is loaded as a handler; unload it before loading a policy of that name", name)
			}
			continue
		}
		gen.bindings[name] = newBinding(h, name, pr.spec.Policy)
		gen.created[name] = true
	}
	// Policies first: handlers' snapshots name their versions.
	for name, b := range gen.bindings {
		if !b.policy {
			continue
		}
		if pr := fresh[name]; pr != nil {
			gen.snaps[name] = &snapshot{plugin: pr.p, spec: pr.spec, version: pr.version}
			gen.policies[name] = pr.p
			if old := b.snap.Load(); old != nil {
				gen.replaced = append(gen.replaced, old.plugin)
			}
			continue
		}
		gen.policies[name] = b.snap.Load().plugin
	}
	for name, b := range gen.bindings {
		if b.policy {
			continue
		}
		old := b.snap.Load()
		if gen.created[name] {
			old = nil
		}
		pr := fresh[name]
		if pr == nil {
			// Unchanged, but the policies it names may have changed.
			chain := bindChain(old.spec.Policies, gen.policies)
			if !sameChain(chain, old.chain) {
				s := *old
				gen.snaps[name] = s.withChain(chain)
			}
			continue
		}
		s := (&snapshot{plugin: pr.p, spec: pr.spec, version: pr.version, subjects: pr.subjects, queue: pr.queue,
			res: withDefaults(pr.spec.Resilience)}).withChain(bindChain(pr.spec.Policies, gen.policies))
		if d := pr.spec.Durable; d != nil {
			withDefaults := d.withDefaults(name, pr.spec.Timeout)
			s.durable = &withDefaults
		}
		// Keep the breaker's state across reloads that do not change it.
		if old != nil && old.breaker.Failures == s.res.BreakerFailures && old.breaker.Cooldown == s.res.BreakerCooldown {
			s.breaker = old.breaker
		} else {
			s.breaker = &resilience.Breaker{Failures: s.res.BreakerFailures, Cooldown: s.res.BreakerCooldown}
		}
		gen.snaps[name] = s
		if old != nil {
			gen.replaced = append(gen.replaced, old.plugin)
		}
	}
	if err := h.checkExclusive(gen); err != nil {
		return nil, err
	}
	return gen, nil
}

// withDefaults fills in a Resilience's zero durations.
func withDefaults(res Resilience) Resilience {
	if res.Backoff <= 0 {
		res.Backoff = 50 * time.Millisecond
	}
	if res.MaxBackoff <= 0 {
		res.MaxBackoff = 2 * time.Second
	}
	if res.BreakerCooldown <= 0 {
		res.BreakerCooldown = 10 * time.Second
	}
	return res
}

// bindChain resolves refs against the policies of a generation.
func bindChain(refs []PolicyRef, policies map[string]*plugin.Plugin) []boundPolicy {
	if len(refs) == 0 {
		return nil
	}
	chain := make([]boundPolicy, len(refs))
	for i, ref := range refs {
		chain[i] = boundPolicy{PolicyRef: ref, p: policies[ref.Name]}
	}
	return chain
}

func sameChain(a, b []boundPolicy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// servingPolicy returns the version of policy name serving now, or nil.
// Only a call that raced with a swap needs it: chains are resolved when
// their snapshot is made.
func (h *Host) servingPolicy(name string) *plugin.Plugin {
	if m := h.policies.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// retire runs close (a version's, or a binding's) on a goroutine that
// Close waits for, under the host's life: once Close runs out of patience,
// close is cut short. Called under applyMu with the host not closing, so
// that Close's wait counts it.
func (h *Host) retire(close func(context.Context) error) {
	h.retiring.Add(1)
	go func() {
		defer h.retiring.Done()
		if err := close(h.life); err != nil {
			h.log.Warn("closing a version swapped out or unloaded", "error", err)
		}
	}()
}

// versionLock serializes the loads of one module content.
type versionLock struct {
	mu   sync.Mutex
	refs int // under Host.versionsMu
}

// lockVersion locks version's loads and returns the unlock.
func (h *Host) lockVersion(version string) func() {
	h.versionsMu.Lock()
	l := h.versions[version]
	if l == nil {
		l = &versionLock{}
		if h.versions == nil {
			h.versions = map[string]*versionLock{}
		}
		h.versions[version] = l
	}
	l.refs++
	h.versionsMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		h.versionsMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(h.versions, version)
		}
		h.versionsMu.Unlock()
	}
}
