package abi

import (
	"errors"
	"fmt"
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

// SubjectCovers reports whether every subject that pattern matches is also
// matched by grant: "orders.>" covers "orders.*" and "orders.created", "*"
// covers "a" but not "a.b", and only a ">" covers a ">". Both are
// valid subjects with wildcards allowed.
func SubjectCovers(grant, pattern string) bool {
	for {
		gt, grest, gmore := strings.Cut(grant, ".")
		pt, prest, pmore := strings.Cut(pattern, ".")
		switch gt {
		case ">":
			return pt != ""
		case "*":
			if pt == "" || pt == ">" {
				return false
			}
		default:
			if gt != pt {
				return false
			}
		}
		if !gmore || !pmore {
			return gmore == pmore
		}
		grant, pattern = grest, prest
	}
}

// Errors of ValidSubject that callers may branch on.
var (
	// ErrSubjectTooLong is a subject over MaxSubjectLen bytes or
	// MaxSubjectTokens tokens.
	ErrSubjectTooLong = errors.New("subject too long")
)

// ValidSubject checks a NATS subject: at most MaxSubjectLen bytes in at most
// MaxSubjectTokens non-empty tokens separated by dots, no whitespace or
// other control characters, and wildcards ("*" as a token, ">" as the last
// token) only when wildcards is true. The length limits keep every protocol
// line the host sends inside the server's control line.
func ValidSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if len(s) > MaxSubjectLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrSubjectTooLong, len(s), MaxSubjectLen)
	}
	tokens, start := 1, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			c := s[i]
			if c <= ' ' || c == 0x7f {
				return errors.New("subject contains whitespace or a control character")
			}
			if c != '.' {
				continue
			}
			tokens++
			if tokens > MaxSubjectTokens {
				return fmt.Errorf("%w: more than %d tokens", ErrSubjectTooLong, MaxSubjectTokens)
			}
		}
		t := s[start:i]
		start = i + 1
		switch {
		case t == "":
			return errors.New("subject has an empty token")
		case t == ">" && i != len(s):
			return errors.New("> must be the last token")
		case t == "*" || t == ">":
			if !wildcards {
				return errors.New("wildcards are not allowed here")
			}
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return errors.New("bad wildcard in token " + t)
		}
	}
	return nil
}

// SystemSubject reports whether a subject or pattern belongs to the bus
// itself rather than to applications: its first token starts with "$"
// ($SYS, $JS, $KV, $O, $SRV...) or is "_INBOX", where request replies
// travel. Plugins reach these only through the host functions made for
// them (kv_*, request), never by publish, request or subscribe. A pattern
// whose first token is a wildcard is not itself a system subject, but it
// matches some; the host filters what such a subscription delivers.
func SystemSubject(s string) bool {
	first, _, _ := strings.Cut(s, ".")
	return strings.HasPrefix(first, "$") || first == "_INBOX"
}

// ValidQueue checks a queue group name: 1 to MaxQueueLen bytes with no
// whitespace or control characters.
func ValidQueue(q string) error {
	if q == "" {
		return errors.New("empty queue name")
	}
	if len(q) > MaxQueueLen {
		return fmt.Errorf("queue name: %d bytes, more than %d", len(q), MaxQueueLen)
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c == 0x7f {
			return errors.New("queue name contains whitespace or a control character")
		}
	}
	return nil
}
