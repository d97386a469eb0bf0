// Command counter keeps counters in the host's key-value store (NATS
// JetStream KV), which every host of a cluster shares: "counter.incr" adds
// one and answers the new count, "counter.get" answers it as it is. The
// message names the counter (letters, digits, '-' and '_'); an empty one
// is the counter "hits". Each answer also names the host that served it
// (config "node"), so a client sees which member of the cluster its
// request reached.
//
//	trellis req counter.incr          # {"count":7,"node":"n2"}
//	trellis req counter.get visits    # {"count":0}
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

// key is the KV key of the counter m names.
func key(m *trellis.Msg) (string, error) {
	name := string(m.Data)
	if name == "" {
		return "count.hits", nil
	}
	if len(name) > 64 {
		return "", trellis.Errorf(400, "a counter name has at most 64 bytes")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", trellis.Errorf(400, "counter %q: use letters, digits, '-' and '_'", name)
		}
	}
	return "count." + name, nil
}

func answer(n int64) ([]byte, error) {
	return json.Marshal(Count{Count: n, Node: trellis.ConfigOr("node", "")})
}

func init() {
	trellis.Handle("counter.incr", func(m *trellis.Msg) ([]byte, error) {
		k, err := key(m)
		if err != nil {
			return nil, err
		}
		n, err := trellis.KVIncr(k, 1, 0)
		if err != nil {
			return nil, trellis.Errorf(503, "counter: %v", err)
		}
		return answer(n)
	})
	trellis.Handle("counter.get", func(m *trellis.Msg) ([]byte, error) {
		k, err := key(m)
		if err != nil {
			return nil, err
		}
		b, err := trellis.KVGet(k)
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
