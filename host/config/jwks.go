package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/trellis-mesh/trellis/host"
)

// A jwks block in a policy or plugin block names a JSON Web Key Set the
// host fetches and keeps fresh for the plugin (host.KeySource), so that a
// policy verifying tokens needs no network access; the auth policy reads
// it as the issuer of the same name (plugins/auth/README.md):
//
//	policy "auth" {
//	  source = "plugins/auth"
//	  jwks "corp" {
//	    issuer      = "https://idp.example/realms/corp" # OIDC discovery
//	    # uri       = "https://idp.example/certs"       # or the set's URL
//	    min_refresh = "1m"  # never fetched more often (default 1m)
//	    max_refresh = "1h"  # never kept longer (default 1h)
//	  }
//	  config = { jwt_issuers = "corp", "jwks.corp.algorithms" = "RS256" }
//	}
//
// The set lands in config key "jwks.NAME", the issuer in
// "jwks.NAME.issuer"; the config may not set them itself.
type jwksSchema struct {
	Name       string         `hcl:"name,label"`
	URI        *string        `hcl:"uri,optional"`
	Issuer     *string        `hcl:"issuer,optional"`
	MinRefresh hcl.Expression `hcl:"min_refresh,optional"`
	MaxRefresh hcl.Expression `hcl:"max_refresh,optional"`
	DefRange   hcl.Range      `hcl:",def_range"`
}

// Bounds on a jwks block's refresh times: at least MinKeyRefresh between
// fetches spares the provider, at most MaxKeyRefresh keeps rotation timely.
const (
	MinKeyRefresh = time.Second
	MaxKeyRefresh = 24 * time.Hour
)

// keySources reads a block's jwks blocks.
func (d *decoder) keySources(blocks []jwksSchema, config map[string]string) []host.KeySource {
	var out []host.KeySource
	for _, b := range blocks {
		ks := host.KeySource{Name: b.Name, URI: deref(b.URI), Issuer: deref(b.Issuer)}
		for _, r := range []struct {
			e    hcl.Expression
			name string
			dst  *time.Duration
		}{{b.MinRefresh, "min_refresh", &ks.MinRefresh}, {b.MaxRefresh, "max_refresh", &ks.MaxRefresh}} {
			t, ok := d.duration(r.e, r.name, false)
			if !ok {
				continue
			}
			if t < MinKeyRefresh || t > MaxKeyRefresh {
				d.exprErr(r.e, "Invalid "+r.name, fmt.Sprintf("%s is not between %s and %s", t, MinKeyRefresh, MaxKeyRefresh))
				continue
			}
			*r.dst = t
		}
		if err := host.CheckKeySources([]host.KeySource{ks}); err != nil {
			d.add(b.DefRange, "Invalid jwks", err.Error())
			continue
		}
		owned := []string{host.KeySetConfigKey(ks.Name)}
		if ks.Issuer != "" {
			owned = append(owned, host.KeySetIssuerConfigKey(ks.Name))
		}
		for _, key := range owned {
			if _, set := config[key]; set {
				d.add(b.DefRange, "Invalid jwks", fmt.Sprintf("config key %q is filled in by the host from this block; remove it from config", key))
			}
		}
		out = append(out, ks)
	}
	if err := host.CheckKeySources(out); err != nil && len(blocks) > 0 {
		d.add(blocks[len(blocks)-1].DefRange, "Invalid jwks", err.Error())
	}
	return out
}
