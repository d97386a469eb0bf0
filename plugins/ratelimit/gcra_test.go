package main

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

const sec = int64(time.Second)

func mustLimit(t *testing.T, rate float64, burst int64) Limit {
	t.Helper()
	l, err := NewLimit(rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewLimit(t *testing.T) {
	l := mustLimit(t, 10, 5)
	if l.Interval != 100*time.Millisecond || l.Burst != 5 {
		t.Errorf("got %+v", l)
	}
	if l := mustLimit(t, 0.5, 1); l.Interval != 2*time.Second {
		t.Errorf("0.5/s: %v", l.Interval)
	}
	for _, tc := range []struct {
		rate  float64
		burst int64
	}{{0, 1}, {-1, 1}, {math.NaN(), 1}, {math.Inf(1), 1}, {2e9, 1}, {1, 0}, {1e-9, 1 << 40}} {
		if _, err := NewLimit(tc.rate, tc.burst); err == nil {
			t.Errorf("NewLimit(%v, %d) accepted", tc.rate, tc.burst)
		}
	}
}

func TestDecideBurstThenRefill(t *testing.T) {
	l := mustLimit(t, 2, 3) // a token every 500ms, 3 at most
	now := int64(1_800_000_000) * sec
	tat := int64(0)
	for i, wantRemaining := range []int64{2, 1, 0} {
		d := l.Decide(now, tat)
		if !d.Allowed || d.Remaining != wantRemaining {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, wantRemaining)
		}
		tat = d.TAT
	}
	d := l.Decide(now, tat)
	if d.Allowed || d.RetryAfter != 500*time.Millisecond || d.Remaining != 0 {
		t.Fatalf("4th request at once: %+v, want denied, retry in 500ms", d)
	}
	if RetryAfterSeconds(d.RetryAfter) != 1 {
		t.Errorf("Retry-After %d", RetryAfterSeconds(d.RetryAfter))
	}

	// 499ms later: still denied, 1ms to go.
	if d := l.Decide(now+499*int64(time.Millisecond), tat); d.Allowed || d.RetryAfter != time.Millisecond {
		t.Fatalf("after 499ms: %+v", d)
	}
	// 500ms later one token is back.
	d = l.Decide(now+sec/2, tat)
	if !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 500ms: %+v", d)
	}
	// Long idle: the bucket is full again, never fuller.
	if d := l.Decide(now+3600*sec, d.TAT); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("after an hour: %+v", d)
	}
}

func TestDecideSlowRateRetryAfter(t *testing.T) {
	l := mustLimit(t, 0.1, 1) // one request per 10s
	now := int64(1_800_000_000) * sec
	d := l.Decide(now, 0)
	if !d.Allowed || d.TAT != now+10*sec || d.TTL(now) != 11*time.Second {
		t.Fatalf("first: %+v ttl %v", d, d.TTL(now))
	}
	d2 := l.Decide(now+2*sec+sec/10, d.TAT)
	if d2.Allowed || d2.RetryAfter != 7*time.Second+900*time.Millisecond || RetryAfterSeconds(d2.RetryAfter) != 8 {
		t.Fatalf("second: %+v", d2)
	}
}

func TestDecideSteadyRateIsAllowed(t *testing.T) {
	l := mustLimit(t, 100, 1)
	now, tat := int64(1_800_000_000)*sec, int64(0)
	for i := range 1000 {
		d := l.Decide(now+int64(i)*int64(l.Interval), tat)
		if !d.Allowed {
			t.Fatalf("request %d at exactly the rate was denied", i)
		}
		tat = d.TAT
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Nanosecond: 1, time.Second: 1, time.Second + 1: 2, 90 * time.Second: 90} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestStoreKey(t *testing.T) {
	k := StoreKey("Bearer secret-token")
	if len(k) != 35 || !strings.HasPrefix(k, "rl.") || strings.Contains(k, "secret") {
		t.Errorf("StoreKey = %q", k)
	}
	if StoreKey("a") == StoreKey("b") || StoreKey("a") != StoreKey("a") {
		t.Error("StoreKey is not a function of its input")
	}
}

// memStore is an in-memory Store; before each compare-and-set it lets
// interfere change the value, as a concurrent request would.
type memStore struct {
	vals      map[string]string
	interfere func(m *memStore, key string)
	cas       int
}

func (m *memStore) Get(key string) ([]byte, error) {
	v, ok := m.vals[key]
	if !ok {
		return nil, trellis.ErrNotFound
	}
	return []byte(v), nil
}

func (m *memStore) CompareAndSet(key string, expected, value []byte, ttl time.Duration) error {
	m.cas++
	if m.interfere != nil {
		m.interfere(m, key)
	}
	cur, ok := m.vals[key]
	if (len(expected) == 0 && ok) || (len(expected) > 0 && (!ok || cur != string(expected))) {
		return trellis.ErrConflict
	}
	if ttl <= 0 {
		return errors.New("no ttl")
	}
	m.vals[key] = string(value)
	return nil
}

func TestTakeStoresTATAndRetriesOnConflict(t *testing.T) {
	l := mustLimit(t, 1, 2)
	base := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return base }
	st := &memStore{vals: map[string]string{}}

	d, err := l.Take(st, "rl.k", clock, 4)
	if err != nil || !d.Allowed || st.vals["rl.k"] != strconv.FormatInt(base.UnixNano()+sec, 10) {
		t.Fatalf("first take: %+v %v, stored %q", d, err, st.vals["rl.k"])
	}

	// Another request lands between our get and our compare-and-set, once.
	raced := false
	st.interfere = func(m *memStore, key string) {
		if !raced {
			raced = true
			m.vals[key] = strconv.FormatInt(base.UnixNano()+2*sec, 10)
		}
	}
	st.cas = 0
	d, err = l.Take(st, "rl.k", clock, 4)
	if err != nil || d.Allowed || st.cas != 1 {
		t.Fatalf("after a race: %+v %v, %d compare-and-sets; want denied after the re-read", d, err, st.cas)
	}

	// Always losing: give up after the bounded attempts.
	st.vals = map[string]string{}
	st.interfere = func(m *memStore, key string) { m.vals[key] = strconv.Itoa(m.cas) }
	st.cas = 0
	if _, err := l.Take(st, "rl.x", clock, 5); !errors.Is(err, ErrContention) || st.cas != 5 {
		t.Fatalf("endless conflicts: %v after %d attempts", err, st.cas)
	}
}

func TestTakeTreatsGarbageAsFullBucket(t *testing.T) {
	l := mustLimit(t, 1, 1)
	st := &memStore{vals: map[string]string{"rl.k": "not a number"}}
	d, err := l.Take(st, "rl.k", time.Now, 2)
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
}

type brokenStore struct{}

func (brokenStore) Get(string) ([]byte, error) { return nil, errors.New("no jetstream") }
func (brokenStore) CompareAndSet(string, []byte, []byte, time.Duration) error {
	return errors.New("unreachable")
}

func TestTakeReportsStoreErrors(t *testing.T) {
	if _, err := mustLimit(t, 1, 1).Take(brokenStore{}, "rl.k", time.Now, 3); err == nil {
		t.Fatal("no error from a broken store")
	}
}

func TestParseSettings(t *testing.T) {
	s, err := parseSettings(policyconf.Map{"rate": "2.5"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	if s.limit.Burst != 3 || s.limit.Interval != 400*time.Millisecond || s.key.Kind != policyconf.KeyPrincipal || s.failOpen {
		t.Errorf("defaults: %+v", s)
	}
	s, err = parseSettings(policyconf.Map{"rate": "100", "burst": "10", "key": "claim:sub", "on_error": "allow"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	if s.limit.Burst != 10 || s.key.Header != "X-Claim-sub" || !s.failOpen || s.limitText != "10" {
		t.Errorf("got %+v", s)
	}
	for _, bad := range []policyconf.Map{
		{}, {"rate": "fast"}, {"rate": "0"}, {"rate": "1", "burst": "1.5"}, {"rate": "1", "burst": "0"},
		{"rate": "1", "key": "cookie:x"}, {"rate": "1", "on_error": "maybe"},
	} {
		if _, err := parseSettings(bad.Get); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestBucket(t *testing.T) {
	byDefault, _ := parseSettings(policyconf.Map{"rate": "1"}.Get)
	byAddr, _ := parseSettings(policyconf.Map{"rate": "1", "key": "remote_addr"}.Get)
	byAuth, _ := parseSettings(policyconf.Map{"rate": "1", "key": "header:Authorization"}.Get)
	byAPIKey, _ := parseSettings(policyconf.Map{"rate": "1", "key": "header:X-API-Key"}.Get)
	alice := trellis.Header{"Trellis-Principal": {"token:alice"}}
	for _, tc := range []struct {
		name string
		s    *settings
		r    *trellis.Inbound
		want string
	}{
		{"principal", byDefault, &trellis.Inbound{Msg: trellis.Msg{Subject: "x", Header: alice}, RemoteAddr: "1.2.3.4:5"}, "principal=token:alice"},
		{"principal over NATS", byDefault, &trellis.Inbound{Msg: trellis.Msg{Subject: "x", Header: alice}}, "principal=token:alice"},
		{"no principal: the address", byDefault, &trellis.Inbound{Msg: trellis.Msg{Subject: "x"}, Method: "GET", RemoteAddr: "1.2.3.4:5"}, "remote_addr=1.2.3.4"},
		{"no principal, no address: the subject", byDefault, &trellis.Inbound{Msg: trellis.Msg{Subject: "orders.get"}}, "subject=orders.get"},
		{"address", byAddr, &trellis.Inbound{Msg: trellis.Msg{Subject: "x", Header: alice}, RemoteAddr: "1.2.3.4:5"}, "remote_addr=1.2.3.4"},
		{"address over NATS", byAddr, &trellis.Inbound{Msg: trellis.Msg{Subject: "orders.get"}}, "subject=orders.get"},
		// A subject spelt like an address is not that address.
		{"subject like an address", byAddr, &trellis.Inbound{Msg: trellis.Msg{Subject: "1.2.3.4"}}, "subject=1.2.3.4"},
		{"authorization", byAuth, &trellis.Inbound{Msg: trellis.Msg{Subject: "x", Header: trellis.Header{"Authorization": {"BEARER   t "}}}}, "header:Authorization=bearer t"},
		{"missing header", byAPIKey, &trellis.Inbound{Msg: trellis.Msg{Subject: "x"}}, "header:X-API-Key="},
		{"header trimmed", byAPIKey, &trellis.Inbound{Msg: trellis.Msg{Subject: "x", Header: trellis.Header{"X-API-Key": {" k1 "}}}}, "header:X-API-Key=k1"},
	} {
		if got := tc.s.bucket(tc.r); got != tc.want {
			t.Errorf("%s: bucket %q, want %q", tc.name, got, tc.want)
		}
	}
	// Every spelling of one bearer token is one bucket.
	for _, v := range []string{"Bearer t", "bearer t", "BEARER t", "Bearer   t", "Bearer t  ", "\tBearer\tt"} {
		r := &trellis.Inbound{Msg: trellis.Msg{Subject: "x", Header: trellis.Header{"Authorization": {v}}}}
		if got := byAuth.bucket(r); got != "header:Authorization=bearer t" {
			t.Errorf("%q: bucket %q", v, got)
		}
	}
}
