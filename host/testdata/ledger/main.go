// Command ledger is a handler for the host's durability tests: for every
// event it publishes "DATA DELIVERY" to ledger.seen, where DELIVERY is the
// host's Trellis-Delivery header, and it fails (status 500) on events whose
// data starts with "fail", so that the host redelivers them.
package main

import (
	"bytes"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("ledger.in", func(m *trellis.Msg) ([]byte, error) {
		delivery := m.Header.Get("Trellis-Delivery")
		if err := trellis.Publish("ledger.seen", []byte(string(m.Data)+" "+delivery)); err != nil {
			return nil, trellis.Errorf(500, "publish: %v", err)
		}
		if bytes.HasPrefix(m.Data, []byte("fail")) {
			return nil, trellis.Errorf(500, "ledger: failing %s on delivery %s", m.Data, delivery)
		}
		return nil, nil
	})
}

func main() {}
