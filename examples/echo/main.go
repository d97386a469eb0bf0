// Command echo is a Trellis plugin that answers every request on subject
// "echo" with the request's payload, unchanged.
//
//	go run ./cmd/trellis dev ./examples
//	nats req echo 'hi'
package main

import trellis "github.com/trellis-mesh/trellis/sdk/go"

func init() {
	trellis.Handle("echo", func(m *trellis.Msg) ([]byte, error) {
		return m.Data, nil
	})
}

func main() {}
