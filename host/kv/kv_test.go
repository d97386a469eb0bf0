package kv_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/kv"
	"github.com/trellis-mesh/trellis/host/plugin"
)

func store(t *testing.T) *kv.Store {
	t.Helper()
	b, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return kv.New(b.Conn(), "")
}

func TestGetSetDeleteAndNamespaces(t *testing.T) {
	s := store(t)
	ctx := context.Background()
	a, b := s.Namespace("a"), s.Namespace("b")
	if _, err := a.Get(ctx, "k"); !errors.Is(err, plugin.ErrKVNotFound) {
		t.Fatalf("Get of a missing key = %v", err)
	}
	if err := a.Set(ctx, "k", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Get(ctx, "k"); err != nil || string(v) != "v1" {
		t.Fatalf("Get = %q %v", v, err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, plugin.ErrKVNotFound) {
		t.Fatalf("namespace b sees a's key: %v", err)
	}
	if err := a.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "k"); !errors.Is(err, plugin.ErrKVNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	for _, bad := range []string{"", "a b", "a..b", ".a", "ünï"} {
		if err := a.Set(ctx, bad, nil, 0); !errors.Is(err, plugin.ErrKVBadKey) {
			t.Errorf("Set(%q) = %v, want ErrKVBadKey", bad, err)
		}
	}
}

func TestCompareAndSet(t *testing.T) {
	s := store(t)
	ctx := context.Background()
	n := s.Namespace("p")
	if err := n.CAS(ctx, "k", nil, []byte("1"), 0); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := n.CAS(ctx, "k", nil, []byte("x"), 0); !errors.Is(err, plugin.ErrKVConflict) {
		t.Fatalf("create over an existing key = %v", err)
	}
	if err := n.CAS(ctx, "k", []byte("2"), []byte("3"), 0); !errors.Is(err, plugin.ErrKVConflict) {
		t.Fatalf("CAS with a wrong expectation = %v", err)
	}
	if err := n.CAS(ctx, "k", []byte("1"), []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	n.Delete(ctx, "k")
	if err := n.CAS(ctx, "k", nil, []byte("again"), 0); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}

func TestIncrIsAtomicAcrossGoroutines(t *testing.T) {
	s := store(t)
	ctx := context.Background()
	n := s.Namespace("p")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := n.Incr(ctx, "hits", 1, 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	v, err := n.Get(ctx, "hits")
	if err != nil || string(v) != "200" {
		t.Fatalf("after %d increments: %q %v", workers*each, v, err)
	}
	if got, err := n.Incr(ctx, "hits", -50, 0); err != nil || got != 150 {
		t.Fatalf("Incr(-50) = %d %v", got, err)
	}
	n.Set(ctx, "text", []byte("abc"), 0)
	if _, err := n.Incr(ctx, "text", 1, 0); !errors.Is(err, plugin.ErrKVNotInteger) {
		t.Fatalf("Incr on text = %v", err)
	}
}

func TestKeysExpire(t *testing.T) {
	s := store(t)
	ctx := context.Background()
	n := s.Namespace("p")
	if err := n.Set(ctx, "short", []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Incr(ctx, "counter", 1, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, e1 := n.Get(ctx, "short")
		_, e2 := n.Get(ctx, "counter")
		if errors.Is(e1, plugin.ErrKVNotFound) && errors.Is(e2, plugin.ErrKVNotFound) {
			// An expired counter starts again from zero.
			if v, err := n.Incr(ctx, "counter", 1, 0); err != nil || v != 1 {
				t.Fatalf("Incr after expiry = %d %v", v, err)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("keys with a 1s TTL still there after 10s")
}
