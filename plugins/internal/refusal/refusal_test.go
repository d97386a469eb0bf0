package refusal

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/abi"
)

func TestCountFlushesAtMostOncePerInterval(t *testing.T) {
	Reset()
	now := time.Unix(1_800_000_000, 0)
	if n := Count("expired", now); n != 1 {
		t.Fatalf("first refusal: flush %d, want 1", n)
	}
	for range 5 {
		if n := Count("expired", now.Add(flushEvery/2)); n != 0 {
			t.Fatalf("within the interval: flush %d", n)
		}
	}
	if n := Count("signature", now.Add(flushEvery/2)); n != 1 {
		t.Fatalf("another reason: flush %d, want 1", n)
	}
	if n := Count("expired", now.Add(flushEvery)); n != 6 {
		t.Fatalf("after the interval: flush %d, want 6", n)
	}
}

func TestKeyIsAlwaysAValidKVKey(t *testing.T) {
	for why, want := range map[string]string{
		"expired":                          "refused.expired",
		"claim:scope":                      "refused.claim.scope",
		"claim:realm_access.roles":         "refused.claim.realm_access.roles",
		"claim:resource_access[a.b].roles": "refused.claim.resource_access_a.b_.roles",
		"claim:a..b":                       "refused.claim.a.b",
		"claim:":                           "refused.claim._",
		"x y\r\n":                          "refused.x_y__",
		strings.Repeat("a", 1000):          "refused." + strings.Repeat("a", abi.MaxKVKeyLen-1-len("refused.")),
		"":                                 "refused._",
	} {
		got := Key(why)
		if got != want {
			t.Errorf("Key(%.40q) = %q, want %q", why, got, want)
		}
		if !validKVKey(got) {
			t.Errorf("Key(%.40q) = %q is not a valid key", why, got)
		}
	}
}

func TestReasonIsAlwaysValid(t *testing.T) {
	for _, why := range []string{"expired", "claim:resource_access[a.b].roles", "", "a b", "x\"\\\x00é", strings.Repeat("z", 500)} {
		r := Reason(why)
		if !abi.ValidRefusal(r) {
			t.Errorf("Reason(%.40q) = %q, which the host would count as invalid", why, r)
		}
		if abi.ValidRefusal(why) && r != why {
			t.Errorf("Reason(%q) = %q changed a valid reason", why, r)
		}
	}
}

func FuzzKey(f *testing.F) {
	f.Add("claim:a.b")
	f.Add("..::..")
	f.Fuzz(func(t *testing.T, why string) {
		if k := Key(why); !validKVKey(k) {
			t.Fatalf("Key(%q) = %q is not a valid key", why, k)
		}
		if r := Reason(why); !abi.ValidRefusal(r) {
			t.Fatalf("Reason(%q) = %q is not valid", why, r)
		}
	})
}

// validKVKey is the host's rule for a key (host/internal/plugin.ValidKey,
// which a plugin's package cannot import): 1 to abi.MaxKVKeyLen bytes of
// A-Z a-z 0-9 - _ = . / with no empty dot-separated token.
func validKVKey(key string) bool {
	if key == "" || len(key) > abi.MaxKVKeyLen {
		return false
	}
	for _, tok := range strings.Split(key, ".") {
		if tok == "" || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/") != "" {
			return false
		}
	}
	return true
}
