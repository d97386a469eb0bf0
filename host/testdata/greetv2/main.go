// Command greetv2 is examples/greet with a small change, the next version
// of greet in the host's shadow and canary tests: it ends its greeting
// with a full stop instead of an exclamation mark, and notes each greeting
// with a publish to "greet.audit" and a count in the key-value store (side
// effects a shadow must not make) unless config "audit" is "off". Errors of
// either are ignored, so that it answers the same without the grants.
package main

import trellis "github.com/trellis-mesh/trellis/sdk/go"

func init() {
	trellis.Handle("greet", func(m *trellis.Msg) ([]byte, error) {
		greeting := trellis.ConfigOr("greeting", "Hello")
		if trellis.ConfigOr("audit", "on") != "off" {
			_ = trellis.Publish("greet.audit", m.Data)
			_, _ = trellis.KVIncr("greeted", 1, 0)
		}
		return []byte(greeting + ", " + string(m.Data) + "."), nil
	})
}

func main() {}
