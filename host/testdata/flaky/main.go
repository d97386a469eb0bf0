// Command flaky is a handler for the host's fault-tolerance tests: it fails
// (status 500, or a trap when config "mode" is "trap") for the first
// "fail_first" calls it sees, counted in the host's key-value store so that
// every instance shares the count, and answers "ok after N" afterwards.
package main

import (
	"strconv"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("flaky", func(m *trellis.Msg) ([]byte, error) {
		n, err := trellis.KVIncr("calls", 1, 0)
		if err != nil {
			return nil, trellis.Errorf(500, "kv: %v", err)
		}
		failFirst, _ := strconv.ParseInt(trellis.ConfigOr("fail_first", "0"), 10, 64)
		if n <= failFirst {
			if trellis.ConfigOr("mode", "status") == "trap" {
				panic("flaky: trap on call " + strconv.FormatInt(n, 10))
			}
			return nil, trellis.Errorf(500, "flaky: failing call %d", n)
		}
		return []byte("ok after " + strconv.FormatInt(n-1, 10)), nil
	})
}

func main() {}
