package kv_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/internal/kv"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

func store(t *testing.T) *kv.Store {
	t.Helper()
	s, _ := storeOnBus(t)
	return s
}

func storeOnBus(t *testing.T) (*kv.Store, *bus.Bus) {
	t.Helper()
	b, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return kv.New(b.Conn(), "", 1), b
}

// TestBucketDeletedByAClientIsCreatedAgain deletes the bucket's stream
// through an outside client, as anyone on an open bus can, and expects
// every operation to work again on the next call instead of failing until
// a restart.
func TestBucketDeletedByAClientIsCreatedAgain(t *testing.T) {
	s, b := storeOnBus(t)
	ctx := context.Background()
	n := s.Namespace("orders")
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ops := []struct {
		name string
		op   func() error
	}{
		{"Set", func() error { return n.Set(ctx, "k", []byte("v"), 0) }},
		{"Get", func() error { _, err := n.Get(ctx, "k"); return err }},
		{"Incr", func() error { _, err := n.Incr(ctx, "c", 1, 0); return err }},
		{"CAS", func() error { return n.CAS(ctx, "new", nil, []byte("x"), 0) }},
		{"Delete", func() error { return n.Delete(ctx, "k") }},
	}
	for _, o := range ops {
		if err := n.Set(ctx, "k", []byte("v"), 0); err != nil {
			t.Fatalf("before %s: %v", o.name, err)
		}
		if err := js.DeleteStream(ctx, "KV_"+kv.DefaultBucket); err != nil {
			t.Fatalf("delete the bucket's stream: %v", err)
		}
		if err := o.op(); err != nil && !errors.Is(err, plugin.ErrKVNotFound) {
			t.Fatalf("%s after the bucket was deleted: %v", o.name, err)
		}
		if err := n.Set(ctx, "k", []byte("again"), 0); err != nil {
			t.Fatalf("Set after %s: %v", o.name, err)
		}
		if v, err := n.Get(ctx, "k"); err != nil || string(v) != "again" {
			t.Fatalf("Get after %s: %q %v", o.name, v, err)
		}
	}
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
