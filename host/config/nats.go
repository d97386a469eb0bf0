package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nkeys"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/bus"
)

// natsUserSchema is a user block in the nats block:
//
//	user "alice" {
//	  password       = "$2a$11$..."  # or nkey = "U..."
//	  publish        = ["orders.>"]
//	  subscribe      = ["_INBOX.>"]
//	  deny_publish   = ["orders.admin.>"]
//	  deny_subscribe = []
//	}
type natsUserSchema struct {
	Name          string         `hcl:"name,label"`
	Password      *string        `hcl:"password,optional"`
	NKey          *string        `hcl:"nkey,optional"`
	Publish       hcl.Expression `hcl:"publish,optional"`
	Subscribe     hcl.Expression `hcl:"subscribe,optional"`
	DenyPublish   hcl.Expression `hcl:"deny_publish,optional"`
	DenySubscribe hcl.Expression `hcl:"deny_subscribe,optional"`
	DefRange      hcl.Range      `hcl:",def_range"`
}

// natsAuth reads the nats block's authentication and TLS settings into o.
// Users, exports and allow_unauthenticated configure the embedded server;
// username, password, token and nkey_seed_file authenticate the host to an
// external one (url); credentials serves both (url, or the embedded server
// in operator mode); tls_* are the embedded server's certificate and client
// CA, or with url the host's client certificate and the server's CA.
func (d *decoder) natsAuth(n *natsSchema, o *bus.Options) {
	external := o.URL != ""
	seen := map[string]hcl.Range{}
	for _, us := range n.Users {
		if external {
			d.add(us.DefRange, "Invalid nats setting", "user blocks configure the embedded server; with url, users are that server's")
			continue
		}
		if prev, dup := seen[us.Name]; dup {
			d.add(us.DefRange, "Duplicate NATS user", fmt.Sprintf("%q is already defined at %s:%d", us.Name, prev.Filename, prev.Start.Line))
			continue
		}
		seen[us.Name] = us.DefRange
		u := bus.User{Name: us.Name, Password: deref(us.Password), NKey: deref(us.NKey)}
		switch {
		case us.Password != nil && us.NKey != nil:
			d.add(us.DefRange, "Invalid NATS user", fmt.Sprintf("user %q: set password or nkey, not both", us.Name))
		case us.NKey != nil:
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				d.add(us.DefRange, "Invalid NATS user", fmt.Sprintf("user %q: nkey must be a user public key (\"U...\", from `nk -gen user -pubout`), not a seed or another kind of key", us.Name))
			}
		case u.Password == "":
			d.add(us.DefRange, "Invalid NATS user", fmt.Sprintf("user %q needs password = \"...\" (plain or a bcrypt hash) or nkey = \"U...\"", us.Name))
		}
		p := &u.Permissions
		p.PublishAllow = d.subjects(us.Publish, "publish")
		p.SubscribeAllow = d.subjects(us.Subscribe, "subscribe")
		p.PublishDeny = d.subjects(us.DenyPublish, "deny_publish")
		p.SubscribeDeny = d.subjects(us.DenySubscribe, "deny_subscribe")
		o.Users = append(o.Users, u)
	}
	o.Export = d.subjects(n.Export, "export")
	o.ExportStream = d.subjects(n.ExportStream, "export_stream")
	for _, e := range []struct {
		list []string
		expr hcl.Expression
	}{{o.Export, n.Export}, {o.ExportStream, n.ExportStream}} {
		for _, subj := range e.list {
			if err := bus.CheckExport(subj); err != nil {
				d.exprErr(e.expr, "Invalid export", err.Error())
			}
		}
	}
	o.AllowUnauthenticated = n.AllowUnauthenticated != nil && *n.AllowUnauthenticated
	for _, e := range []struct {
		set  bool
		name string
	}{{set(n.Export), "export"}, {set(n.ExportStream), "export_stream"}, {n.AllowUnauthenticated != nil, "allow_unauthenticated"}} {
		if e.set && external {
			d.add(n.DefRange, "Invalid nats setting", e.name+" configures the embedded server; it does not apply with url")
		}
	}
	for _, e := range []struct {
		val  *string
		name string
	}{{n.Username, "username"}, {n.Password, "password"}, {n.Token, "token"}, {n.NKeySeedFile, "nkey_seed_file"}} {
		if e.val != nil && !external {
			d.add(n.DefRange, "Invalid nats setting", e.name+" authenticates the host to an external NATS (url); the embedded server's clients are user blocks")
		}
	}
	o.Auth.User, o.Auth.Password, o.Auth.Token = deref(n.Username), deref(n.Password), deref(n.Token)
	if n.Password != nil && n.Username == nil {
		d.add(n.DefRange, "Invalid nats setting", "password needs username")
	}
	if n.NKeySeedFile != nil {
		o.Auth.NKeySeedFile = d.path(*n.NKeySeedFile)
	}
	if n.Credentials != nil {
		o.Auth.CredsFile = d.path(*n.Credentials)
	}
	count := 0
	for _, set := range []bool{n.Credentials != nil, n.Username != nil, n.Token != nil, n.NKeySeedFile != nil} {
		if set {
			count++
		}
	}
	if count > 1 {
		d.add(n.DefRange, "Conflicting NATS credentials", "set one of credentials, username, token or nkey_seed_file")
	}
	for _, f := range []struct {
		val *string
		dst *string
	}{{n.TLSCert, &o.TLS.Cert}, {n.TLSKey, &o.TLS.Key}, {n.TLSCA, &o.TLS.CA}} {
		if f.val != nil {
			*f.dst = d.path(*f.val)
		}
	}
	if (o.TLS.Cert == "") != (o.TLS.Key == "") {
		d.add(n.DefRange, "Incomplete TLS settings", "set both tls_cert and tls_key, or neither")
	}
	if !external && o.TLS.CA != "" && o.TLS.Cert == "" {
		d.add(n.DefRange, "Incomplete TLS settings", "tls_ca verifies client certificates of a server with TLS: set tls_cert and tls_key too")
	}
	if !external && len(o.Users) == 0 && len(o.Export)+len(o.ExportStream) > 0 && o.ConfigFile == "" {
		d.add(n.DefRange, "Export without users", "export and export_stream give clients of an authenticated bus access to plugin subjects; declare user blocks (an open bus gives every client everything)")
	}
}

// subjects reads a list of NATS subjects, wildcards allowed.
func (d *decoder) subjects(e hcl.Expression, name string) []string {
	list := d.strings(e, name)
	for _, s := range list {
		if err := abi.ValidSubject(s, true); err != nil {
			d.exprErr(e, "Invalid subject", fmt.Sprintf("%s: %q: %v", name, s, err))
		}
	}
	return list
}
