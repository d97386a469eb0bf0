package config

import (
	"net"

	"github.com/hashicorp/hcl/v2"

	"github.com/trellis-mesh/trellis/host/admin"
)

// The admin block turns on the admin endpoint (package admin): metrics,
// health and readiness probes, pprof, the JSON API and the dashboard.
//
//	admin {
//	  listen   = "127.0.0.1:9180"  # default; beyond loopback needs token or username and password
//	  token    = "..."             # accepted as Authorization: Bearer
//	  username = "ops"             # HTTP basic auth, for a browser
//	  password = "..."
//	  deploy   = true              # serve the deploy API: candidates, shadows, canaries (trellis deploy)
//	}
//
// Without the block, `trellis run` serves no admin endpoint unless
// --admin-listen asks for one.
type adminSchema struct {
	Listen   *string   `hcl:"listen,optional"`
	Token    *string   `hcl:"token,optional"`
	Username *string   `hcl:"username,optional"`
	Password *string   `hcl:"password,optional"`
	Deploy   *bool     `hcl:"deploy,optional"`
	DefRange hcl.Range `hcl:",def_range"`
}

// admin reads the admin block into c.Admin, refusing what admin.New would.
func (d *decoder) admin(a *adminSchema, c *Config) {
	if a == nil {
		return
	}
	c.Admin = admin.Options{Listen: admin.DefaultListen, Token: deref(a.Token), Username: deref(a.Username), Password: deref(a.Password)}
	if a.Listen != nil {
		c.Admin.Listen = *a.Listen
	}
	if a.Deploy != nil {
		c.Admin.Deploy = *a.Deploy
	}
	host, _, err := net.SplitHostPort(c.Admin.Listen)
	if err != nil {
		d.add(a.DefRange, "Invalid admin listen address", err.Error())
		return
	}
	if (c.Admin.Username == "") != (c.Admin.Password == "") {
		d.add(a.DefRange, "Incomplete admin credentials", "set both username and password, or neither")
	}
	if !admin.Loopback(host) && c.Admin.Token == "" && (c.Admin.Username == "" || c.Admin.Password == "") {
		d.add(a.DefRange, "Unprotected admin endpoint",
			"listen is beyond loopback: set token, or username and password, since the endpoint shows the host's metrics and profiles")
	}
}
