package kv

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host/bus"
)

// TestTheLeaderReadsWhatADirectGetReads: the read a compare-and-set falls
// back on after a conflict (the stream leader's answer) sees a value, an
// overwritten value, a deleted key and a missing key exactly as a direct
// get does, sequence included; and with the bucket's stream gone it fails
// in a way that makes the store open the bucket again.
func TestTheLeaderReadsWhatADirectGetReads(t *testing.T) {
	b, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := New(b.Conn(), "", 1)
	v := s.Namespace("ns").(*view)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	agree := func(key string) {
		t.Helper()
		h, err := s.open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		full, err := v.key(key)
		if err != nil {
			t.Fatal(err)
		}
		d, dseq, dfound, derr := v.entry(ctx, h, full, false)
		l, lseq, lfound, lerr := v.entry(ctx, h, full, true)
		if derr != nil || lerr != nil {
			t.Fatalf("%s: direct get: %v; leader: %v", key, derr, lerr)
		}
		if !bytes.Equal(d, l) || dseq != lseq || dfound != lfound {
			t.Fatalf("%s: direct get read %q seq %d found %v, the leader %q seq %d found %v", key, d, dseq, dfound, l, lseq, lfound)
		}
	}
	agree("missing")
	if err := v.Set(ctx, "k", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	agree("k")
	if err := v.Set(ctx, "k", []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	agree("k")
	if err := v.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	agree("k")
	if _, err := v.Incr(ctx, "n", 5, 0); err != nil {
		t.Fatal(err)
	}
	agree("n")

	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "KV_"+DefaultBucket); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := v.leaderEntry(ctx, "ns.k"); !gone(err) {
		t.Fatalf("with the stream deleted, the leader's read failed with %v, which the store does not take for a bucket gone", err)
	}
}
