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
//	  export = ["greet"]
//	  user "alice" {
//	    password = "$2a$11$..." # bcrypt, or plain text
//	  }
//	}
//
//	http {
//	  listen       = "127.0.0.1:8080"
//	  read_timeout = "30s"   # a whole request, body included
//	  idle_timeout = "60s"   # a keep-alive connection between requests
//	  max_conns    = 1024    # open at once; more wait to be accepted
//	}
//
//	plugin "greet" {
//	  path         = "plugins/greet.wasm"
//	  subjects     = ["greet"]
//	  timeout      = "2s"
//	  pool_size    = 8
//	  memory_limit = "64MiB"
//	  config       = { greeting = "Hello" }
//	  publish      = ["audit.>"]
//	  shared       = false   # true on each handler meant to share a subject
//	}
//
// Numbers are read strictly: a size is a whole number of bytes or a string
// with a unit ("64MiB"), a count a whole number (8 or "8"), a duration a
// string ("2s"); trailing characters, fractions, signs where none makes
// sense, overflows and values outside the bounds declared below are each
// refused with a diagnostic naming the attribute. Parse checks what it can
// from the file alone; Check also opens every module the file names.
//
// The nats block's authentication settings (user blocks, export,
// export_stream, allow_unauthenticated, tls_cert, tls_key, tls_ca,
// credentials, username, password, token, nkey_seed_file) are described
// in nats.go beside their schema and map onto bus.Options; its cluster,
// leafnodes and jetstream blocks in cluster.go.
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
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/internal/regfile"
	"github.com/trellis-mesh/trellis/host/sign"
	"github.com/trellis-mesh/trellis/host/tracing"
)

// Config is a validated configuration.
type Config struct {
	// File is the path the configuration was read from.
	File string
	// Files are the files its file() calls read: watched with it, and
	// applied again when one changes.
	Files []string
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

	// httpRange and natsRange are where the http and nats blocks are, for
	// Check's diagnostics.
	httpRange, natsRange hcl.Range
	// TrustedKeys (trusted_keys, "ed25519:BASE64" each, as `trellis keygen`
	// prints) and RequireSigned (require_signed): see host.Options.
	TrustedKeys   []ed25519.PublicKey
	RequireSigned bool
	// Rollouts (rollouts) and RolloutLease (rollout_lease): see
	// host.Options and rollouts.go.
	Rollouts     host.RolloutMode
	RolloutLease time.Duration
	// Admin is the admin endpoint (the admin block, see admin.go); Listen
	// is empty when the file has none.
	Admin admin.Options
	// Tracing is the tracing block (see tracing.go); zero when the file has
	// none. Combine it with the environment's: tracing.FromEnv, Override.
	Tracing tracing.Config
}

// Plugin is one plugin block.
type Plugin struct {
	host.Spec
	// Source, if set, is a plugin source directory to build into Path.
	Source string
	// Range is where the block is in the file, for Check's diagnostics.
	Range hcl.Range
	// SubjectsRange is where its subjects attribute is, or Range when it
	// has none.
	SubjectsRange hcl.Range
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
	MaxInFlight hcl.Expression `hcl:"max_in_flight,optional"`
	NATS        *natsSchema    `hcl:"nats,block"`
	HTTP        *httpSchema    `hcl:"http,block"`
	Policies    []pluginSchema `hcl:"policy,block"`
	Plugins     []pluginSchema `hcl:"plugin,block"`
	Routes      []routeSchema  `hcl:"http_route,block"`
	Admin       *adminSchema   `hcl:"admin,block"`   // see admin.go
	Tracing     *tracingSchema `hcl:"tracing,block"` // see tracing.go

	TrustedKeys   []string `hcl:"trusted_keys,optional"`
	RequireSigned *bool    `hcl:"require_signed,optional"`

	Rollouts     *string        `hcl:"rollouts,optional"` // see rollouts.go
	RolloutLease hcl.Expression `hcl:"rollout_lease,optional"`
}

type httpSchema struct {
	Listen       *string        `hcl:"listen,optional"`
	TLSCert      *string        `hcl:"tls_cert,optional"`
	TLSKey       *string        `hcl:"tls_key,optional"`
	ClientCA     *string        `hcl:"client_ca,optional"`
	MaxBody      hcl.Expression `hcl:"max_body,optional"`
	MaxHeader    hcl.Expression `hcl:"max_header,optional"`
	ReadTimeout  hcl.Expression `hcl:"read_timeout,optional"`
	WriteTimeout hcl.Expression `hcl:"write_timeout,optional"`
	IdleTimeout  hcl.Expression `hcl:"idle_timeout,optional"`
	MaxConns     hcl.Expression `hcl:"max_conns,optional"`
	DefRange     hcl.Range      `hcl:",def_range"`
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
	Failures hcl.Expression `hcl:"failures"`
	Cooldown hcl.Expression `hcl:"cooldown,optional"`
}

type natsSchema struct {
	URL        *string        `hcl:"url,optional"`
	Listen     *string        `hcl:"listen,optional"`
	StoreDir   *string        `hcl:"store_dir,optional"`
	MaxPayload hcl.Expression `hcl:"max_payload,optional"`
	ConfigFile *string        `hcl:"config_file,optional"`
	Name       *string        `hcl:"name,optional"`
	// Authentication and TLS; see nats.go in this package.
	Users                []natsUserSchema `hcl:"user,block"`
	Export               hcl.Expression   `hcl:"export,optional"`
	ExportStream         hcl.Expression   `hcl:"export_stream,optional"`
	AllowUnauthenticated *bool            `hcl:"allow_unauthenticated,optional"`
	TLSCert              *string          `hcl:"tls_cert,optional"`
	TLSKey               *string          `hcl:"tls_key,optional"`
	TLSCA                *string          `hcl:"tls_ca,optional"`
	Credentials          *string          `hcl:"credentials,optional"`
	Username             *string          `hcl:"username,optional"`
	Password             *string          `hcl:"password,optional"`
	Token                *string          `hcl:"token,optional"`
	NKeySeedFile         *string          `hcl:"nkey_seed_file,optional"`
	// Clustering, leaf nodes and jetstream (an attribute or a block, read
	// from Rest); see cluster.go in this package.
	Cluster   *clusterSchema   `hcl:"cluster,block"`
	LeafNodes *leafNodesSchema `hcl:"leafnodes,block"`
	Rest      hcl.Body         `hcl:",remain"`
	DefRange  hcl.Range        `hcl:",def_range"`
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
	Config      hcl.Expression    `hcl:"config,optional"`
	Publish     hcl.Expression    `hcl:"publish,optional"`
	Request     hcl.Expression    `hcl:"request,optional"`
	Env         map[string]string `hcl:"env,optional"`
	Dirs        []dirSchema       `hcl:"dir,block"`
	KVNamespace *string           `hcl:"kv_namespace,optional"`
	Shared      *bool             `hcl:"shared,optional"`
	JWKS        []jwksSchema      `hcl:"jwks,block"` // see jwks.go
	// Policies only.
	FailOpen *bool `hcl:"fail_open,optional"`
	// Handlers only.
	Policies   hcl.Expression `hcl:"policies,optional"`
	Idempotent *bool          `hcl:"idempotent,optional"`
	Retries    hcl.Expression `hcl:"retries,optional"`
	Backoff    hcl.Expression `hcl:"backoff,optional"`
	Breaker    *breakerSchema `hcl:"breaker,block"`
	Fallback   *string        `hcl:"fallback,optional"`
	DeadLetter *string        `hcl:"dead_letter,optional"`
	Durable    *durableSchema `hcl:"durable,block"` // see durable.go
	Record     *recordSchema  `hcl:"record,block"`  // see record.go
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
	if diags := checkNumberLiterals(src, filename); diags.HasErrors() {
		return nil, &Error{diags}
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &Error{diags}
	}
	d := &decoder{base: filepath.Dir(filename), src: src}
	d.ctx = d.evalContext()
	var fs fileSchema
	if diags := gohcl.DecodeBody(f.Body, d.ctx, &fs); diags.HasErrors() {
		return nil, &Error{diags}
	}
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
	if n, ok := d.integer(fs.MaxInFlight, "max_in_flight", 1, MaxInFlight); ok {
		c.MaxInFlight = int(n)
	}
	c.natsRange = hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
	if n := fs.NATS; n != nil {
		c.natsRange = n.DefRange
		c.NATS.URL = deref(n.URL)
		c.NATS.Listen = deref(n.Listen)
		if n.StoreDir != nil {
			c.NATS.StoreDir = d.path(*n.StoreDir)
		}
		if n.ConfigFile != nil {
			c.NATS.ConfigFile = d.path(*n.ConfigFile)
		}
		c.NATS.Name = deref(n.Name)
		if sz, ok := d.size(n.MaxPayload, "max_payload", 1, MaxNATSPayload); ok {
			c.NATS.MaxPayload = int32(sz)
		}
		if c.NATS.URL != "" && c.NATS.Listen != "" {
			d.attrErr(f.Body, "nats", "Conflicting NATS settings",
				"url connects to an external NATS; listen configures the embedded one; set one of them")
		}
		d.natsAuth(n, &c.NATS)
		d.natsCluster(n, &c.NATS)
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
	d.rollouts(f.Body, &fs, c)
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
		c.httpRange = hs.DefRange
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
		if hs.ClientCA != nil {
			c.HTTP.ClientCA = d.path(*hs.ClientCA)
			if c.HTTP.TLSCert == "" {
				d.add(hs.DefRange, "Incomplete TLS settings", "client_ca verifies client certificates, which needs tls_cert and tls_key")
			}
		}
		if n, ok := d.size(hs.MaxBody, "max_body", 1, MaxHTTPBody); ok {
			c.HTTP.MaxBody = int64(n)
		}
		if n, ok := d.size(hs.MaxHeader, "max_header", 1, MaxHTTPHeader); ok {
			c.HTTP.MaxHeaderBytes = int(n)
		}
		if t, ok := d.duration(hs.ReadTimeout, "read_timeout", false); ok {
			c.HTTP.ReadTimeout = t
		}
		if t, ok := d.duration(hs.WriteTimeout, "write_timeout", false); ok {
			c.HTTP.WriteTimeout = t
		}
		if t, ok := d.duration(hs.IdleTimeout, "idle_timeout", false); ok {
			c.HTTP.IdleTimeout = t
		}
		if n, ok := d.integer(hs.MaxConns, "max_conns", 1, MaxHTTPConns); ok {
			c.HTTP.MaxConns = int(n)
		}
	}
	d.routes(fs.Routes, fs.HTTP != nil, c, failOpen)
	d.admin(fs.Admin, c)
	d.tracing(fs.Tracing, c)
	d.subjectConflicts(c.Plugins)
	if d.diags.HasErrors() {
		return nil, &Error{d.diags}
	}
	c.Files = d.files
	return c, nil
}

type decoder struct {
	base  string
	src   []byte // the file, to quote a value as written
	diags hcl.Diagnostics
	ctx   *hcl.EvalContext // the functions expressions may call (functions.go)
	files []string         // read by file()
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
	v, diags := e.Value(d.ctx)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return cty.NilVal, false
	}
	return v, true
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
	p := Plugin{Spec: host.Spec{Name: ps.Name, Config: d.pluginConfig(ps.Config), Queue: deref(ps.Queue), Policy: isPolicy,
		KVNamespace: deref(ps.KVNamespace), Shared: ps.Shared != nil && *ps.Shared}}
	p.Range = ps.DefRange
	p.SubjectsRange = ps.DefRange
	if set(ps.Subjects) {
		p.SubjectsRange = ps.Subjects.Range()
	}
	if isPolicy {
		for _, bad := range []struct {
			set  bool
			name string
		}{{set(ps.Subjects), "subjects"}, {set(ps.Policies), "policies"}, {set(ps.Retries), "retries"},
			{ps.Breaker != nil, "breaker"}, {ps.Fallback != nil, "fallback"}, {ps.DeadLetter != nil, "dead_letter"},
			{ps.Shared != nil, "shared"}} {
			if bad.set {
				d.add(ps.DefRange, "Invalid policy setting", fmt.Sprintf("%s applies to plugin blocks (handlers), not to policies", bad.name))
			}
		}
	} else if ps.FailOpen != nil {
		d.add(ps.DefRange, "Invalid plugin setting", "fail_open applies to policy blocks")
	}
	p.Durable = d.durable(ps.Durable, isPolicy)
	res := &p.Resilience
	res.Idempotent = ps.Idempotent != nil && *ps.Idempotent
	if n, ok := d.integer(ps.Retries, "retries", 0, MaxRetries); ok {
		res.Retries = int(n)
		if res.Retries > 0 && !res.Idempotent {
			d.exprErr(ps.Retries, "Retries on a handler not marked idempotent",
				"set idempotent = true if the handler is safe to call twice with one message; nothing else is retried")
		}
	}
	if t, ok := d.duration(ps.Backoff, "backoff", false); ok {
		res.Backoff = t
	}
	if b := ps.Breaker; b != nil {
		if n, ok := d.integer(b.Failures, "failures", 1, MaxBreakerFailures); ok {
			res.BreakerFailures = int(n)
		}
		if t, ok := d.duration(b.Cooldown, "cooldown", false); ok {
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
	p.KeySources = d.keySources(ps.JWKS, p.Config)
	d.record(ps.Record, &p)
	if n, ok := d.integer(ps.PoolSize, "pool_size", 1, MaxPoolSize); ok {
		p.PoolSize = int(n)
	}
	if t, ok := d.duration(ps.Timeout, "timeout", true); ok {
		p.Timeout = t
	}
	if n, ok := d.size(ps.MemoryLimit, "memory_limit", MinMemoryLimit, MaxMemoryLimit); ok {
		p.MemoryLimit = n
	}
	return p
}

// routes reads the http_route blocks into c.HTTP.Routes and refuses every
// route the ingress would refuse, by the ingress's own rule.
func (d *decoder) routes(list []routeSchema, haveHTTP bool, c *Config, failOpen map[string]bool) {
	var ranges []hcl.Range
	for _, rs := range list {
		if !haveHTTP {
			d.add(rs.DefRange, "HTTP route without ingress", "add an http block to serve http_route blocks")
		}
		method, path, _ := strings.Cut(rs.Pattern, " ")
		if !strings.HasPrefix(path, "/") || method == "" || strings.ToUpper(method) != method {
			d.add(rs.DefRange, "Invalid http_route", fmt.Sprintf("%q: want \"METHOD /path\", such as \"GET /orders/{id}\"", rs.Pattern))
			continue
		}
		rt := host.HTTPRoute{Pattern: rs.Pattern, Subject: rs.Subject, Event: rs.Event != nil && *rs.Event}
		probe := strings.NewReplacer("{", "", "}", "").Replace(rs.Subject)
		if err := abi.ValidSubject(probe, false); err != nil {
			d.add(rs.DefRange, "Invalid subject", fmt.Sprintf("%q: %v", rs.Subject, err))
		}
		rt.Policies = d.policyRefs(rs.Policies, failOpen)
		if t, ok := d.duration(rs.Timeout, "timeout", false); ok {
			rt.Timeout = t
			write := c.HTTP.WriteTimeout
			if write == 0 {
				write = host.DefaultWriteTimeout
			}
			if t >= write {
				d.exprErr(rs.Timeout, "Invalid timeout", fmt.Sprintf("%s is not shorter than the http block's write_timeout (%s), which would cut the answer off", t, write))
			}
		}
		c.HTTP.Routes = append(c.HTTP.Routes, rt)
		ranges = append(ranges, rs.DefRange)
	}
	for _, e := range host.CheckHTTPRoutes(c.HTTP.Routes) {
		d.add(ranges[e.Index], "Invalid http_route", e.Error())
	}
}

// subjectConflicts refuses two handlers whose configured subjects overlap
// (some subject matches both) unless both are marked shared. Subjects a
// plugin declares itself are known only once it is compiled: Check and
// the host's Load see those.
func (d *decoder) subjectConflicts(plugins []Plugin) {
	for i, a := range plugins {
		for _, b := range plugins[:i] {
			if a.Policy || b.Policy || (a.Shared && b.Shared) {
				continue
			}
			if sa, sb, ok := host.OverlappingSubjects(a.Subjects, b.Subjects); ok {
				d.add(a.SubjectsRange, "Subject served by two plugins",
					fmt.Sprintf("%q of %q overlaps %q of %q (%s:%d); set shared = true on both if each should get these messages",
						sa, a.Name, sb, b.Name, b.Range.Filename, b.Range.Start.Line))
			}
		}
	}
}

// pluginConfig reads a plugin's config map, bounded by the ABI's limits on
// config keys and values. Numbers and bools are given as their text.
func (d *decoder) pluginConfig(e hcl.Expression) map[string]string {
	if !set(e) {
		return nil
	}
	v, ok := d.value(e)
	if !ok || v.IsNull() {
		return nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		d.exprErr(e, "Invalid config", `want a map of strings, such as { region = "eu" }`)
		return nil
	}
	out := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		key := k.AsString()
		if !ev.IsNull() && ev.Type().IsPrimitiveType() {
			ev, _ = convert.Convert(ev, cty.String)
		}
		if ev.IsNull() || ev.Type() != cty.String {
			d.exprErr(e, "Invalid config", fmt.Sprintf("%q: want a string, number or bool", key))
			continue
		}
		val := ev.AsString()
		switch {
		case key == "":
			d.exprErr(e, "Invalid config", "a key is empty")
		case len(key) > abi.MaxConfigKeyLen:
			d.exprErr(e, "Invalid config", fmt.Sprintf("key %.32q... is %d bytes; at most %d (MaxConfigKeyLen)", key, len(key), abi.MaxConfigKeyLen))
		case len(val) > abi.MaxConfigValueLen:
			d.exprErr(e, "Invalid config", fmt.Sprintf("value of %q is %d bytes; at most %d (MaxConfigValueLen)", key, len(val), abi.MaxConfigValueLen))
		}
		out[key] = val
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
