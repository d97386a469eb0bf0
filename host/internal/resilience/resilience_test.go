package resilience

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBreakerOpensHalfOpensAndCloses(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	b := &Breaker{Failures: 3, Cooldown: 10 * time.Second, Now: c.now}
	for i := 0; i < 2; i++ {
		if !b.Allow() {
			t.Fatal("closed breaker refused a call")
		}
		b.Record(true)
	}
	if b.State() != Closed {
		t.Fatalf("state %v after 2 failures", b.State())
	}
	b.Allow()
	b.Record(false) // a success resets the count
	for i := 0; i < 3; i++ {
		b.Allow()
		b.Record(true)
	}
	if b.State() != Open || b.Allow() {
		t.Fatalf("state %v after 3 consecutive failures; open must refuse", b.State())
	}
	c.t = c.t.Add(10 * time.Second)
	if b.State() != HalfOpen {
		t.Fatalf("state %v after the cool-down", b.State())
	}
	if !b.Allow() {
		t.Fatal("half-open refused the trial call")
	}
	if b.Allow() {
		t.Fatal("half-open let a second call through during the trial")
	}
	b.Record(true) // the trial failed: open again
	if b.State() != Open {
		t.Fatalf("state %v after a failed trial", b.State())
	}
	c.t = c.t.Add(10 * time.Second)
	b.Allow()
	b.Record(false)
	if b.State() != Closed || !b.Allow() {
		t.Fatalf("state %v after a good trial", b.State())
	}
}

func TestDisabledBreakerAlwaysAllows(t *testing.T) {
	var b *Breaker
	b.Record(true)
	if !b.Allow() || b.State() != Closed {
		t.Fatal("nil breaker")
	}
	z := &Breaker{}
	for i := 0; i < 100; i++ {
		z.Record(true)
	}
	if !z.Allow() {
		t.Fatal("zero breaker opened")
	}
}

func TestBackoffGrowsAndStaysInBounds(t *testing.T) {
	for attempt := 1; attempt <= 10; attempt++ {
		ceiling := 10 * time.Millisecond << (attempt - 1)
		if ceiling > time.Second {
			ceiling = time.Second
		}
		for i := 0; i < 50; i++ {
			d := Backoff(attempt, 10*time.Millisecond, time.Second)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
	if Backoff(3, 0, time.Second) != 0 {
		t.Fatal("zero base must not wait")
	}
}
