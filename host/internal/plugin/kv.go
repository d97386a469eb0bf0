package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/trellis-mesh/trellis/abi"
)

// KV is the key-value store behind the kv_* host functions, scoped to one
// plugin's namespace. The host implements it on NATS JetStream KV.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	Delete(ctx context.Context, key string) error
	// CAS stores value if the current value equals expected (expected nil:
	// if the key does not exist); otherwise it returns ErrKVConflict.
	CAS(ctx context.Context, key string, expected, value []byte, ttl time.Duration) error
}

// Errors a KV returns for the cases the ABI names.
var (
	ErrKVNotFound   = errors.New("key not found")
	ErrKVBadKey     = errors.New("invalid key")
	ErrKVNotInteger = errors.New("value is not an integer")
	ErrKVTooLarge   = errors.New("value too large")
	ErrKVConflict   = errors.New("value changed")
)

// MaxKVValue is the largest value kv_set accepts.
const MaxKVValue = 1 << 20

// ValidKey reports whether key is usable: 1 to abi.MaxKVKeyLen bytes of
// A-Z a-z 0-9 - _ = . / with no empty dot-separated token.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > abi.MaxKVKeyLen || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	prevDot := false
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=', c == '/':
			prevDot = false
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
		default:
			return false
		}
	}
	return true
}

func kvStatus(err error) abi.Status {
	switch {
	case errors.Is(err, ErrKVNotFound):
		return abi.StatusNotFound
	case errors.Is(err, ErrKVBadKey), errors.Is(err, ErrKVNotInteger):
		return abi.StatusInvalidArgument
	case errors.Is(err, ErrKVTooLarge):
		return abi.StatusTooLarge
	case errors.Is(err, ErrKVConflict):
		return abi.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return abi.StatusTimeout
	}
	return abi.StatusBus
}

// kvKey reads and checks the key of a kv_* call, after checking the call's
// deadline: every kv call is a round trip to the bus.
func (p *Plugin) kvKey(ctx context.Context, in *instance, fn string, stack []uint64) (string, bool) {
	checkDeadline(ctx)
	key, fits := in.viewString(fn, u32(stack, 0), u32(stack, 1), abi.MaxKVKeyLen)
	if !fits || !ValidKey(key) {
		fail(stack, abi.StatusInvalidArgument)
		return "", false
	}
	if p.kv == nil {
		fail(stack, abi.StatusBus)
		return "", false
	}
	return key, true
}

func (p *Plugin) kvFailed(stack []uint64, op, key string, err error) {
	st := kvStatus(err)
	if st == abi.StatusBus {
		p.log.Warn("kv failed", "op", op, "key", key, "error", err)
	}
	fail(stack, st)
}

func (p *Plugin) hostKVGet(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	buf, n := u32(stack, 2), u32(stack, 3)
	key, good := p.kvKey(ctx, in, abi.FuncKVGet, stack)
	if !good {
		return
	}
	v, err := p.kv.Get(ctx, key)
	if err != nil {
		p.kvFailed(stack, "get", key, err)
		return
	}
	in.copyOut(abi.FuncKVGet, buf, n, v)
	ok(stack, len(v))
}

func (p *Plugin) hostKVSet(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	value := in.view(abi.FuncKVSet, u32(stack, 2), u32(stack, 3))
	ttl := time.Duration(u32(stack, 4)) * time.Millisecond
	key, good := p.kvKey(ctx, in, abi.FuncKVSet, stack)
	if !good {
		return
	}
	if len(value) > MaxKVValue {
		fail(stack, abi.StatusTooLarge)
		return
	}
	if err := p.kv.Set(ctx, key, value, ttl); err != nil {
		p.kvFailed(stack, "set", key, err)
		return
	}
	ok(stack, 0)
}

func (p *Plugin) hostKVIncr(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	delta := int64(stack[2])
	ttl := time.Duration(u32(stack, 3)) * time.Millisecond
	out := u32(stack, 4)
	// Check the output buffer before doing anything that cannot be undone.
	if _, good := in.mem.Read(out, 8); !good {
		in.faultf(abi.FuncKVIncr, out, 8)
	}
	key, good := p.kvKey(ctx, in, abi.FuncKVIncr, stack)
	if !good {
		return
	}
	v, err := p.kv.Incr(ctx, key, delta, ttl)
	if err != nil {
		p.kvFailed(stack, "incr", key, err)
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	in.mem.Write(out, b[:])
	ok(stack, 0)
}

func (p *Plugin) hostKVDelete(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	key, good := p.kvKey(ctx, in, abi.FuncKVDelete, stack)
	if !good {
		return
	}
	if err := p.kv.Delete(ctx, key); err != nil && !errors.Is(err, ErrKVNotFound) {
		p.kvFailed(stack, "delete", key, err)
		return
	}
	ok(stack, 0)
}

func (p *Plugin) hostKVCAS(ctx context.Context, _ api.Module, stack []uint64) {
	in := instanceOf(ctx)
	expected := in.view(abi.FuncKVCAS, u32(stack, 2), u32(stack, 3))
	value := in.view(abi.FuncKVCAS, u32(stack, 4), u32(stack, 5))
	ttl := time.Duration(u32(stack, 6)) * time.Millisecond
	key, good := p.kvKey(ctx, in, abi.FuncKVCAS, stack)
	if !good {
		return
	}
	if len(value) > MaxKVValue {
		fail(stack, abi.StatusTooLarge)
		return
	}
	var exp []byte
	if u32(stack, 3) > 0 {
		exp = bytes.Clone(expected)
	}
	if err := p.kv.CAS(ctx, key, exp, bytes.Clone(value), ttl); err != nil {
		p.kvFailed(stack, "cas", key, err)
		return
	}
	ok(stack, 0)
}
