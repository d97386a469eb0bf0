// Command orders-enrich is the first step of the order pipeline example: it
// takes each order event from "orders.created", prices it from a small
// catalogue, and publishes the enriched order to "orders.enriched".
//
// Input:  {"id":"42","item":"book","qty":2,"customer":"ada@example.com"}
// Output: the same fields plus "unit_price", "total" and "status":"priced".
// An order with an unknown item is published to "orders.rejected" instead.
// A request (with a reply subject) gets the enriched order as its reply.
package main

import (
	"encoding/json"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Order is an order event as it travels the pipeline.
type Order struct {
	ID        string  `json:"id"`
	Item      string  `json:"item"`
	Qty       int     `json:"qty,omitempty"`
	Customer  string  `json:"customer,omitempty"`
	UnitPrice float64 `json:"unit_price,omitempty"`
	Total     float64 `json:"total,omitempty"`
	Status    string  `json:"status,omitempty"`
	Reason    string  `json:"reason,omitempty"`
}

var catalogue = map[string]float64{"book": 12.50, "pen": 1.20, "lamp": 30.00}

func init() {
	trellis.Handle("orders.created", func(m *trellis.Msg) ([]byte, error) {
		var o Order
		if err := json.Unmarshal(m.Data, &o); err != nil || o.ID == "" {
			return nil, trellis.Errorf(400, "order must be JSON with an id: %v", err)
		}
		if o.Qty == 0 {
			o.Qty = 1
		}
		price, ok := catalogue[o.Item]
		next := "orders.enriched"
		if ok {
			o.UnitPrice, o.Total, o.Status = price, price*float64(o.Qty), "priced"
		} else {
			o.Status, o.Reason, next = "rejected", "unknown item "+o.Item, "orders.rejected"
		}
		out, _ := json.Marshal(o)
		h := trellis.Header{}
		h.Set("Order-Id", o.ID)
		if err := trellis.PublishMsg(next, h, out); err != nil {
			return nil, trellis.Errorf(500, "publish %s: %v", next, err)
		}
		trellis.Info("order " + o.ID + " " + o.Status)
		return out, nil
	})
}

func main() {}
