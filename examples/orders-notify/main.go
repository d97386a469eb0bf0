// Command orders-notify is the second step of the order pipeline example: it
// takes each enriched order from "orders.enriched" and publishes the e-mail
// to send to "notifications.email".
//
// Output: {"to":"ada@example.com","subject":"Order 42 confirmed","body":"..."}
package main

import (
	"encoding/json"
	"fmt"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Email is a notification for the mailer.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

func init() {
	trellis.Handle("orders.enriched", func(m *trellis.Msg) ([]byte, error) {
		var o struct {
			ID       string  `json:"id"`
			Item     string  `json:"item"`
			Qty      int     `json:"qty"`
			Customer string  `json:"customer"`
			Total    float64 `json:"total"`
		}
		if err := json.Unmarshal(m.Data, &o); err != nil {
			return nil, trellis.Errorf(400, "bad enriched order: %v", err)
		}
		to := o.Customer
		if to == "" {
			to = trellis.ConfigOr("default_recipient", "orders@example.com")
		}
		mail, _ := json.Marshal(Email{
			To:      to,
			Subject: fmt.Sprintf("Order %s confirmed", o.ID),
			Body:    fmt.Sprintf("%d x %s, total %.2f. Thank you!", o.Qty, o.Item, o.Total),
		})
		if err := trellis.Publish("notifications.email", mail); err != nil {
			return nil, trellis.Errorf(500, "publish notification: %v", err)
		}
		return mail, nil
	})
}

func main() {}
