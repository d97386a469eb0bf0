// Package config reads the host's HCL configuration file.
//
// Every problem is reported with the file, line and column it comes from,
// and a file with any problem is refused whole: Load never returns half a
// configuration.
//
//	data_dir  = ".trellis"
//	log_level = "info"
//
//	nats {
//	  listen = "127.0.0.1:4222"
//	}
//
//	plugin "greet" {
//	  path     = "plugins/greet.wasm"
//	  subjects = ["greet"]
//	  timeout  = "2s"
//	  config   = { greeting = "Hello" }
//	  publish  = ["audit.>"]
//	}
package config

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/regfile"
	"github.com/trellis-mesh/trellis/host/plugin"
	"github.com/trellis-mesh/trellis/host/sign"
)

// Config is a validated configuration.
type Config struct {
	// File is the path the configuration was read from.
	File string
	// DataDir holds the compilation cache, JetStream's files and built
	// plugins. Relative paths are relative to the file. Default ".trellis".
	DataDir string
	// LogLevel is trace, debug, info, warn or error. Default "info".
	LogLevel string
	// LogFormat is "text" or "json". Default "text".
	LogFormat string
	// MaxInFlight caps plugin calls across the host (0: the host's default).
	MaxInFlight int
	// NATS configures the bus.
	NATS bus.Options
	// Plugins in the order the file lists them: policies first, then
	// handlers, so that a handler's policies are there when it loads.
	Plugins []Plugin
	// HTTP is the ingress; Listen is empty when the file has no http block.
	HTTP host.HTTPOptions
	// TrustedKeys (trusted_keys, "ed25519:BASE64" each, as `trellis keygen`
	// prints) and RequireSigned (require_signed): see host.Options.
	TrustedKeys   []ed25519.PublicKey
	RequireSigned bool
}

// Plugin is one plugin block.
type Plugin struct {
	host.Spec
	// Source, if set, is a plugin source directory to build into Path.
	Source string
}

// Error is a configuration that Load refused. Each line of Error() is one
// problem, "file:line:col: summary: detail".
type Error struct{ Diags hcl.Diagnostics }

// Error lists the problems, one per line.
func (e *Error) Error() string {
	var lines []string
	for _, d := range e.Diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		loc := ""
		if d.Subject != nil {
			loc = fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		msg := loc + d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		lines = append(lines, msg)
	}
	return strings.Join(lines, "\n")
}

type fileSchema struct {
	DataDir     *string        `hcl:"data_dir,optional"`
	LogLevel    *string        `hcl:"log_level,optional"`
	LogFormat   *string        `hcl:"log_format,optional"`
	MaxInFlight *int           `hcl:"max_in_flight,optional"`
	NATS        *natsSchema    `hcl:"nats,block"`
	HTTP        *httpSchema    `hcl:"http,block"`
	Policies    []pluginSchema `hcl:"policy,block"`
	Plugins     []pluginSchema `hcl:"plugin,block"`
	Routes      []routeSchema  `hcl:"http_route,block"`

	TrustedKeys   []string `hcl:"trusted_keys,optional"`
	RequireSigned *bool    `hcl:"require_signed,optional"`
}

type httpSchema struct {
	Listen    *string        `hcl:"listen,optional"`
	TLSCert   *string        `hcl:"tls_cert,optional"`
	TLSKey    *string        `hcl:"tls_key,optional"`
	MaxBody   hcl.Expression `hcl:"max_body,optional"`
	MaxHeader hcl.Expression `hcl:"max_header,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
}

type routeSchema struct {
	Pattern  string         `hcl:"pattern,label"`
	Subject  string         `hcl:"subject"`
	Event    *bool          `hcl:"event,optional"`
	Policies hcl.Expression `hcl:"policies,optional"`
	Timeout  hcl.Expression `hcl:"timeout,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
}

type breakerSchema struct {
	Failures int            `hcl:"failures"`
	Cooldown hcl.Expression `hcl:"cooldown,optional"`
}

type natsSchema struct {
	URL        *string        `hcl:"url,optional"`
	Listen     *string        `hcl:"listen,optional"`
	StoreDir   *string        `hcl:"store_dir,optional"`
	JetStream  *bool          `hcl:"jetstream,optional"`
	MaxPayload hcl.Expression `hcl:"max_payload,optional"`
	ConfigFile *string        `hcl:"config_file,optional"`
	Name       *string        `hcl:"name,optional"`
}

type pluginSchema struct {
	Name        string            `hcl:"name,label"`
	Path        *string           `hcl:"path,optional"`
	Source      *string           `hcl:"source,optional"`
	Subjects    hcl.Expression    `hcl:"subjects,optional"`
	Queue       *string           `hcl:"queue,optional"`
	PoolSize    hcl.Expression    `hcl:"pool_size,optional"`
	Timeout     hcl.Expression    `hcl:"timeout,optional"`
	MemoryLimit hcl.Expression    `hcl:"memory_limit,optional"`
	Config      map[string]string `hcl:"config,optional"`
	Publish     hcl.Expression    `hcl:"publish,optional"`
	Request     hcl.Expression    `hcl:"request,optional"`
	Env         map[string]string `hcl:"env,optional"`
	Dirs        []dirSchema       `hcl:"dir,block"`
	KVNamespace *string           `hcl:"kv_namespace,optional"`
	// Policies only.
	FailOpen *bool `hcl:"fail_open,optional"`
	// Handlers only.
	Policies   hcl.Expression `hcl:"policies,optional"`
	Idempotent *bool          `hcl:"idempotent,optional"`
	Retries    *int           `hcl:"retries,optional"`
	Backoff    hcl.Expression `hcl:"backoff,optional"`
	Breaker    *breakerSchema `hcl:"breaker,block"`
	Fallback   *string        `hcl:"fallback,optional"`
	DeadLetter *string        `hcl:"dead_letter,optional"`
	DefRange   hcl.Range      `hcl:",def_range"`
}

type dirSchema struct {
	GuestPath string    `hcl:"guest_path,label"`
	HostPath  string    `hcl:"host_path"`
	ReadOnly  *bool     `hcl:"read_only,optional"`
	DefRange  hcl.Range `hcl:",def_range"`
}

// MaxFileSize is the largest config file Load reads.
const MaxFileSize = 4 << 20

// Load reads and validates the file at path: a regular file (or a symlink
// to one) of at most MaxFileSize bytes.
func Load(path string) (*Config, error) {
	src, err := regfile.Read(path, MaxFileSize, "config.MaxFileSize")
	if err != nil {
		return nil, err
	}
	return Parse(src, path)
}

// Parse validates configuration src; filename names it in errors and
// anchors relative paths.
func Parse(src []byte, filename string) (*Config, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &Error{diags}
	}
	var fs fileSchema
	if diags := gohcl.DecodeBody(f.Body, nil, &fs); diags.HasErrors() {
		return nil, &Error{diags}
	}
	d := &decoder{base: filepath.Dir(filename)}
	c := &Config{File: filename, DataDir: ".trellis", LogLevel: "info", LogFormat: "text"}
	if fs.DataDir != nil {
		c.DataDir = *fs.DataDir
	}
	c.DataDir = d.path(c.DataDir)
	if fs.LogLevel != nil {
		c.LogLevel = *fs.LogLevel
		switch c.LogLevel {
		case "trace", "debug", "info", "warn", "error":
		default:
			d.attrErr(f.Body, "log_level", "Invalid log level",
				fmt.Sprintf("%q is not one of trace, debug, info, warn, error", c.LogLevel))
		}
	}
	if fs.LogFormat != nil {
		c.LogFormat = *fs.LogFormat
		if c.LogFormat != "text" && c.LogFormat != "json" {
			d.attrErr(f.Body, "log_format", "Invalid log format", `want "text" or "json"`)
		}
	}
	if fs.MaxInFlight != nil {
		c.MaxInFlight = *fs.MaxInFlight
		if c.MaxInFlight < 1 {
			d.attrErr(f.Body, "max_in_flight", "Invalid max_in_flight", "must be at least 1")
		}
	}
	if n := fs.NATS; n != nil {
		c.NATS.URL = deref(n.URL)
		c.NATS.Listen = deref(n.Listen)
		if n.StoreDir != nil {
			c.NATS.StoreDir = d.path(*n.StoreDir)
		}
		if n.ConfigFile != nil {
			c.NATS.ConfigFile = d.path(*n.ConfigFile)
		}
		c.NATS.Name = deref(n.Name)
		c.NATS.DisableJetStream = n.JetStream != nil && !*n.JetStream
		if sz, ok := d.size(n.MaxPayload, "max_payload"); ok {
			if sz > 64<<20 {
				d.exprErr(n.MaxPayload, "Invalid max_payload", "NATS allows at most 64 MiB")
			}
			c.NATS.MaxPayload = int32(sz)
		}
		if c.NATS.URL != "" && c.NATS.Listen != "" {
			d.attrErr(f.Body, "nats", "Conflicting NATS settings",
				"url connects to an external NATS; listen configures the embedded one; set one of them")
		}
	}
	for _, k := range fs.TrustedKeys {
		pub, err := sign.ParsePublicKey(k)
		if err != nil {
			d.attrErr(f.Body, "trusted_keys", "Invalid trusted key", err.Error())
			continue
		}
		c.TrustedKeys = append(c.TrustedKeys, pub)
	}
	c.RequireSigned = fs.RequireSigned != nil && *fs.RequireSigned
	if c.RequireSigned && len(fs.TrustedKeys) == 0 {
		d.attrErr(f.Body, "require_signed", "No trusted key", "require_signed needs trusted_keys, or every plugin is refused")
	}
	seen := map[string]hcl.Range{}
	failOpen := map[string]bool{}
	for i, list := range [][]pluginSchema{fs.Policies, fs.Plugins} {
		isPolicy := i == 0
		for _, ps := range list {
			if prev, dup := seen[ps.Name]; dup {
				d.add(ps.DefRange, "Duplicate plugin", fmt.Sprintf("%q is already defined at %s:%d", ps.Name, prev.Filename, prev.Start.Line))
				continue
			}
			seen[ps.Name] = ps.DefRange
			p := d.plugin(ps, c.DataDir, isPolicy)
			if isPolicy {
				failOpen[ps.Name] = ps.FailOpen != nil && *ps.FailOpen
			} else {
				// Every policy block has been read by now.
				p.Policies = d.policyRefs(ps.Policies, failOpen)
			}
			c.Plugins = append(c.Plugins, p)
		}
	}
	if hs := fs.HTTP; hs != nil {
		c.HTTP.Listen = host.DefaultHTTPListen
		if hs.Listen != nil {
			c.HTTP.Listen = *hs.Listen
		}
		if hs.TLSCert != nil {
			c.HTTP.TLSCert = d.path(*hs.TLSCert)
		}
		if hs.TLSKey != nil {
			c.HTTP.TLSKey = d.path(*hs.TLSKey)
		}
		if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
			d.add(hs.DefRange, "Incomplete TLS settings", "set both tls_cert and tls_key, or neither")
		}
		if n, ok := d.size(hs.MaxBody, "max_body"); ok {
			c.HTTP.MaxBody = int64(n)
		}
		if n, ok := d.size(hs.MaxHeader, "max_header"); ok {
			c.HTTP.MaxHeaderBytes = int(n)
		}
	}
	patterns := map[string]hcl.Range{}
	for _, rs := range fs.Routes {
		if fs.HTTP == nil {
			d.add(rs.DefRange, "HTTP route without ingress", "add an http block to serve http_route blocks")
		}
		if prev, dup := patterns[rs.Pattern]; dup {
			d.add(rs.DefRange, "Duplicate http_route", fmt.Sprintf("%q is already defined at %s:%d", rs.Pattern, prev.Filename, prev.Start.Line))
			continue
		}
		patterns[rs.Pattern] = rs.DefRange
		method, path, _ := strings.Cut(rs.Pattern, " ")
		if !strings.HasPrefix(path, "/") || method == "" || strings.ToUpper(method) != method {
			d.add(rs.DefRange, "Invalid http_route", fmt.Sprintf("%q: want \"METHOD /path\", such as \"GET /orders/{id}\"", rs.Pattern))
		}
		rt := host.HTTPRoute{Pattern: rs.Pattern, Subject: rs.Subject, Event: rs.Event != nil && *rs.Event}
		probe := strings.NewReplacer("{", "", "}", "").Replace(rs.Subject)
		if err := abi.ValidSubject(probe, false); err != nil {
			d.add(rs.DefRange, "Invalid subject", fmt.Sprintf("%q: %v", rs.Subject, err))
		}
		rt.Policies = d.policyRefs(rs.Policies, failOpen)
		if t, ok := d.duration(rs.Timeout, "timeout"); ok && t > 0 {
			rt.Timeout = t
		}
		c.HTTP.Routes = append(c.HTTP.Routes, rt)
	}
	if d.diags.HasErrors() {
		return nil, &Error{d.diags}
	}
	return c, nil
}

type decoder struct {
	base  string
	diags hcl.Diagnostics
}

func (d *decoder) add(r hcl.Range, summary, detail string) {
	r2 := r
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &r2})
}

func (d *decoder) exprErr(e hcl.Expression, summary, detail string) {
	d.add(e.Range(), summary, detail)
}

func (d *decoder) attrErr(body hcl.Body, name, summary, detail string) {
	r := body.MissingItemRange()
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a, ok := sb.Attributes[name]; ok {
			r = a.SrcRange
		} else {
			for _, b := range sb.Blocks {
				if b.Type == name {
					r = b.TypeRange
				}
			}
		}
	}
	d.add(r, summary, detail)
}

func (d *decoder) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.base, p)
}

// set reports whether an optional expression attribute was given.
func set(e hcl.Expression) bool {
	if e == nil {
		return false
	}
	v, diags := e.Value(nil)
	return diags.HasErrors() || !v.IsNull()
}

func (d *decoder) value(e hcl.Expression) (cty.Value, bool) {
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return cty.NilVal, false
	}
	return v, true
}

func (d *decoder) str(e hcl.Expression, name string) (string, bool) {
	if !set(e) {
		return "", false
	}
	v, ok := d.value(e)
	if !ok {
		return "", false
	}
	if v.Type() == cty.Number {
		return v.AsBigFloat().String(), true
	}
	if v.Type() != cty.String {
		d.exprErr(e, "Invalid "+name, "want a string")
		return "", false
	}
	return v.AsString(), true
}

func (d *decoder) strings(e hcl.Expression, name string) []string {
	if !set(e) {
		return nil
	}
	v, ok := d.value(e)
	if !ok {
		return nil
	}
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		d.exprErr(e, "Invalid "+name, `want a list of strings, such as ["orders.*"]`)
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.Type() != cty.String {
			d.exprErr(e, "Invalid "+name, "every element must be a string")
			return nil
		}
		out = append(out, ev.AsString())
	}
	return out
}

func (d *decoder) duration(e hcl.Expression, name string) (time.Duration, bool) {
	s, ok := d.str(e, name)
	if !ok {
		return 0, false
	}
	if s == "none" {
		return -1, true
	}
	t, err := time.ParseDuration(s)
	if err != nil || t <= 0 {
		d.exprErr(e, "Invalid "+name, fmt.Sprintf(`%q is not a positive duration such as "500ms" or "2s" (or "none")`, s))
		return 0, false
	}
	return t, true
}

var units = []struct {
	suffix string
	mult   uint64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}

func (d *decoder) size(e hcl.Expression, name string) (uint64, bool) {
	s, ok := d.str(e, name)
	if !ok {
		return 0, false
	}
	n, err := ParseSize(s)
	if err != nil {
		d.exprErr(e, "Invalid "+name, err.Error())
		return 0, false
	}
	return n, true
}

// ParseSize parses a byte size such as "64MiB", "512KiB", "1GB" or "1048576".
func ParseSize(s string) (uint64, error) {
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	var n uint64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n == 0 || fmt.Sprint(n) != num {
		return 0, fmt.Errorf(`%q is not a size such as "64MiB", "512KiB" or "1048576"`, s)
	}
	return n * mult, nil
}

// policyRefs resolves a policies attribute against the policy blocks.
func (d *decoder) policyRefs(e hcl.Expression, failOpen map[string]bool) []host.PolicyRef {
	var refs []host.PolicyRef
	for _, name := range d.strings(e, "policies") {
		open, ok := failOpen[name]
		if !ok {
			d.exprErr(e, "Unknown policy", fmt.Sprintf("no policy block named %q", name))
			continue
		}
		refs = append(refs, host.PolicyRef{Name: name, FailOpen: open})
	}
	return refs
}

func (d *decoder) plugin(ps pluginSchema, dataDir string, isPolicy bool) Plugin {
	p := Plugin{Spec: host.Spec{Name: ps.Name, Config: ps.Config, Queue: deref(ps.Queue), Policy: isPolicy,
		KVNamespace: deref(ps.KVNamespace)}}
	if isPolicy {
		for _, bad := range []struct {
			set  bool
			name string
		}{{set(ps.Subjects), "subjects"}, {set(ps.Policies), "policies"}, {ps.Retries != nil, "retries"},
			{ps.Breaker != nil, "breaker"}, {ps.Fallback != nil, "fallback"}, {ps.DeadLetter != nil, "dead_letter"}} {
			if bad.set {
				d.add(ps.DefRange, "Invalid policy setting", fmt.Sprintf("%s applies to plugin blocks (handlers), not to policies", bad.name))
			}
		}
	} else if ps.FailOpen != nil {
		d.add(ps.DefRange, "Invalid plugin setting", "fail_open applies to policy blocks")
	}
	res := &p.Resilience
	res.Idempotent = ps.Idempotent != nil && *ps.Idempotent
	if ps.Retries != nil {
		res.Retries = *ps.Retries
		if res.Retries < 0 || res.Retries > 10 {
			d.add(ps.DefRange, "Invalid retries", "want 0 to 10")
		}
		if res.Retries > 0 && !res.Idempotent {
			d.add(ps.DefRange, "Retries on a handler not marked idempotent",
				"set idempotent = true if the handler is safe to call twice with one message; nothing else is retried")
		}
	}
	if t, ok := d.duration(ps.Backoff, "backoff"); ok && t > 0 {
		res.Backoff = t
	}
	if b := ps.Breaker; b != nil {
		res.BreakerFailures = b.Failures
		if b.Failures < 1 {
			d.add(ps.DefRange, "Invalid breaker", "failures must be at least 1")
		}
		if t, ok := d.duration(b.Cooldown, "cooldown"); ok && t > 0 {
			res.BreakerCooldown = t
		}
	}
	if ps.Fallback != nil {
		res.Fallback = []byte(*ps.Fallback)
	}
	if ps.DeadLetter != nil {
		res.DeadLetter = *ps.DeadLetter
		if err := abi.ValidSubject(res.DeadLetter, false); err != nil {
			d.add(ps.DefRange, "Invalid dead_letter", fmt.Sprintf("%q: %v", res.DeadLetter, err))
		}
	}
	if err := abi.ValidSubject(ps.Name, false); err != nil || strings.Contains(ps.Name, ".") {
		d.add(ps.DefRange, "Invalid plugin name", fmt.Sprintf("%q: use letters, digits, '-' and '_'", ps.Name))
	}
	switch {
	case ps.Path != nil && ps.Source != nil:
		d.add(ps.DefRange, "Conflicting plugin settings", "set path (a .wasm file) or source (a directory to build), not both")
	case ps.Path != nil:
		p.Path = d.path(*ps.Path)
	case ps.Source != nil:
		p.Source = d.path(*ps.Source)
		p.Path = filepath.Join(dataDir, "build", ps.Name+".wasm")
	default:
		d.add(ps.DefRange, "Missing plugin file", fmt.Sprintf("plugin %q needs path = \"FILE.wasm\" or source = \"DIR\"", ps.Name))
	}
	p.Subjects = d.strings(ps.Subjects, "subjects")
	for _, s := range p.Subjects {
		if err := abi.ValidSubject(s, true); err != nil {
			d.exprErr(ps.Subjects, "Invalid subject", fmt.Sprintf("%q: %v", s, err))
		}
	}
	p.Grants.Publish = d.strings(ps.Publish, "publish")
	p.Grants.Request = d.strings(ps.Request, "request")
	for _, e := range []struct {
		list []string
		expr hcl.Expression
	}{{p.Grants.Publish, ps.Publish}, {p.Grants.Request, ps.Request}} {
		for _, s := range e.list {
			if err := abi.ValidSubject(s, true); err != nil {
				d.exprErr(e.expr, "Invalid subject", fmt.Sprintf("%q: %v", s, err))
			}
		}
	}
	p.Grants.Env = ps.Env
	for _, ds := range ps.Dirs {
		ro := ds.ReadOnly == nil || *ds.ReadOnly
		if !strings.HasPrefix(ds.GuestPath, "/") {
			d.add(ds.DefRange, "Invalid dir", fmt.Sprintf("guest path %q must be absolute", ds.GuestPath))
		}
		p.Grants.Dirs = append(p.Grants.Dirs, plugin.Dir{HostPath: d.path(ds.HostPath), GuestPath: ds.GuestPath, ReadOnly: ro})
	}
	if s, ok := d.str(ps.PoolSize, "pool_size"); ok {
		var n int
		if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 1 || n > 4096 {
			d.exprErr(ps.PoolSize, "Invalid pool_size", "want a whole number from 1 to 4096")
		}
		p.PoolSize = n
	}
	if t, ok := d.duration(ps.Timeout, "timeout"); ok {
		p.Timeout = t
	}
	if n, ok := d.size(ps.MemoryLimit, "memory_limit"); ok {
		if n < 64<<10 || n > 4<<30 {
			d.exprErr(ps.MemoryLimit, "Invalid memory_limit", "must be between 64KiB and 4GiB")
		}
		p.MemoryLimit = n
	}
	return p
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
