// Command greetsame answers exactly as examples/greet does, as a version
// with another content hash, and notes each greeting with a publish to
// "greet.audit" and a count in the key-value store: the version the
// replay tests expect no difference from, and no side effect on the bus.
package main

import trellis "github.com/trellis-mesh/trellis/sdk/go"

func init() {
	trellis.Handle("greet", func(m *trellis.Msg) ([]byte, error) {
		_ = trellis.Publish("greet.audit", m.Data)
		_, _ = trellis.KVIncr("greeted", 1, 0)
		greeting := trellis.ConfigOr("greeting", "Hello")
		return []byte(greeting + ", " + string(m.Data) + "!"), nil
	})
}

func main() {}
