package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host"
)

// recordSchema is a plugin block's record block: the handler's traffic on
// chosen subjects is recorded for replay (see host.Record).
//
//	plugin "orders" {
//	  path     = "plugins/orders.wasm"
//	  subjects = ["orders.>"]
//	  record {
//	    subjects  = ["orders.created"] # within the plugin's subjects; default all of them
//	    max_age   = "1h"               # default 1h, at most 168h
//	    max_bytes = "64MiB"            # default 64MiB, at most 8GiB
//	    enabled   = true               # false: the stream is ready, `trellis record --on` starts it
//	  }
//	}
type recordSchema struct {
	Subjects hcl.Expression `hcl:"subjects,optional"`
	MaxAge   hcl.Expression `hcl:"max_age,optional"`
	MaxBytes hcl.Expression `hcl:"max_bytes,optional"`
	Enabled  *bool          `hcl:"enabled,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
}

// record decodes p's record block into p.Record, checking each subject
// against the plugin's subjects (which a config lists: a module may
// subscribe only to what it is granted). The host checks them again when
// it loads the plugin.
func (d *decoder) record(rs *recordSchema, p *Plugin) {
	if rs == nil {
		return
	}
	if p.Policy || p.Durable != nil {
		d.add(rs.DefRange, "Invalid record block", "record applies to handlers fed by subscriptions, not to policies or durable handlers (whose events are stored already)")
		return
	}
	r := &host.Record{Off: rs.Enabled != nil && !*rs.Enabled}
	r.Subjects = d.strings(rs.Subjects, "record subjects")
	if len(r.Subjects) > host.MaxRecordSubjects {
		d.exprErr(rs.Subjects, "Invalid record subjects", fmt.Sprintf("%d subjects, more than %d (host.MaxRecordSubjects)", len(r.Subjects), host.MaxRecordSubjects))
	}
	for _, s := range r.Subjects {
		if err := abi.ValidSubject(s, true); err != nil {
			d.exprErr(rs.Subjects, "Invalid record subject", fmt.Sprintf("%q: %v", s, err))
		} else if len(p.Subjects) > 0 && !withinAny(s, p.Subjects) {
			d.exprErr(rs.Subjects, "Record subject outside the plugin's", fmt.Sprintf("%q is not within subjects %q of plugin %q: a plugin records only its own traffic", s, p.Subjects, p.Name))
		}
	}
	if t, ok := d.duration(rs.MaxAge, "max_age", false); ok {
		if t < 1e9 || t > host.MaxRecordAge {
			d.exprErr(rs.MaxAge, "Invalid max_age", fmt.Sprintf("%s: want 1s to %s (host.MaxRecordAge)", t, host.MaxRecordAge))
		}
		r.MaxAge = t
	}
	if n, ok := d.size(rs.MaxBytes, "max_bytes", 2*host.MaxRecordedMessage, host.MaxRecordBytes); ok {
		r.MaxBytes = int64(n)
	}
	p.Record = r
}

func withinAny(s string, patterns []string) bool {
	for _, p := range patterns {
		if host.SubjectWithin(s, p) {
			return true
		}
	}
	return false
}
