package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/trellis-mesh/trellis/host/bus"
)

// clusterSchema is the nats block's cluster block: the embedded server
// becomes one member of a NATS cluster (see bus.Cluster).
//
//	cluster {
//	  name          = "trellis"                 # the same on every member
//	  listen        = "0.0.0.0:6222"            # where the others route to this one
//	  advertise     = "trellis-0.trellis:6222"  # if they reach it at another address
//	  routes        = ["nats-route://trellis-0.trellis:6222", "nats-route://trellis-1.trellis:6222"]
//	  username      = "route"                   # route credentials, the same on every member
//	  password_file = "/etc/trellis/secret/route-password"
//	}
//
// The nats block's name is then this member's name in the cluster: unique,
// and the same after a restart (JetStream knows its peers by it). Left
// out, it is the machine's hostname, which is what a Kubernetes
// StatefulSet's pods need.
type clusterSchema struct {
	Name         *string        `hcl:"name,optional"`
	Listen       string         `hcl:"listen"`
	Advertise    *string        `hcl:"advertise,optional"`
	Routes       hcl.Expression `hcl:"routes,optional"`
	Username     *string        `hcl:"username,optional"`
	Password     *string        `hcl:"password,optional"`
	PasswordFile *string        `hcl:"password_file,optional"`
	DefRange     hcl.Range      `hcl:",def_range"`
}

// leafNodesSchema is the nats block's leafnodes block: the embedded server
// attaches as a leaf node to each remote's hub (see bus.LeafRemote).
//
//	leafnodes {
//	  remote {
//	    urls        = ["nats-leaf://hub.example.com:7422"]
//	    credentials = "hub.creds"
//	    account     = "TRELLIS"   # the local account shared with the hub (default: the host's)
//	  }
//	}
type leafNodesSchema struct {
	Remotes  []leafRemoteSchema `hcl:"remote,block"`
	DefRange hcl.Range          `hcl:",def_range"`
}

type leafRemoteSchema struct {
	URLs        hcl.Expression `hcl:"urls"`
	Credentials *string        `hcl:"credentials,optional"`
	Account     *string        `hcl:"account,optional"`
	DefRange    hcl.Range      `hcl:",def_range"`
}

// jetStreamSchema is the nats block's jetstream block. The older form,
// jetstream = true or false, still reads; the block says more:
//
//	jetstream {
//	  enabled  = true     # default
//	  replicas = 3        # copies of the KV bucket; default 3 with a cluster block, else 1
//	  domain   = "edge"   # a leaf node's own JetStream domain
//	}
type jetStreamSchema struct {
	Enabled  *bool          `hcl:"enabled,optional"`
	Replicas hcl.Expression `hcl:"replicas,optional"`
	Domain   *string        `hcl:"domain,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
}

// jetStreamAttr and jetStreamBlock read what the nats block's schema
// leaves over (its remain body): jetstream, as an attribute or a block.
type jetStreamAttr struct {
	JetStream *bool `hcl:"jetstream,optional"`
}

type jetStreamBlock struct {
	JetStream *jetStreamSchema `hcl:"jetstream,block"`
}

// natsCluster reads the nats block's cluster, leafnodes and jetstream
// settings into o. It runs after natsAuth, whose allow_unauthenticated it
// honours for routes.
func (d *decoder) natsCluster(n *natsSchema, o *bus.Options) {
	external := o.URL != ""
	d.natsJetStream(n, o)
	if c := n.Cluster; c != nil {
		if external {
			d.add(c.DefRange, "Invalid nats setting", "a cluster block makes the embedded server a cluster member; with url the host uses that NATS as it is")
		} else {
			d.cluster(c, o)
		}
	}
	if l := n.LeafNodes; l != nil {
		if external {
			d.add(l.DefRange, "Invalid nats setting", "a leafnodes block attaches the embedded server to a hub; with url the host uses that NATS as it is")
		}
		if len(l.Remotes) == 0 {
			d.add(l.DefRange, "Invalid leafnodes", "add a remote block with the hub's urls")
		}
		for _, r := range l.Remotes {
			lr := bus.LeafRemote{URLs: d.strings(r.URLs, "urls"), Account: deref(r.Account)}
			if len(lr.URLs) == 0 {
				d.exprErr(r.URLs, "Invalid urls", "give the hub's leaf node URLs, such as [\"nats-leaf://hub:7422\"]")
			}
			for _, u := range lr.URLs {
				if _, err := bus.LeafURL(u); err != nil {
					d.exprErr(r.URLs, "Invalid urls", err.Error())
				}
			}
			if r.Credentials != nil {
				lr.CredsFile = d.path(*r.Credentials)
			}
			o.LeafRemotes = append(o.LeafRemotes, lr)
		}
	}
	if o.Replicas > 1 && o.Cluster.Listen == "" && !external && o.ConfigFile == "" && !d.diags.HasErrors() {
		d.add(n.DefRange, "Replicas without a cluster", fmt.Sprintf("replicas = %d needs a cluster block (or url to a cluster, or config_file with one): a single server keeps one copy", o.Replicas))
	}
}

// natsJetStream reads jetstream = BOOL or a jetstream block from what the
// nats block's schema left over, and refuses anything else left there.
func (d *decoder) natsJetStream(n *natsSchema, o *bus.Options) {
	if n.Rest == nil {
		return
	}
	isBlock := false
	if sb, ok := n.Rest.(*hclsyntax.Body); ok {
		for _, b := range sb.Blocks {
			isBlock = isBlock || b.Type == "jetstream"
		}
	}
	if !isBlock {
		var a jetStreamAttr
		d.diags = append(d.diags, gohcl.DecodeBody(n.Rest, d.ctx, &a)...)
		o.DisableJetStream = a.JetStream != nil && !*a.JetStream
		return
	}
	var b jetStreamBlock
	if diags := gohcl.DecodeBody(n.Rest, d.ctx, &b); diags.HasErrors() || b.JetStream == nil {
		d.diags = append(d.diags, diags...)
		return
	}
	js := b.JetStream
	o.DisableJetStream = js.Enabled != nil && !*js.Enabled
	if r, ok := d.integer(js.Replicas, "replicas", 1, bus.MaxReplicas); ok {
		o.Replicas = int(r)
	}
	if js.Domain != nil {
		o.JetStreamDomain = *js.Domain
		switch {
		case o.URL != "":
			d.add(js.DefRange, "Invalid jetstream", "domain names the embedded server's JetStream; with url the host uses that NATS's")
		case o.JetStreamDomain == "" || strings.ContainsAny(o.JetStreamDomain, " .*>"):
			d.add(js.DefRange, "Invalid jetstream", fmt.Sprintf("domain %q: a name with no spaces, dots or wildcards", o.JetStreamDomain))
		}
	}
	if o.DisableJetStream && (set(js.Replicas) || js.Domain != nil) {
		d.add(js.DefRange, "Invalid jetstream", "replicas and domain configure JetStream, which enabled = false turns off")
	}
}

// cluster reads a cluster block into o.Cluster.
func (d *decoder) cluster(c *clusterSchema, o *bus.Options) {
	oc := &o.Cluster
	oc.Name, oc.Listen, oc.Advertise = deref(c.Name), c.Listen, deref(c.Advertise)
	if c.Name != nil && (oc.Name == "" || strings.ContainsAny(oc.Name, " \t")) {
		d.add(c.DefRange, "Invalid cluster", fmt.Sprintf("name %q: a name with no spaces", oc.Name))
	}
	host, port, err := net.SplitHostPort(oc.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		d.add(c.DefRange, "Invalid cluster", fmt.Sprintf("listen %q: want HOST:PORT with a fixed port, such as \"0.0.0.0:6222\"", oc.Listen))
	}
	if c.Advertise != nil {
		if _, _, err := net.SplitHostPort(oc.Advertise); err != nil {
			d.add(c.DefRange, "Invalid cluster", fmt.Sprintf("advertise %q: want HOST:PORT", oc.Advertise))
		}
	}
	oc.Routes = d.strings(c.Routes, "routes")
	for _, r := range oc.Routes {
		if _, err := bus.RouteURL(r); err != nil {
			d.exprErr(c.Routes, "Invalid routes", err.Error())
		}
	}
	oc.User, oc.Password = deref(c.Username), deref(c.Password)
	if c.PasswordFile != nil {
		oc.PasswordFile = d.path(*c.PasswordFile)
	}
	switch {
	case c.Password != nil && c.PasswordFile != nil:
		d.add(c.DefRange, "Invalid cluster", "set password or password_file, not both")
	case c.Username != nil && c.Password == nil && c.PasswordFile == nil:
		d.add(c.DefRange, "Invalid cluster", "username needs password_file (or password)")
	case c.Username == nil && (c.Password != nil || c.PasswordFile != nil):
		d.add(c.DefRange, "Invalid cluster", "a route password needs username")
	}
	if c.Username == nil && !o.AllowUnauthenticated && err == nil && !loopbackHost(host) {
		d.add(c.DefRange, "Unauthenticated cluster", fmt.Sprintf("routes would listen on %s with no authentication, and a route is a full member that sees every message: set username and password_file, or allow_unauthenticated = true in the nats block if the network itself keeps others out", oc.Listen))
	}
}

// loopbackHost reports whether a listen host reaches only this machine.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
