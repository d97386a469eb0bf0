package abi

import (
	"errors"
	"strings"
)

// SubjectMatches reports whether a literal subject matches a NATS subject
// pattern: "*" matches exactly one token, a final ">" one or more.
func SubjectMatches(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch pt {
		case ">":
			return st != ""
		case "*":
			if st == "" {
				return false
			}
		default:
			if pt != st {
				return false
			}
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// ValidSubject checks a NATS subject: non-empty tokens separated by dots, no
// whitespace, and wildcards ("*" as a token, ">" as the last token) only
// when wildcards is true.
func ValidSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("subject contains whitespace")
	}
	n := strings.Count(s, ".")
	for i := 0; i <= n; i++ {
		t, rest, _ := strings.Cut(s, ".")
		s = rest
		switch {
		case t == "":
			return errors.New("subject has an empty token")
		case t == "*" || (t == ">" && i == n):
			if !wildcards {
				return errors.New("wildcards are not allowed here")
			}
		case strings.ContainsAny(t, "*>"):
			return errors.New("bad wildcard in token " + t)
		}
	}
	return nil
}
