package abi

import "testing"

func TestSubjectMatches(t *testing.T) {
	cases := []struct {
		pat, subj string
		want      bool
	}{
		{"echo", "echo", true},
		{"echo", "echo.x", false},
		{"orders.*", "orders.created", true},
		{"orders.*", "orders.created.eu", false},
		{"orders.>", "orders.created.eu", true},
		{"orders.>", "orders", false},
		{">", "anything.at.all", true},
		{"*.created", "orders.created", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
	}
	for _, c := range cases {
		if got := SubjectMatches(c.pat, c.subj); got != c.want {
			t.Errorf("SubjectMatches(%q, %q) = %v, want %v", c.pat, c.subj, got, c.want)
		}
	}
}

func TestValidSubject(t *testing.T) {
	for _, s := range []string{"echo", "orders.created", "a.b.c"} {
		if err := ValidSubject(s, false); err != nil {
			t.Errorf("ValidSubject(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "a..b", "a b", ".a", "a.", "a*", "a.>.b"} {
		if ValidSubject(s, true) == nil {
			t.Errorf("ValidSubject(%q) accepted", s)
		}
	}
	if ValidSubject("a.*", false) == nil || ValidSubject("a.>", false) == nil {
		t.Error("wildcards accepted where not allowed")
	}
	if ValidSubject("a.*", true) != nil || ValidSubject("a.>", true) != nil {
		t.Error("wildcards refused where allowed")
	}
}
