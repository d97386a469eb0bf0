package deadline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/deadline"
)

func TestErrWithoutTimer(t *testing.T) {
	c := deadline.New(context.Background(), time.Now().Add(30*time.Millisecond))
	defer c.Release()
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	time.Sleep(40 * time.Millisecond)
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline = %v", err)
	}
	// Done, asked late, is closed at once and agrees with Err.
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after Done = %v", err)
	}
}

func TestDoneClosesAtDeadline(t *testing.T) {
	c := deadline.New(context.Background(), time.Now().Add(20*time.Millisecond))
	defer c.Release()
	start := time.Now()
	<-c.Done()
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Fatalf("Done closed after %v, before the deadline", el)
	}
}

func TestParentEnds(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := deadline.New(parent, time.Now().Add(time.Hour))
	defer c.Release()
	cancel()
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after the parent's cancel = %v", err)
	}
	<-c.Done()
}

func TestEarlierParentDeadlineWins(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := deadline.New(parent, time.Now().Add(time.Hour))
	pd, _ := parent.Deadline()
	if d, ok := c.Deadline(); !ok || !d.Equal(pd) {
		t.Fatalf("Deadline = %v, want the parent's %v", d, pd)
	}
}

// A context derived from a Context follows it without a goroutine of its
// own (through AfterFunc), and ends when it does.
func TestDerivedContextEnds(t *testing.T) {
	c := deadline.New(context.Background(), time.Now().Add(20*time.Millisecond))
	defer c.Release()
	child, cancel := context.WithCancel(c)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child not ended at the parent's deadline")
	}
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("child Err = %v", child.Err())
	}
}

func TestReleaseCancels(t *testing.T) {
	c := deadline.New(context.Background(), time.Now().Add(time.Hour))
	done := c.Done()
	c.Release()
	select {
	case <-done:
	default:
		t.Fatal("Done open after Release")
	}
	c.Release() // twice is fine
}

func BenchmarkNewErrRelease(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := deadline.New(context.Background(), time.Now().Add(time.Second))
		if c.Err() != nil {
			b.Fatal("ended")
		}
		c.Release()
	}
}

func BenchmarkWithDeadline(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Second))
		if c.Err() != nil {
			b.Fatal("ended")
		}
		cancel()
	}
}

func TestReleaseCancelsWithoutTimer(t *testing.T) {
	c := deadline.After(context.Background(), time.Hour)
	if err := c.Err(); err != nil {
		t.Fatalf("Err before Release = %v", err)
	}
	c.Release()
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after Release = %v, want Canceled", err)
	}
	// Done asked after Release is closed at once.
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("Done open after Release")
	}
}

func TestDeadlineMatchesAfter(t *testing.T) {
	before := time.Now()
	c := deadline.After(context.Background(), time.Minute)
	defer c.Release()
	at, ok := c.Deadline()
	if !ok || at.Before(before.Add(time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Fatalf("Deadline = %v, %v; want a minute from now", at, ok)
	}
}

func BenchmarkAfterErrRelease(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		c := deadline.After(context.Background(), time.Second)
		if c.Err() != nil {
			b.Fatal("ended")
		}
		c.Release()
	}
}

// TestReleaseRacesDone has Release and a first Done run at once: whichever
// comes second, the timer made by Done ends with the release.
func TestReleaseRacesDone(t *testing.T) {
	for i := 0; i < 200; i++ {
		c := deadline.After(context.Background(), time.Hour)
		done := make(chan (<-chan struct{}))
		go func() { done <- c.Done() }()
		c.Release()
		select {
		case <-<-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Done still open after Release")
		}
	}
}

// TestResetReuses: a released context, reset, is a new one.
func TestResetReuses(t *testing.T) {
	var c deadline.Context
	c.Reset(context.Background(), deadline.Now()+time.Hour)
	<-func() <-chan struct{} { c.Release(); return c.Done() }()
	c.Reset(context.Background(), deadline.Now()+time.Hour)
	if err := c.Err(); err != nil {
		t.Fatalf("Err after Reset = %v", err)
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed after Reset")
	default:
	}
	c.Reset(context.Background(), deadline.Now()-time.Second)
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline = %v", err)
	}
	c.Release()
}

// TestHasAgreesWithDeadline: Has answers as Deadline would, for a Context
// and for the standard contexts.
func TestHasAgreesWithDeadline(t *testing.T) {
	bg := context.Background()
	std, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	for _, ctx := range []context.Context{bg, std, deadline.After(bg, time.Minute), context.WithoutCancel(std)} {
		_, want := ctx.Deadline()
		if got := deadline.Has(ctx); got != want {
			t.Errorf("Has(%v) = %v, Deadline says %v", ctx, got, want)
		}
	}
}
