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
	"fmt"
	"os"
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
	"github.com/trellis-mesh/trellis/host/plugin"
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
	// Plugins in the order the file lists them.
	Plugins []Plugin
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
	Plugins     []pluginSchema `hcl:"plugin,block"`
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
	DefRange    hcl.Range         `hcl:",def_range"`
}

type dirSchema struct {
	GuestPath string    `hcl:"guest_path,label"`
	HostPath  string    `hcl:"host_path"`
	ReadOnly  *bool     `hcl:"read_only,optional"`
	DefRange  hcl.Range `hcl:",def_range"`
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
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
	seen := map[string]hcl.Range{}
	for _, ps := range fs.Plugins {
		if prev, dup := seen[ps.Name]; dup {
			d.add(ps.DefRange, "Duplicate plugin", fmt.Sprintf("plugin %q is already defined at %s:%d", ps.Name, prev.Filename, prev.Start.Line))
			continue
		}
		seen[ps.Name] = ps.DefRange
		c.Plugins = append(c.Plugins, d.plugin(ps, c.DataDir))
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

func (d *decoder) plugin(ps pluginSchema, dataDir string) Plugin {
	p := Plugin{Spec: host.Spec{Name: ps.Name, Config: ps.Config, Queue: deref(ps.Queue)}}
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
