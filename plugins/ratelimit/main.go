// Command ratelimit is the Trellis rate-limit policy: a token bucket per
// key (authenticated principal, client address, header, verified claim or
// subject), kept in the
// host's KV store so that every instance and every host on the bus shares
// it. See README.md for its config.
package main

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// attempts bounds the compare-and-set retries of one request; past it the
// request gets the on_error treatment.
const attempts = 16

type settings struct {
	limit     Limit
	key       policyconf.Key
	failOpen  bool
	limitText string
}

var cfg *settings

func init() {
	trellis.OnInit(func() error {
		s, err := parseSettings(trellis.Config)
		if err != nil {
			return fmt.Errorf("ratelimit: %w", err)
		}
		cfg = s
		return nil
	})
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision { return cfg.policy(r) })
}

func main() {}

func parseSettings(get policyconf.Getter) (*settings, error) {
	rateText, ok := get("rate")
	if !ok {
		return nil, fmt.Errorf("rate is required (requests per second, such as \"10\" or \"0.5\")")
	}
	rate, err := strconv.ParseFloat(rateText, 64)
	if err != nil {
		return nil, fmt.Errorf("rate %q is not a number", rateText)
	}
	burst := int64(math.Ceil(rate))
	if b, ok := get("burst"); ok {
		if burst, err = strconv.ParseInt(b, 10, 64); err != nil {
			return nil, fmt.Errorf("burst %q is not a whole number", b)
		}
	}
	limit, err := NewLimit(rate, burst)
	if err != nil {
		return nil, err
	}
	key, err := policyconf.ParseKey(get.Or("key", "principal"))
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	s := &settings{limit: limit, key: key, limitText: strconv.FormatInt(limit.Burst, 10)}
	switch onError, _ := get("on_error"); onError {
	case "", "deny":
	case "allow":
		s.failOpen = true
	default:
		return nil, fmt.Errorf("on_error %q: want \"allow\" or \"deny\"", onError)
	}
	return s, nil
}

// bucket returns the value r's bucket is named after: the kind of value,
// then the value, so that a principal, an address and a subject that are
// spelt alike never share a bucket. A message without a principal (no
// authentication policy ran before this one, or it set none) falls back to
// its client address, and a NATS message, which has none, to its subject; a
// missing header or claim puts the message in the one bucket shared by all
// messages without it.
func (s *settings) bucket(r *trellis.Inbound) string {
	if v, ok := s.key.Value(r); ok {
		return s.key.String() + "=" + v
	}
	switch s.key.Kind {
	case policyconf.KeyPrincipal, policyconf.KeyRemoteAddr:
		if host := policyconf.RemoteHost(r.RemoteAddr); host != "" {
			return "remote_addr=" + host
		}
		return "subject=" + r.Subject
	}
	return s.key.String() + "="
}

func (s *settings) policy(r *trellis.Inbound) trellis.Decision {
	d, err := s.limit.Take(kvStore{}, StoreKey(s.bucket(r)), time.Now, attempts)
	if err != nil {
		// Never log the key's value: it may be a credential.
		trellis.Logf(trellis.LevelWarn, "ratelimit: %v", err)
		if s.failOpen {
			return trellis.Continue
		}
		return trellis.Reject(503, "rate limit unavailable")
	}
	responseHeader("X-RateLimit-Limit", s.limitText)
	responseHeader("X-RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10))
	if !d.Allowed {
		responseHeader("Retry-After", strconv.FormatInt(RetryAfterSeconds(d.RetryAfter), 10))
		return trellis.Reject(429, "rate limit exceeded")
	}
	return trellis.Continue
}

func responseHeader(name, value string) {
	if err := trellis.ResponseHeader(name, value); err != nil {
		trellis.Logf(trellis.LevelWarn, "ratelimit: response header %s: %v", name, err)
	}
}

// kvStore is the host KV, through the SDK.
type kvStore struct{}

func (kvStore) Get(key string) ([]byte, error) { return trellis.KVGet(key) }

func (kvStore) CompareAndSet(key string, expected, value []byte, ttl time.Duration) error {
	return trellis.KVCompareAndSet(key, expected, value, ttl)
}
