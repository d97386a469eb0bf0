// Command acl is the Trellis access-control policy: allow and deny rules
// over NATS subjects and HTTP methods and paths. A deny rule wins over an
// allow rule; once any allow rule is set, whatever none allows is denied.
// See README.md for its config.
package main

import (
	"fmt"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

var acl ACL

func init() {
	trellis.OnInit(func() error {
		a, err := ParseACL(policyconf.List(trellis.ConfigOr("allow", "")), policyconf.List(trellis.ConfigOr("deny", "")))
		if err != nil {
			return fmt.Errorf("acl: %w", err)
		}
		acl = a
		return nil
	})
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision {
		if !acl.Allows(Request{Subject: r.Subject, Method: r.Method, Path: r.Path}) {
			return trellis.Reject(403, "forbidden")
		}
		return trellis.Continue
	})
}

func main() {}
