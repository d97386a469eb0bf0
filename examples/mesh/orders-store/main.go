// Command orders-store keeps every enriched order in the host's key-value
// store (NATS JetStream KV), where orders-get finds it. Both use the
// operator's kv_namespace "orders", so they share keys.
package main

import (
	"encoding/json"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("orders.enriched", func(m *trellis.Msg) ([]byte, error) {
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m.Data, &o); err != nil || o.ID == "" {
			return nil, trellis.Errorf(400, "enriched order without an id")
		}
		if err := trellis.KVSet("order."+o.ID, m.Data, 0); err != nil {
			return nil, trellis.Errorf(500, "store order %s: %v", o.ID, err)
		}
		return nil, nil
	})
}

func main() {}
