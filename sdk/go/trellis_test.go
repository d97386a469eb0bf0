package trellis

import (
	"testing"
	"time"
)

func TestHeaderGetPrefersExactThenAnyCase(t *testing.T) {
	h := Header{"X-Id": {"exact"}, "x-id": {"lower"}, "Content-Type": {"text/plain"}}
	if got := h.Get("x-id"); got != "lower" {
		t.Fatalf("exact match lost: %q", got)
	}
	if got := h.Get("CONTENT-TYPE"); got != "text/plain" {
		t.Fatalf("case-insensitive match: %q", got)
	}
	var none Header
	if none.Get("x") != "" {
		t.Fatal("nil header")
	}
}

func TestLookupPicksFirstMatchingPattern(t *testing.T) {
	defer func(saved []route) { routes = saved }(routes)
	routes = nil
	hit := ""
	Handle("orders.*", func(*Msg) ([]byte, error) { hit = "orders.*"; return nil, nil })
	Handle("orders.>", func(*Msg) ([]byte, error) { hit = "orders.>"; return nil, nil })
	Handle("other", func(*Msg) ([]byte, error) { hit = "other"; return nil, nil })
	for subject, want := range map[string]string{"orders.created": "orders.*", "orders.eu.created": "orders.>", "other": "other", "unknown": "other"} {
		lookup(subject)(nil)
		if hit != want {
			t.Errorf("%s went to %s, want %s", subject, hit, want)
		}
	}
}

func TestMillisecondsForTheABI(t *testing.T) {
	for d, want := range map[time.Duration]uint32{0: 0, -time.Second: 0, time.Microsecond: 1, 1500 * time.Millisecond: 1500, 1000 * time.Hour: 1<<31 - 1} {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestStatusErrorsCompareWithSentinels(t *testing.T) {
	if statusErr(-4) != ErrDenied || statusErr(-12) != ErrConflict || statusErr(3) != nil {
		t.Fatal("statusErr mapping")
	}
	if e := Errorf(422, "bad %s", "input"); e.Error() != "422 bad input" {
		t.Fatalf("Errorf: %v", e)
	}
}
