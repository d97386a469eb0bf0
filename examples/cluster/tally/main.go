// Command tally applies each event once, however often it is delivered:
// the idempotent durable handler the cluster test drives while it kills a
// member. A durable handler is delivered at least once (a host killed
// after handling an event but before acknowledging it leaves it to be
// delivered again, to another host), so a handler whose effect must
// happen once keys that effect by the event's Nats-Msg-Id, the id its
// publisher gave it, in one atomic step shared by every host:
// KVCompareAndSet of "applied.ID", expecting no value. The first delivery
// creates the key; a later one finds it, changes nothing, and is
// acknowledged, counted in "duplicates".
//
// An event without an id is refused (400, not delivered again): nothing
// could tell its deliveries apart. A KV error answers 503, so that the
// host delivers the event again after its backoff.
package main

import (
	"errors"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// maxID bounds an event id, so that a publisher cannot make long keys.
const maxID = 128

func init() {
	trellis.Handle("tally.events", func(m *trellis.Msg) ([]byte, error) {
		id := m.Header.Get("Nats-Msg-Id")
		if id == "" || len(id) > maxID {
			return nil, trellis.Errorf(400, "tally: want a Nats-Msg-Id header of 1 to %d bytes", maxID)
		}
		for _, c := range id {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return nil, trellis.Errorf(400, "tally: event id %q: use letters, digits, '-' and '_'", id)
			}
		}
		err := trellis.KVCompareAndSet("applied."+id, nil, []byte(trellis.ConfigOr("node", "?")), 0)
		switch {
		case err == nil:
			return nil, nil
		case errors.Is(err, trellis.ErrConflict):
			// Applied by an earlier delivery, on this host or another.
			_, _ = trellis.KVIncr("duplicates", 1, 0)
			return nil, nil
		default:
			return nil, trellis.Errorf(503, "tally: %v", err)
		}
	})
}

func main() {}
