package refusal

import (
	"testing"
	"time"
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
