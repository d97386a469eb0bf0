// Command testpolicy is a policy for the host's tests: the message's
// X-Policy header says what to do.
package main

import (
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision {
		action := r.Header.Get("X-Policy")
		if action == "" && r.Method != "" {
			action = "http"
		}
		switch {
		case action == "" || action == "allow":
			return trellis.Continue
		case action == "reject":
			return trellis.Reject(403, "rejected by test policy")
		case action == "limit":
			trellis.ResponseHeader("Retry-After", "7")
			return trellis.Reject(429, "slow down")
		case action == "answer":
			d, _ := r.Answer([]byte("answered by policy"))
			return d
		case strings.HasPrefix(action, "route:"):
			if err := r.Route(strings.TrimPrefix(action, "route:")); err != nil {
				return trellis.Reject(500, "route: "+err.Error())
			}
			return trellis.Continue
		case action == "mirror":
			if err := trellis.PublishMsg("mirror.copy", r.Header, r.Data); err != nil {
				return trellis.Reject(500, "mirror: "+err.Error())
			}
			return trellis.Continue
		case action == "modify":
			r.SetHeader("X-In", "by-policy")
			r.SetData([]byte(strings.ToUpper(string(r.Data))))
			return trellis.Continue
		case action == "identify":
			// What an authentication policy does: say who sent the message.
			r.SetHeader(abi.HeaderPrincipal, "test:ada")
			r.SetHeader(abi.HeaderClaimPrefix+"sub", "ada")
			return trellis.Continue
		case action == "http":
			r.SetData([]byte(r.Method + " " + r.Path + "?" + r.Query + " from " + r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')]))
			return trellis.Continue
		case action == "trap":
			panic("policy trap requested")
		case action == "loop":
			for {
			}
		}
		return trellis.Reject(400, "unknown action "+action)
	})
	trellis.PolicyResponse(func(resp *trellis.Response) trellis.Decision {
		if resp.Status == 0 && len(resp.Data) > 0 {
			resp.SetData(append(resp.Data, " [seen on the way back]"...))
		}
		return trellis.Continue
	})
}

func main() {}
