// Command counter keeps one counter in the host's key-value store (NATS
// JetStream KV), which every host of a cluster shares: "counter.incr" adds
// one and answers the new count, "counter.get" answers it as it is. Each
// answer also names the host that served it (config "node"), so a client
// sees which member of the cluster its request reached.
//
//	trellis req counter.incr     # {"count":7,"node":"n2"}
package main

import (
	"encoding/json"
	"errors"
	"strconv"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Count is a counter answer.
type Count struct {
	Count int64  `json:"count"`
	Node  string `json:"node,omitempty"`
}

const key = "hits"

func answer(n int64) ([]byte, error) {
	return json.Marshal(Count{Count: n, Node: trellis.ConfigOr("node", "")})
}

func init() {
	trellis.Handle("counter.incr", func(m *trellis.Msg) ([]byte, error) {
		n, err := trellis.KVIncr(key, 1, 0)
		if err != nil {
			return nil, trellis.Errorf(503, "counter: %v", err)
		}
		return answer(n)
	})
	trellis.Handle("counter.get", func(m *trellis.Msg) ([]byte, error) {
		b, err := trellis.KVGet(key)
		if errors.Is(err, trellis.ErrNotFound) {
			return answer(0)
		}
		if err != nil {
			return nil, trellis.Errorf(503, "counter: %v", err)
		}
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return nil, trellis.Errorf(500, "counter holds %q, not a number", b)
		}
		return answer(n)
	})
}

func main() {}
