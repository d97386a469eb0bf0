package slots

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTakeUpToCap(t *testing.T) {
	s := New(3)
	for i := range 3 {
		if !s.TryTake() {
			t.Fatalf("slot %d of 3 refused", i+1)
		}
	}
	if s.TryTake() {
		t.Fatal("a fourth slot of 3 was taken")
	}
	if s.Used() != 3 {
		t.Fatalf("Used() = %d, want 3", s.Used())
	}
	s.Give()
	if !s.TryTake() {
		t.Fatal("a slot given back could not be taken again")
	}
}

func TestNewHasAtLeastOneSlot(t *testing.T) {
	if c := New(0).Cap(); c != 1 {
		t.Fatalf("New(0).Cap() = %d, want 1", c)
	}
}

func TestTakeWaitsUntilAGive(t *testing.T) {
	s := New(1)
	s.TryTake()
	got := make(chan error)
	go func() { got <- s.Take(context.Background()) }()
	select {
	case err := <-got:
		t.Fatalf("Take returned %v with no slot free", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Give()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Take still waiting after a Give")
	}
	if s.Used() != 1 {
		t.Fatalf("Used() = %d, want 1", s.Used())
	}
}

func TestTakeGivesUpWithItsContext(t *testing.T) {
	s := New(1)
	s.TryTake()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Take(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Take = %v, want the deadline's error", err)
	}
	if s.Used() != 1 {
		t.Fatalf("a Take that gave up holds a slot: Used() = %d", s.Used())
	}
	// The waiter that left does not take the next slot given back.
	s.Give()
	if !s.TryTake() {
		t.Fatal("the slot given back after a waiter left was not free")
	}
}

func TestGiveWithoutTakePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Give with no slot taken did not panic")
		}
	}()
	New(1).Give()
}

// Many goroutines share few slots, taking and giving back in a tight loop:
// never more holders than slots, and every Take returns (a signal lost
// between a Give and a waiter would leave one waiting for good, and the
// test would time out). Run with -race.
func TestNeverMoreHoldersThanSlotsAndNoWaiterForgotten(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		s := New(n)
		var holders, most atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2000 {
					if err := s.Take(context.Background()); err != nil {
						t.Error(err)
						return
					}
					h := holders.Add(1)
					for {
						m := most.Load()
						if h <= m || most.CompareAndSwap(m, h) {
							break
						}
					}
					runtime.Gosched() // let others find every slot held
					holders.Add(-1)
					s.Give()
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%d slots: takers still waiting after 20 s (%d held)", n, s.Used())
		}
		if m := most.Load(); m > int64(n) {
			t.Fatalf("%d slots: %d holders at once", n, m)
		}
		if s.Used() != 0 {
			t.Fatalf("%d slots: %d still held after every holder gave back", n, s.Used())
		}
	}
}

func BenchmarkTakeGive(b *testing.B) {
	s := New(1024)
	ctx := context.Background()
	for range b.N {
		if err := s.Take(ctx); err != nil {
			b.Fatal(err)
		}
		s.Give()
	}
}

// BenchmarkChannel is the buffered channel Slots replaces, for comparison.
func BenchmarkChannel(b *testing.B) {
	c := make(chan struct{}, 1024)
	for range b.N {
		c <- struct{}{}
		<-c
	}
}
