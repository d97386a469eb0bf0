// Command mailer is the mesh example's deliberately flaky handler: it
// "sends" each notification e-mail, but fails every third call (a transient
// fault, like a mail server hiccup), and always fails for addresses at
// bounce.example (a permanent one). The host protects it with retries
// (it is idempotent), a circuit breaker and a dead-letter subject; see
// examples/mesh/trellis.hcl. Sent mails are published to mail.sent.
package main

import (
	"encoding/json"
	"strings"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

func init() {
	trellis.Handle("notifications.email", func(m *trellis.Msg) ([]byte, error) {
		var mail struct {
			To      string `json:"to"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(m.Data, &mail); err != nil {
			return nil, trellis.Errorf(400, "not an e-mail: %v", err)
		}
		n, err := trellis.KVIncr("calls", 1, 0)
		if err != nil {
			return nil, trellis.Errorf(503, "counter: %v", err)
		}
		if strings.HasSuffix(mail.To, "@bounce.example") {
			return nil, trellis.Errorf(502, "mailbox %s rejected the mail", mail.To)
		}
		if n%3 == 0 {
			return nil, trellis.Errorf(503, "mail server busy (call %d)", n)
		}
		if err := trellis.Publish("mail.sent", m.Data); err != nil {
			return nil, trellis.Errorf(500, "publish: %v", err)
		}
		// When the host traces, this line carries the message's trace_id.
		trellis.Info("mail sent to " + mail.To)
		return []byte("sent to " + mail.To), nil
	})
}

func main() {}
