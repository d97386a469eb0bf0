package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type counter struct {
	made, closed atomic.Int64
}

func (c *counter) pool(max int) *Pool[int64] {
	return New(max, func(context.Context) (int64, error) {
		return c.made.Add(1), nil
	}, func(int64) { c.closed.Add(1) })
}

func TestAcquireReusesIdleItems(t *testing.T) {
	var c counter
	p := c.pool(2)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		it, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Release(it)
	}
	if got := c.made.Load(); got != 1 {
		t.Fatalf("made %d items for sequential use, want 1", got)
	}
}

func TestAcquireWaitsThenReportsBusy(t *testing.T) {
	var c counter
	p := c.pool(1)
	it, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Acquire(ctx)
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on a full pool = %v, want ErrBusy and DeadlineExceeded", err)
	}
	p.Release(it)
	if _, err := p.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
}

func TestNeverMoreThanMaxLive(t *testing.T) {
	var c counter
	const max = 4
	p := c.pool(max)
	var live, peak atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				it, err := p.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				n := live.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				live.Add(-1)
				if (g+i)%7 == 0 {
					p.Discard(it)
				} else {
					p.Release(it)
				}
			}
		}(g)
	}
	wg.Wait()
	if peak.Load() > max {
		t.Fatalf("peak of %d items in use, max %d", peak.Load(), max)
	}
	if alive := c.made.Load() - c.closed.Load(); alive > max {
		t.Fatalf("%d items alive, max %d", alive, max)
	}
}

func TestDiscardClosesAndFreesSlot(t *testing.T) {
	var c counter
	p := c.pool(1)
	it, _ := p.Acquire(context.Background())
	p.Discard(it)
	if c.closed.Load() != 1 {
		t.Fatal("Discard did not close the item")
	}
	it2, err := p.Acquire(context.Background())
	if err != nil || it2 == it {
		t.Fatalf("after Discard got item %d err %v, want a new item", it2, err)
	}
}

func TestCloseWaitsForInUseAndClosesAll(t *testing.T) {
	var c counter
	p := c.pool(3)
	a, _ := p.Acquire(context.Background())
	b, _ := p.Acquire(context.Background())
	p.Release(b)
	done := make(chan error)
	go func() { done <- p.Close(context.Background()) }()
	select {
	case <-done:
		t.Fatal("Close returned while an item was in use")
	case <-time.After(30 * time.Millisecond):
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire during Close = %v, want ErrClosed", err)
	}
	p.Release(a)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.made.Load() != c.closed.Load() {
		t.Fatalf("made %d, closed %d", c.made.Load(), c.closed.Load())
	}
}

func TestCloseGivesUpAtDeadline(t *testing.T) {
	var c counter
	p := c.pool(1)
	it, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	p.Release(it) // closes it, since the pool is closed
	if c.made.Load() != c.closed.Load() {
		t.Fatalf("made %d, closed %d", c.made.Load(), c.closed.Load())
	}
}

func TestNewItemErrorFreesSlot(t *testing.T) {
	fail := errors.New("boom")
	p := New(1, func(context.Context) (int, error) { return 0, fail }, func(int) {})
	for i := 0; i < 3; i++ {
		if _, err := p.Acquire(context.Background()); !errors.Is(err, fail) {
			t.Fatalf("Acquire = %v, want %v", err, fail)
		}
	}
	if err := p.Prime(context.Background()); !errors.Is(err, fail) {
		t.Fatalf("Prime = %v", err)
	}
}

func TestWaitersAreServedInArrivalOrder(t *testing.T) {
	var c counter
	p := c.pool(1)
	it, _ := p.Acquire(context.Background())
	order := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func() {
			it, err := p.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			p.Release(it)
		}()
		waitFor(t, func() bool { return p.waiting() == i+1 })
	}
	p.Release(it)
	for want := 0; want < 3; want++ {
		if got := <-order; got != want {
			t.Fatalf("waiter %d served before waiter %d", got, want)
		}
	}
}

func TestDiscardLetsAWaiterMakeANewItem(t *testing.T) {
	var c counter
	p := c.pool(1)
	it, _ := p.Acquire(context.Background())
	got := make(chan int64)
	go func() {
		it, err := p.Acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- it
	}()
	waitFor(t, func() bool { return p.waiting() == 1 })
	p.Discard(it)
	if it2 := <-got; it2 == it || c.made.Load() != 2 {
		t.Fatalf("waiter got item %d (made %d), want a new one", it2, c.made.Load())
	}
}

func TestCloseTurnsAwayWaiters(t *testing.T) {
	var c counter
	p := c.pool(1)
	it, _ := p.Acquire(context.Background())
	errc := make(chan error)
	go func() {
		_, err := p.Acquire(context.Background())
		errc <- err
	}()
	waitFor(t, func() bool { return p.waiting() == 1 })
	closed := make(chan error)
	go func() { closed <- p.Close(context.Background()) }()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting Acquire = %v, want ErrClosed", err)
	}
	p.Release(it)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if c.made.Load() != c.closed.Load() {
		t.Fatalf("made %d, closed %d", c.made.Load(), c.closed.Load())
	}
}

// TestTimeoutsLoseNoItem has waiters give up at every moment, some just as
// an item is handed to them: every item must come back to the pool.
func TestTimeoutsLoseNoItem(t *testing.T) {
	var c counter
	const max = 2
	p := c.pool(max)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*20*time.Microsecond)
				it, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					if !errors.Is(err, ErrBusy) {
						t.Error(err)
						return
					}
					continue
				}
				if (g+i)%11 == 0 {
					p.Discard(it)
				} else {
					p.Release(it)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := p.InUse(); n != 0 {
		t.Fatalf("%d items still in use after every caller returned them", n)
	}
	// Both slots are free: two Acquires succeed at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i := 0; i < max; i++ {
		if _, err := p.Acquire(ctx); err != nil {
			t.Fatalf("Acquire %d after the storm: %v", i, err)
		}
	}
	if alive := c.made.Load() - c.closed.Load(); alive > max {
		t.Fatalf("%d items alive, max %d", alive, max)
	}
}

// BenchmarkAcquireRelease is the pool's cost per call when an item is idle.
func BenchmarkAcquireRelease(b *testing.B) {
	var c counter
	p := c.pool(4)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		it, err := p.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(it)
	}
}

func (p *Pool[T]) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
	}
}

// TestIdleCountsWhatWaitsForReuse: Idle, read without the lock, follows
// every way an item becomes idle or stops being so.
func TestIdleCountsWhatWaitsForReuse(t *testing.T) {
	var c counter
	p := c.pool(3)
	ctx := context.Background()
	want := func(n int) {
		t.Helper()
		if got := p.Idle(); got != n {
			t.Fatalf("Idle() = %d, want %d", got, n)
		}
	}
	want(0)
	a, _ := p.Acquire(ctx)
	b, _ := p.Acquire(ctx)
	want(0)
	p.Release(a)
	want(1)
	p.Release(b)
	want(2)
	it, ok := p.TryAcquire()
	if !ok {
		t.Fatal("TryAcquire found nothing with two idle")
	}
	want(1)
	p.Discard(it)
	want(1)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want(0)
}
