package kv

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host/bus"
)

// testStore starts a bus of one server with JetStream, closed when the test
// ends, and returns it, a store on it and the store's namespace "ns".
func testStore(t *testing.T) (*bus.Bus, *Store, *view) {
	t.Helper()
	b, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s := New(b.Conn(), "", 1)
	return b, s, s.Namespace("ns").(*view)
}

// TestTheLeaderReadsWhatADirectGetReads: the read a compare-and-set falls
// back on after a conflict (the stream leader's answer) sees a value, an
// overwritten value, a deleted key and a missing key exactly as a direct
// get does, sequence included; and with the bucket's stream gone it fails
// in a way that makes the store open the bucket again.
func TestTheLeaderReadsWhatADirectGetReads(t *testing.T) {
	b, s, v := testStore(t)
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

// A read that comes back older than this host's own last write of the key
// (a replica that has not applied it yet) is asked again of the leader;
// one that is not stays a direct get. The keys remembered are bounded: past
// maxRecentWrites, every read asks the leader for recentWrite instead.
func TestReadsAfterThisHostsWritesAskTheLeaderWhenBehind(t *testing.T) {
	_, s, v := testStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leaderReads := func() int {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return s.leaderReads
	}
	get := func(key, want string) {
		t.Helper()
		got, err := v.Get(ctx, key)
		if err != nil || string(got) != want {
			t.Fatalf("get %s: %q %v, want %q", key, got, err, want)
		}
	}

	if err := v.Set(ctx, "k", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	w, ok := s.recent["ns.k"]
	s.wmu.Unlock()
	if !ok || w.seq == 0 {
		t.Fatalf("the write of ns.k was not remembered: %+v", s.recent)
	}
	get("k", "one") // one server: the direct get has the write
	if n := leaderReads(); n != 0 {
		t.Fatalf("%d reads asked the leader, with every replica up to date", n)
	}

	// As if this host's last write were newer than what the replica read.
	s.wrote("ns.k", w.seq+100)
	get("k", "one")
	if n := leaderReads(); n != 1 {
		t.Fatalf("%d reads asked the leader after a read older than this host's write, want 1", n)
	}
	// A delete is a write too.
	if err := v.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "k"); err == nil {
		t.Fatal("a deleted key read")
	}

	// An old write is forgotten.
	s.wmu.Lock()
	s.recent["ns.k"] = written{seq: w.seq + 1000, at: time.Now().Add(-2 * recentWrite)}
	s.wmu.Unlock()
	before := leaderReads()
	if _, err := v.Get(ctx, "k"); err == nil || leaderReads() != before {
		t.Fatalf("a write older than recentWrite still sent the read to the leader (%d, %v)", leaderReads()-before, err)
	}

	// Bounded: one key too many, and every read asks the leader for a while.
	for i := range maxRecentWrites + 1 {
		s.wrote(fmt.Sprintf("ns.many%d", i), 1)
	}
	s.wmu.Lock()
	n, until := len(s.recent), s.leaderUntil
	s.wmu.Unlock()
	if n > maxRecentWrites || time.Until(until) <= 0 {
		t.Fatalf("%d keys remembered (at most %d), leader reads until %v", n, maxRecentWrites, until)
	}
	if err := v.Set(ctx, "other", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	before = leaderReads()
	get("other", "x")
	if leaderReads() != before+1 {
		t.Fatal("after the remembered writes overflowed, a read did not ask the leader")
	}
}
