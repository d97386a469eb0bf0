package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// Limit is a rate limit in the form of the generic cell rate algorithm
// (GCRA), which behaves exactly like a token bucket that refills one token
// every Interval and holds at most Burst tokens, but keeps a single number
// per key: the theoretical arrival time (TAT) of the next request, the
// moment at which the bucket would be full again.
type Limit struct {
	Interval time.Duration
	Burst    int64
}

// maxWindow bounds Burst × Interval so that TAT arithmetic on Unix
// nanoseconds cannot overflow (about 36 years).
const maxWindow = int64(1) << 60

// NewLimit returns the limit for rate tokens per second and a bucket of
// burst tokens.
func NewLimit(rate float64, burst int64) (Limit, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		return Limit{}, fmt.Errorf("rate must be a positive number of requests per second, not %v", rate)
	}
	if rate > 1e9 {
		return Limit{}, errors.New("rate must be at most 1e9 per second")
	}
	if burst < 1 {
		return Limit{}, fmt.Errorf("burst must be at least 1, not %d", burst)
	}
	interval := int64(math.Round(1e9 / rate))
	if burst > maxWindow/interval {
		return Limit{}, errors.New("burst / rate is too long a window")
	}
	return Limit{Interval: time.Duration(interval), Burst: burst}, nil
}

// Decision is the outcome of one request against a Limit.
type Decision struct {
	Allowed bool
	// TAT is the theoretical arrival time to store when Allowed, in Unix
	// nanoseconds.
	TAT int64
	// Remaining is how many more requests would be allowed right now.
	Remaining int64
	// RetryAfter, when not Allowed, is how long until a request would be.
	RetryAfter time.Duration
}

// Decide lets one request arrive at now (Unix nanoseconds) given the stored
// TAT (0 or any past time: a full bucket).
//
// Each request moves the TAT one interval further; a request is allowed
// while the TAT it would leave is no more than Burst intervals ahead of now.
func (l Limit) Decide(now, tat int64) Decision {
	interval, window := int64(l.Interval), l.Burst*int64(l.Interval)
	if tat < now {
		tat = now
	}
	next := tat + interval
	ahead := next - now
	if ahead > window {
		return Decision{RetryAfter: time.Duration(ahead - window)}
	}
	return Decision{Allowed: true, TAT: next, Remaining: (window - ahead) / interval}
}

// TTL is how long the TAT stored at now must be kept: once it is in the
// past, a missing key means the same (a full bucket).
func (d Decision) TTL(now int64) time.Duration {
	return time.Duration(d.TAT-now) + time.Second
}

// RetryAfterSeconds is a Retry-After value: whole seconds, rounded up, at
// least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// StoreKey is the KV key of a bucket: "rl." and the first 32 hex digits of
// the SHA-256 of the key's value, so any value (a token, say) makes a
// valid key and is never stored in the clear.
func StoreKey(value string) string {
	sum := sha256.Sum256([]byte(value))
	return "rl." + hex.EncodeToString(sum[:])[:32]
}

// Store is the part of the host KV that Take needs; the plugin uses the
// SDK's KVGet and KVCompareAndSet.
type Store interface {
	// Get returns the value of key, or an error matching trellis.ErrNotFound.
	Get(key string) ([]byte, error)
	// CompareAndSet stores value if key holds expected (empty: if key does
	// not exist), else returns an error matching trellis.ErrConflict.
	CompareAndSet(key string, expected, value []byte, ttl time.Duration) error
}

// ErrContention is Take's error when every attempt lost a race.
var ErrContention = errors.New("ratelimit: too many concurrent updates")

// Take takes one token from the bucket at key: it reads the TAT, decides,
// and stores the new TAT with a compare-and-set, starting again (with a new
// now) when another request changed it in between, at most attempts times.
// A stored value that is not a number counts as a full bucket.
func (l Limit) Take(st Store, key string, now func() time.Time, attempts int) (Decision, error) {
	for range attempts {
		old, err := st.Get(key)
		if err != nil && !errors.Is(err, trellis.ErrNotFound) {
			return Decision{}, err
		}
		tat, _ := strconv.ParseInt(string(old), 10, 64)
		t := now().UnixNano()
		d := l.Decide(t, tat)
		if !d.Allowed {
			return d, nil
		}
		err = st.CompareAndSet(key, old, strconv.AppendInt(nil, d.TAT, 10), d.TTL(t))
		switch {
		case err == nil:
			return d, nil
		case !errors.Is(err, trellis.ErrConflict):
			return Decision{}, err
		}
	}
	return Decision{}, ErrContention
}
