package host

import (
	"testing"
	"time"
)

func TestSameBodyMasksJSONFields(t *testing.T) {
	cases := []struct {
		a, b string
		mask []string
		want bool
	}{
		{`hello`, `hello`, nil, true},
		{`hello`, `hello!`, nil, false},
		{`{"id":1,"v":2}`, `{"v":2,"id":3}`, nil, false},
		{`{"id":1,"v":2}`, `{"v":2,"id":3}`, []string{"id"}, true},
		{`{"id":1,"v":2}`, `{"v":3,"id":3}`, []string{"id"}, false},
		{`{"meta":{"id":1,"at":"x"},"v":2}`, `{"meta":{"id":2,"at":"x"},"v":2}`, []string{"meta.id"}, true},
		{`{"items":[{"id":1,"n":"a"},{"id":2,"n":"b"}]}`, `{"items":[{"id":7,"n":"a"},{"id":8,"n":"b"}]}`, []string{"items.id"}, true},
		{`{"items":[{"id":1,"n":"a"}]}`, `{"items":[{"id":7,"n":"c"}]}`, []string{"items.id"}, false},
		{`not json`, `not json either`, []string{"id"}, false},
		{`{"id":1}`, `{"id":1,"extra":true}`, []string{"id"}, false},
	}
	for _, c := range cases {
		if got := sameBody([]byte(c.a), []byte(c.b), c.mask); got != c.want {
			t.Errorf("sameBody(%s, %s, %v) = %v", c.a, c.b, c.mask, got)
		}
	}
}

func TestLatencyQuantilesAreWithinABucket(t *testing.T) {
	var s versionStats
	for i := 1; i <= 100; i++ {
		s.record(time.Duration(i)*time.Millisecond, i%10 == 0)
	}
	r := s.read()
	if r.msgs != 100 || r.errs != 10 || r.errorRatio() != 0.1 {
		t.Fatalf("reading %d %d", r.msgs, r.errs)
	}
	for _, q := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		got := r.quantile(q.q)
		if got < q.want || float64(got) > float64(q.want)*1.2 {
			t.Errorf("quantile(%v) = %v, want %v to 20%% above", q.q, got, q.want)
		}
	}
	later := s.read()
	s.record(time.Second, true)
	if d := s.read().since(later); d.msgs != 1 || d.errs != 1 || d.quantile(0.5) < time.Second {
		t.Fatalf("window %+v", d)
	}
	for _, d := range []time.Duration{0, 1, 7, 8, 9, 100, time.Microsecond, time.Hour, 1 << 62} {
		i := latBucket(d)
		if i < 0 || i >= latBuckets || (d < 1<<40 && latUpper(i) < d) {
			t.Errorf("latBucket(%v) = %d, upper %v", d, i, latUpper(i))
		}
	}
}

func TestBreachRules(t *testing.T) {
	plan, err := Rollout{MinMessages: 10}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	window := func(n, errs int, lat time.Duration) statsReading {
		var s versionStats
		for i := range n {
			s.record(lat, i < errs)
		}
		return s.read()
	}
	stable := window(100, 1, time.Millisecond)
	// A good version's small window with a few pauses in it.
	paused := func(n, slow int) statsReading {
		var s versionStats
		for i := range n {
			lat := time.Millisecond
			if i < slow {
				lat = 60 * time.Millisecond
			}
			s.record(lat, false)
		}
		return s.read()
	}
	cases := []struct {
		name   string
		canary statsReading
		ref    *statsReading
		breach bool
	}{
		{"too few to judge", window(9, 9, time.Second), &stable, false},
		{"as good", window(50, 0, time.Millisecond), &stable, false},
		{"within a point", window(100, 2, time.Millisecond), &stable, false},
		{"errors", window(100, 5, time.Millisecond), &stable, true},
		{"slower, under the floor", window(50, 0, 3*time.Millisecond), &stable, false},
		{"slower", window(50, 0, 20*time.Millisecond), &stable, true},
		{"three pauses in a small window", paused(65, 3), &stable, false},
		{"four slow calls in a small window", paused(65, 4), &stable, true},
		{"slow 2% of a large window", paused(1000, 20), &stable, true},
		{"no reference: errors", window(50, 5, time.Millisecond), nil, true},
		{"no reference: latency unjudged", window(50, 0, time.Second), nil, false},
	}
	for _, c := range cases {
		if got := plan.breach(c.canary, c.ref); (got != "") != c.breach {
			t.Errorf("%s: breach %q, want %v", c.name, got, c.breach)
		}
	}
}
