// Command greet is a Trellis plugin that answers a request on subject
// "greet" with "Hello, <payload>!". The operator may change the greeting
// word with the config key "greeting".
//
//	nats req greet 'Ada'     # Hello, Ada!
package main

import trellis "github.com/trellis-mesh/trellis/sdk/go"

func init() {
	trellis.Handle("greet", func(m *trellis.Msg) ([]byte, error) {
		greeting := trellis.ConfigOr("greeting", "Hello")
		return []byte(greeting + ", " + string(m.Data) + "!"), nil
	})
}

func main() {}
