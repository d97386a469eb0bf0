package config

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/trellis-mesh/trellis/host"
)

// durableSchema is a plugin block's durable block: its subjects come from a
// JetStream stream (see host.Durable).
type durableSchema struct {
	Stream     *string        `hcl:"stream,optional"`
	MaxDeliver hcl.Expression `hcl:"max_deliver,optional"`
	Backoff    hcl.Expression `hcl:"backoff,optional"`
	AckWait    hcl.Expression `hcl:"ack_wait,optional"`
	MaxAge     hcl.Expression `hcl:"max_age,optional"`
	MaxBytes   hcl.Expression `hcl:"max_bytes,optional"`
	MaxMsgs    hcl.Expression `hcl:"max_msgs,optional"`
	Replicas   hcl.Expression `hcl:"replicas,optional"`
	Duplicates hcl.Expression `hcl:"duplicates,optional"`
	Ordered    *bool          `hcl:"ordered,optional"`
	DefRange   hcl.Range      `hcl:",def_range"`
}

// MaxDeliverLimit caps durable.max_deliver.
const MaxDeliverLimit = 1000

// durable decodes a durable block; nil without one.
func (d *decoder) durable(ds *durableSchema, isPolicy bool) *host.Durable {
	if ds == nil {
		return nil
	}
	if isPolicy {
		d.add(ds.DefRange, "Invalid policy setting", "durable applies to plugin blocks (handlers), not to policies")
		return nil
	}
	out := &host.Durable{Ordered: ds.Ordered != nil && *ds.Ordered}
	if ds.Stream != nil {
		out.Stream = *ds.Stream
	}
	if n, ok := d.integer(ds.MaxDeliver, "max_deliver", 1, MaxDeliverLimit); ok {
		out.MaxDeliver = int(n)
	}
	if set(ds.Backoff) {
		for i, s := range d.strings(ds.Backoff, "backoff") {
			b, err := time.ParseDuration(s)
			if err != nil || b <= 0 {
				d.exprErr(ds.Backoff, "Invalid backoff", fmt.Sprintf("item %d, %q: want a positive duration such as \"1s\"", i+1, s))
				continue
			}
			out.Backoff = append(out.Backoff, b)
		}
	}
	if t, ok := d.duration(ds.AckWait, "ack_wait", false); ok {
		out.AckWait = t
	}
	if t, ok := d.duration(ds.MaxAge, "max_age", false); ok {
		out.MaxAge = t
	}
	if t, ok := d.duration(ds.Duplicates, "duplicates", false); ok {
		out.Duplicates = t
	}
	if n, ok := d.size(ds.MaxBytes, "max_bytes", 1, math.MaxInt64); ok {
		out.MaxBytes = int64(n)
	}
	if n, ok := d.integer(ds.MaxMsgs, "max_msgs", 1, math.MaxInt64); ok {
		out.MaxMsgs = n
	}
	if n, ok := d.integer(ds.Replicas, "replicas", 1, 5); ok {
		out.Replicas = int(n)
	}
	return out
}
