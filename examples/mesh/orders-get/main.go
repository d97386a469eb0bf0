// Command orders-get answers "GET /orders/{id}" from the order store. The
// HTTP ingress passes the id as header Trellis-Param-id. The mesh example
// runs it twice, as versions v1 and v2 (config "version"), behind a 90/10
// canary split; v2 also says how soon the order ships.
package main

import (
	"encoding/json"
	"errors"

	"github.com/trellis-mesh/trellis/abi"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("orders.get.>", func(m *trellis.Msg) ([]byte, error) {
		id := m.Header.Get(abi.HeaderParamPrefix + "id")
		if id == "" {
			id = string(m.Data)
		}
		if id == "" {
			return nil, trellis.Errorf(400, "which order? pass its id")
		}
		b, err := trellis.KVGet("order." + id)
		if errors.Is(err, trellis.ErrNotFound) {
			return nil, trellis.Errorf(404, "no order %s", id)
		}
		if err != nil {
			return nil, trellis.Errorf(500, "order store: %v", err)
		}
		var order map[string]any
		if err := json.Unmarshal(b, &order); err != nil {
			return nil, trellis.Errorf(500, "stored order %s is not JSON", id)
		}
		version := trellis.ConfigOr("version", "v1")
		order["served_by"] = version
		if version == "v2" {
			order["ships_in_days"] = 2
		}
		out, _ := json.Marshal(order)
		h := trellis.Header{}
		h.Set("Content-Type", "application/json")
		return nil, m.RespondMsg(h, out)
	})
}

func main() {}
