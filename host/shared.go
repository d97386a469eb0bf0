package host

import (
	"fmt"
	"strings"
)

// checkExclusive refuses spec's subjects when Options.ExclusiveSubjects is
// set and another handler serves an overlapping subject, unless both are
// Shared. Called with h.mu held.
func (h *Host) checkExclusive(spec Spec, subjects []string) error {
	if !h.opts.ExclusiveSubjects {
		return nil
	}
	for name, r := range h.routes {
		if name == spec.Name || r.isPolicy || (spec.Shared && r.shared) {
			continue
		}
		if mine, theirs, ok := OverlappingSubjects(subjects, r.subjects()); ok {
			return fmt.Errorf("plugin %q: subject %q overlaps %q, which plugin %q serves; mark both shared if each should get these messages",
				spec.Name, mine, theirs, name)
		}
	}
	return nil
}

// OverlappingSubjects returns the first subject of a and of b that some
// subject matches both of (NATS wildcards '*' and '>' included), and
// whether there is one.
func OverlappingSubjects(a, b []string) (string, string, bool) {
	for _, x := range a {
		for _, y := range b {
			if subjectsOverlap(x, y) {
				return x, y, true
			}
		}
	}
	return "", "", false
}

// subjectsOverlap reports whether one subject can match both patterns.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			return false
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] != "*" && bt[i] != "*" && at[i] != bt[i]:
			return false
		}
	}
}
