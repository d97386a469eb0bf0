// Command claims is a handler for the tests of identity headers. It answers
// every request with the value of its X-Claim-sub header, names every claim
// header it got, in any case, in the reply header X-Seen-Claims (sorted,
// comma-separated), and gives every value of a principal header it got, in
// any case, in X-Seen-Principal, so a test can see that a client's forged
// identity never reaches a handler and a policy's does.
package main

import (
	"sort"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("claims", func(m *trellis.Msg) ([]byte, error) {
		var names, principals []string
		for name, vs := range m.Header {
			switch {
			case strings.HasPrefix(strings.ToLower(name), strings.ToLower(abi.HeaderClaimPrefix)):
				names = append(names, name)
			case strings.EqualFold(name, abi.HeaderPrincipal):
				principals = append(principals, vs...)
			}
		}
		sort.Strings(names)
		sort.Strings(principals)
		h := trellis.Header{}
		h.Set("X-Seen-Claims", strings.Join(names, ","))
		h.Set("X-Seen-Principal", strings.Join(principals, ","))
		return nil, m.RespondMsg(h, []byte(m.Header.Get("X-Claim-sub")))
	})
}

func main() {}
