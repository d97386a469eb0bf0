package abi

import (
	"errors"
	"strings"
	"testing"
)

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

func TestValidSubjectLimits(t *testing.T) {
	long := strings.Repeat("a", MaxSubjectLen+1)
	if err := ValidSubject(long, false); !errors.Is(err, ErrSubjectTooLong) {
		t.Errorf("subject of %d bytes: %v", len(long), err)
	}
	if err := ValidSubject(long[:MaxSubjectLen], false); err != nil {
		t.Errorf("subject of %d bytes refused: %v", MaxSubjectLen, err)
	}
	many := strings.Repeat("a.", MaxSubjectTokens) + "a"
	if err := ValidSubject(many, false); !errors.Is(err, ErrSubjectTooLong) {
		t.Errorf("%d tokens: %v", MaxSubjectTokens+1, err)
	}
	if err := ValidSubject(strings.Repeat("a.", MaxSubjectTokens-1)+"a", false); err != nil {
		t.Errorf("%d tokens refused: %v", MaxSubjectTokens, err)
	}
	for _, s := range []string{"a\x00b", "a\x7fb", "a\fb", "a\vb", "a.\x01"} {
		if ValidSubject(s, true) == nil {
			t.Errorf("ValidSubject(%q) accepted a control character", s)
		}
	}
}

func TestSubjectCovers(t *testing.T) {
	cases := []struct {
		grant, pat string
		want       bool
	}{
		{">", ">", true},
		{">", "a.*", true},
		{"a.>", "a.b", true},
		{"a.>", "a.*", true},
		{"a.>", "a.>", true},
		{"a.>", "a", false},
		{"a.>", ">", false},
		{"a.*", "a.b", true},
		{"a.*", "a.*", true},
		{"a.*", "a.>", false},
		{"a.*", "a.b.c", false},
		{"a.b", "a.*", false},
		{"a.b", "a.b", true},
		{"*", ">", false},
		{"*.b", "a.b", true},
	}
	for _, c := range cases {
		if got := SubjectCovers(c.grant, c.pat); got != c.want {
			t.Errorf("SubjectCovers(%q, %q) = %v, want %v", c.grant, c.pat, got, c.want)
		}
	}
}

func TestSystemSubject(t *testing.T) {
	for _, s := range []string{"$KV.orders.x", "$JS.API.INFO", "$SYS.>", "_INBOX.abc", "$O.x", "$SRV.PING"} {
		if !SystemSubject(s) {
			t.Errorf("SystemSubject(%q) = false", s)
		}
	}
	for _, s := range []string{"orders", "a.$KV", ">", "*.x", "INBOX.x", "_INBOXES"} {
		if SystemSubject(s) {
			t.Errorf("SystemSubject(%q) = true", s)
		}
	}
}

func TestValidQueue(t *testing.T) {
	if ValidQueue("workers") != nil {
		t.Error("plain queue refused")
	}
	for _, q := range []string{"", "a b", "a\nb", strings.Repeat("q", MaxQueueLen+1)} {
		if ValidQueue(q) == nil {
			t.Errorf("ValidQueue(%.20q) accepted", q)
		}
	}
}

// FuzzValidSubject checks that whatever ValidSubject accepts is a subject the
// server takes in a protocol line: bounded, no whitespace or control bytes,
// no empty token, and wildcards only as whole tokens.
func FuzzValidSubject(f *testing.F) {
	for _, s := range []string{"a", "a.b", "a.*", "a.>", "a..b", ">.a", "a\x00", strings.Repeat("x.", 70)} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, wildcards bool) {
		if ValidSubject(s, wildcards) != nil {
			return
		}
		if len(s) == 0 || len(s) > MaxSubjectLen {
			t.Fatalf("accepted length %d", len(s))
		}
		toks := strings.Split(s, ".")
		if len(toks) > MaxSubjectTokens {
			t.Fatalf("accepted %d tokens", len(toks))
		}
		for i, tok := range toks {
			if tok == "" {
				t.Fatalf("accepted empty token in %q", s)
			}
			if strings.ContainsAny(tok, "*>") && (!wildcards || len(tok) > 1 || (tok == ">" && i != len(toks)-1)) {
				t.Fatalf("accepted bad wildcard in %q", s)
			}
			for _, c := range []byte(tok) {
				if c <= ' ' || c == 0x7f {
					t.Fatalf("accepted control byte in %q", s)
				}
			}
		}
		if !wildcards && !SubjectMatches(s, s) {
			t.Fatalf("literal %q does not match itself", s)
		}
	})
}

// FuzzSubjectCovers checks the property subscription grants rest on: if a
// grant covers a pattern, every subject the pattern matches, the grant
// matches too.
func FuzzSubjectCovers(f *testing.F) {
	f.Add(">", "a.*", "a.b")
	f.Add("a.*", "a.b", "a.b")
	f.Add("a.>", "a.*.c", "a.b.c")
	f.Add("*.b", "*.b", "x.b")
	f.Fuzz(func(t *testing.T, grant, pattern, subject string) {
		if ValidSubject(grant, true) != nil || ValidSubject(pattern, true) != nil || ValidSubject(subject, false) != nil {
			return
		}
		if SubjectCovers(grant, pattern) && SubjectMatches(pattern, subject) && !SubjectMatches(grant, subject) {
			t.Fatalf("%q covers %q, which matches %q, but %q does not", grant, pattern, subject, grant)
		}
		if !SubjectCovers(pattern, pattern) {
			t.Fatalf("%q does not cover itself", pattern)
		}
	})
}
