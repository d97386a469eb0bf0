// Package kv is the host's key-value store for plugins: NATS JetStream KV
// on the host's own bus, so that state such as a rate limit or an order
// store holds across pool instances and across every host sharing the
// cluster.
//
// All plugins share one bucket; each sees only keys under its namespace
// (its name, unless the operator gives several plugins the same one).
// Per-key expiry uses JetStream's per-message TTL; compare-and-set and
// increment use the stream's expected-last-sequence check, so they are
// atomic across hosts without a lock.
//
// The bucket is a JetStream stream anyone with access to the host's account
// can delete. When a call finds it gone, the store forgets its handle,
// creates the bucket again and retries the call once, so state is lost
// but service is not.
package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// DefaultBucket is the JetStream KV bucket plugins' keys live in.
const DefaultBucket = "trellis"

// leaderGetTimeout bounds a read from the stream's leader made with no
// deadline of the caller's, as jetstream bounds its own requests.
const leaderGetTimeout = 5 * time.Second

// maxAttempts bounds compare-and-set loops under contention; each attempt
// also respects the caller's deadline.
const maxAttempts = 64

// Reads after this host's own writes. A direct get may be answered by a
// replica that has not applied a write the leader has acknowledged (once
// a majority stored it). The store remembers, for recentWrite, the
// sequence of each key this host wrote; a read of such a key that comes
// back older asks the stream's leader. So a plugin reads its own writes
// on the host that made them (a kv_set, then a kv_get in the same call or
// a later one), unless a replica lags by more than recentWrite. At most
// maxRecentWrites keys are remembered: past that, every read asks the
// leader for recentWrite, so the promise holds and memory stays bounded.
const (
	recentWrite     = 10 * time.Second
	maxRecentWrites = 4096
)

// Store opens the bucket on first use and hands out namespaced views.
type Store struct {
	nc       *nats.Conn
	bucket   string
	replicas int

	mu sync.Mutex
	h  *handle

	wmu         sync.Mutex         // guards what follows
	recent      map[string]written // bucket key → this host's last write of it
	leaderUntil time.Time          // after recent overflowed: every read asks the leader until then
	leaderReads int                // reads sent to the leader because of a write of this host's
}

// written is a write of this host's: its sequence, and when.
type written struct {
	seq uint64
	at  time.Time
}

// wrote records that this host's write of key was stored at seq.
func (s *Store) wrote(key string, seq uint64) {
	now := time.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.recent == nil {
		s.recent = map[string]written{}
	}
	if _, known := s.recent[key]; !known && len(s.recent) >= maxRecentWrites {
		for k, w := range s.recent {
			if now.Sub(w.at) > recentWrite {
				delete(s.recent, k)
			}
		}
		if len(s.recent) >= maxRecentWrites {
			clear(s.recent)
			s.leaderUntil = now.Add(recentWrite)
		}
	}
	s.recent[key] = written{seq: seq, at: now}
}

// behind reports whether a read of key that found its message at seq (0:
// none) may have missed a write of this host's, and counts it if so.
func (s *Store) behind(key string, seq uint64) bool {
	now := time.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	stale := now.Before(s.leaderUntil)
	if w, ok := s.recent[key]; ok {
		switch {
		case now.Sub(w.at) > recentWrite:
			delete(s.recent, key)
		case seq < w.seq:
			stale = true
		}
	}
	if stale {
		s.leaderReads++
	}
	return stale
}

// handle is an open bucket; it is replaced whole when the bucket is gone.
type handle struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

// New returns a store on nc's JetStream whose bucket JetStream keeps
// replicas copies of (0 or 1: one; in a cluster, three survive the loss of
// a member). Nothing is created until a plugin uses it; a bucket that
// exists with another number of replicas is changed to this one when
// opened, so a host that joins a cluster brings its state along. Until the
// cluster has that many members with JetStream, opening the bucket fails
// and each call says why.
func New(nc *nats.Conn, bucket string, replicas int) *Store {
	if bucket == "" {
		bucket = DefaultBucket
	}
	return &Store{nc: nc, bucket: bucket, replicas: max(replicas, 1)}
}

func (s *Store) open(ctx context.Context) (*handle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		return s.h, nil
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:         s.bucket,
		Description:    "Trellis plugin state",
		History:        1,
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: time.Second, // enables per-key TTL
		Replicas:       s.replicas,
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	for attempt := 1; attempt <= 4 && storeNotReady(err); attempt++ {
		// The server is still removing the files of the bucket's stream,
		// deleted a moment ago: its store cannot be made yet.
		select {
		case <-time.After(time.Duration(attempt) * 25 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("kv bucket %s: %w", s.bucket, err)
		}
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s (is JetStream enabled?): %w", s.bucket, err)
	}
	stream, err := js.Stream(ctx, "KV_"+s.bucket)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", s.bucket, err)
	}
	s.h = &handle{kv: kv, stream: stream}
	return s.h, nil
}

// errStreamStore is nats-server's JSStreamStoreFailedF, "error creating
// store for stream": a stream whose files cannot be made, as when the
// server is still removing those of a stream of the same name.
const errStreamStore jetstream.ErrorCode = 10049

// storeNotReady reports whether err is errStreamStore: worth a retry.
func storeNotReady(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errStreamStore
}

// forget drops h if it is still the current handle, so that the next call
// opens (and if need be creates) the bucket again.
func (s *Store) forget(h *handle) {
	s.mu.Lock()
	if s.h == h {
		s.h = nil
	}
	s.mu.Unlock()
}

// gone reports whether err says the bucket's stream no longer exists:
// deleted through the JetStream API, or never re-created after a restart
// of a server without persistence.
func gone(err error) bool {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound
}

// do runs fn on the open bucket; if the bucket turns out to be gone, it
// opens it again and runs fn once more.
func (s *Store) do(ctx context.Context, fn func(*handle) error) error {
	h, err := s.open(ctx)
	if err != nil {
		return err
	}
	err = fn(h)
	if !gone(err) {
		return err
	}
	s.forget(h)
	if h, err = s.open(ctx); err != nil {
		return err
	}
	return fn(h)
}

// Namespace returns the view of the store a plugin gets.
func (s *Store) Namespace(ns string) plugin.KV { return &view{s: s, prefix: ns + "."} }

type view struct {
	s      *Store
	prefix string
}

func (v *view) key(k string) (string, error) {
	if !plugin.ValidKey(k) {
		return "", plugin.ErrKVBadKey
	}
	return v.prefix + k, nil
}

// entry reads the key's last message in one go: its value, its sequence
// (what an expected-last-sequence check compares with) and whether it holds
// a value at all, as opposed to a delete, purge or expiry marker. Reading
// both from one message is what keeps compare-and-set honest.
//
// It reads with a direct get, which any replica of the bucket's stream may
// answer, a follower a little behind the leader included; with leader set,
// it asks the stream's leader (leaderEntry). A compare-and-set whose write
// was refused reads again from the leader: a lagging replica cannot make
// it fail again and again. So does a read that comes back older than this
// host's last write of the key (see recentWrite).
func (v *view) entry(ctx context.Context, h *handle, key string, leader bool) ([]byte, uint64, bool, error) {
	if leader {
		return v.leaderEntry(ctx, key)
	}
	m, err := h.stream.GetLastMsgForSubject(ctx, "$KV."+v.s.bucket+"."+key)
	var data []byte
	var seq uint64
	var found bool
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return nil, 0, false, err
	default:
		data, found = value(m.Header, m.Data)
		seq = m.Sequence
	}
	if v.s.behind(key, seq) {
		return v.leaderEntry(ctx, key)
	}
	return data, seq, found, nil
}

// value is what a KV message holds: nothing for a delete, purge or expiry
// marker.
func value(hdr nats.Header, data []byte) ([]byte, bool) {
	if hdr.Get("KV-Operation") != "" || hdr.Get("Nats-Marker-Reason") != "" {
		return nil, false
	}
	return data, true
}

// leaderEntry is entry answered by the leader of the bucket's stream: a
// message get through the stream API, which only the leader answers,
// instead of a direct get.
func (v *view) leaderEntry(ctx context.Context, key string) ([]byte, uint64, bool, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{"$KV." + v.s.bucket + "." + key})
	if err != nil {
		return nil, 0, false, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, leaderGetTimeout)
		defer cancel()
	}
	m, err := v.s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+v.s.bucket, req)
	if err != nil {
		return nil, 0, false, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Sequence uint64 `json:"seq"`
			Header   []byte `json:"hdrs"`
			Data     []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, 0, false, fmt.Errorf("kv bucket %s: message get: %w", v.s.bucket, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, 0, false, nil
	case resp.Error != nil:
		return nil, 0, false, resp.Error
	case resp.Message == nil:
		return nil, 0, false, fmt.Errorf("kv bucket %s: message get: empty answer", v.s.bucket)
	}
	var hdr nats.Header
	if len(resp.Message.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, 0, false, fmt.Errorf("kv bucket %s: message get: %w", v.s.bucket, err)
		}
	}
	data, found := value(hdr, resp.Message.Data)
	return data, resp.Message.Sequence, found, nil
}

func (v *view) Get(ctx context.Context, k string) ([]byte, error) {
	key, err := v.key(k)
	if err != nil {
		return nil, err
	}
	var val []byte
	var found bool
	err = v.s.do(ctx, func(h *handle) (err error) {
		val, _, found, err = v.entry(ctx, h, key, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, plugin.ErrKVNotFound
	}
	return val, nil
}

// publish writes m (its subject set here) for key, and remembers the
// write's sequence for this host's reads (see recentWrite).
func (v *view) publish(ctx context.Context, key string, m *nats.Msg, ttl time.Duration, opts ...jetstream.PublishOpt) error {
	js, err := jetstream.New(v.s.nc)
	if err != nil {
		return err
	}
	if ttl > 0 {
		if ttl < time.Second {
			ttl = time.Second // JetStream's TTL granularity
		}
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	m.Subject = "$KV." + v.s.bucket + "." + key
	ack, err := js.PublishMsg(ctx, m, opts...)
	if err == nil {
		v.s.wrote(key, ack.Sequence)
	}
	return err
}

func (v *view) Set(ctx context.Context, k string, value []byte, ttl time.Duration) error {
	key, err := v.key(k)
	if err != nil {
		return err
	}
	return v.s.do(ctx, func(*handle) error { return v.publish(ctx, key, &nats.Msg{Data: value}, ttl) })
}

func (v *view) Delete(ctx context.Context, k string) error {
	key, err := v.key(k)
	if err != nil {
		return err
	}
	// A delete marker, as jetstream.KeyValue.Delete writes it, but through
	// publish, which remembers its sequence.
	return v.s.do(ctx, func(*handle) error {
		return v.publish(ctx, key, &nats.Msg{Header: nats.Header{"KV-Operation": []string{"DEL"}}}, 0)
	})
}

// cas publishes value if the key's revision is still rev (0: no message at
// all for the key).
func (v *view) cas(ctx context.Context, key string, rev uint64, value []byte, ttl time.Duration) error {
	err := v.publish(ctx, key, &nats.Msg{Data: value}, ttl, jetstream.WithExpectLastSequencePerSubject(rev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return plugin.ErrKVConflict
	}
	return err
}

func (v *view) CAS(ctx context.Context, k string, expected, value []byte, ttl time.Duration) error {
	key, err := v.key(k)
	if err != nil {
		return err
	}
	return v.s.do(ctx, func(h *handle) error {
		try := func(leader bool) error {
			cur, rev, found, err := v.entry(ctx, h, key, leader)
			if err != nil {
				return err
			}
			if (expected == nil && found) || (expected != nil && (!found || !bytes.Equal(cur, expected))) {
				return plugin.ErrKVConflict
			}
			return v.cas(ctx, key, rev, value, ttl)
		}
		// A conflict seen through a replica behind the leader is checked
		// with the leader before it is reported.
		err := try(false)
		if errors.Is(err, plugin.ErrKVConflict) {
			err = try(true)
		}
		return err
	})
}

func (v *view) Incr(ctx context.Context, k string, delta int64, ttl time.Duration) (int64, error) {
	key, err := v.key(k)
	if err != nil {
		return 0, err
	}
	var n int64
	err = v.s.do(ctx, func(h *handle) error {
		leader := false
		for attempt := 0; attempt < maxAttempts; attempt++ {
			cur, rev, found, err := v.entry(ctx, h, key, leader)
			if err != nil {
				return err
			}
			n = 0
			if found {
				if n, err = strconv.ParseInt(string(cur), 10, 64); err != nil {
					return plugin.ErrKVNotInteger
				}
			}
			n += delta
			err = v.cas(ctx, key, rev, strconv.AppendInt(nil, n, 10), ttl)
			if err == nil {
				return nil
			}
			if !errors.Is(err, plugin.ErrKVConflict) {
				return err
			}
			leader = true // the read may have come from a replica behind the leader
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return context.DeadlineExceeded
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
