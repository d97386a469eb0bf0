package host_test

import (
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func TestOverlappingSubjects(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"orders", "orders", true},
		{"orders.*", "orders.new", true},
		{"orders.>", "orders.new.x", true},
		{"orders.>", "orders", false},
		{"*.new", "orders.*", true},
		{"orders.new", "orders.old", false},
		{"orders.*", "orders.new.x", false},
		{">", "a.b.c", true},
	}
	for _, c := range cases {
		if _, _, got := host.OverlappingSubjects([]string{c.a}, []string{c.b}); got != c.want {
			t.Errorf("%q and %q: overlap %v, want %v", c.a, c.b, got, c.want)
		}
		if _, _, got := host.OverlappingSubjects([]string{c.b}, []string{c.a}); got != c.want {
			t.Errorf("%q and %q: overlap %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

func TestLoadRefusesASubjectServedTwiceUnlessShared(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) { o.ExclusiveSubjects = true })
	echo := trellistest.Wasm(t, echoSrc)
	if err := h.Host.Load(t.Context(), host.Spec{Name: "a", Path: echo, Subjects: []string{"orders.*"}}); err != nil {
		t.Fatal(err)
	}
	err := h.Host.Load(t.Context(), host.Spec{Name: "b", Path: echo, Subjects: []string{"orders.new"}})
	if err == nil || !strings.Contains(err.Error(), `subject "orders.new" overlaps "orders.*", which plugin "a" serves`) {
		t.Fatalf("second plugin on orders.new: %v", err)
	}
	// Reloading a on its own subjects is no conflict.
	if err := h.Host.Load(t.Context(), host.Spec{Name: "a", Path: echo, Subjects: []string{"orders.*"}, Shared: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.Host.Load(t.Context(), host.Spec{Name: "b", Path: echo, Subjects: []string{"orders.new"}, Shared: true}); err != nil {
		t.Fatalf("both shared: %v", err)
	}
}
