package host

import "testing"

func TestSubjectMatchesAndWithin(t *testing.T) {
	for _, c := range []struct {
		subj, pattern string
		want          bool
	}{
		{"orders.created", "orders.created", true},
		{"orders.created", "orders.*", true},
		{"orders.created", "orders.>", true},
		{"orders.created", ">", true},
		{"orders", "orders.>", false},
		{"orders.created.eu", "orders.*", false},
		{"orders.created.eu", "orders.*.eu", true},
		{"orders.created", "orders", false},
		{"payments.created", "orders.*", false},
		{"orders.created", "*.created", true},
	} {
		if got := subjectMatches(c.subj, c.pattern); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", c.subj, c.pattern, got, c.want)
		}
	}
	for _, c := range []struct {
		s, pattern string
		want       bool
	}{
		{"orders.created", "orders.>", true},
		{"orders.*", "orders.>", true},
		{"orders.>", "orders.>", true},
		{"orders.*.paid", "orders.>", true},
		{"orders.*", "orders.*", true},
		{"orders.>", "orders.*", false},
		{">", "orders.>", false},
		{"orders", "orders.>", false},
		{"*", "orders", false},
		{"orders.created", "orders.created", true},
		{"orders.created.x", "orders.created", false},
		{"payments.>", "orders.>", false},
	} {
		if got := SubjectWithin(c.s, c.pattern); got != c.want {
			t.Errorf("SubjectWithin(%q, %q) = %v, want %v", c.s, c.pattern, got, c.want)
		}
	}
}
