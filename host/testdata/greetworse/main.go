// Command greetworse answers like examples/greet but worse, as the host's
// canary tests need a version to roll back: with config "fail_every" N it
// fails (status 500) every Nth call each instance serves, and with
// "sleep_ms" M it takes M milliseconds longer over every call.
package main

import (
	"strconv"
	"time"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

var calls int

func init() {
	trellis.Handle("greet", func(m *trellis.Msg) ([]byte, error) {
		calls++
		if ms, _ := strconv.Atoi(trellis.ConfigOr("sleep_ms", "0")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		if n, _ := strconv.Atoi(trellis.ConfigOr("fail_every", "0")); n > 0 && calls%n == 0 {
			return nil, trellis.Errorf(500, "greetworse: failing call %d", calls)
		}
		return []byte(trellis.ConfigOr("greeting", "Hello") + ", " + string(m.Data) + "!"), nil
	})
}

func main() {}
