// Command claims is a handler for the auth policy's tests. It answers every
// request on "claims" with the value of its X-Claim-sub header, and names
// every claim header it got, in any case, in the reply header
// X-Seen-Claims (sorted, comma-separated), so a test can see that a
// client's forged claims never reach a handler.
package main

import (
	"sort"
	"strings"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("claims", func(m *trellis.Msg) ([]byte, error) {
		var names []string
		for name := range m.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-claim-") {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		h := trellis.Header{}
		h.Set("X-Seen-Claims", strings.Join(names, ","))
		return nil, m.RespondMsg(h, []byte(m.Header.Get("X-Claim-sub")))
	})
}

func main() {}
