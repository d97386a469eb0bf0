package host

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/trellis-mesh/trellis/abi"
)

// validName checks a plugin's name: it is the default queue group, the
// logger's name and the default KV namespace, so it must be a queue name
// and a single subject token.
func validName(name string) error {
	if err := abi.ValidQueue(name); err != nil {
		return fmt.Errorf("plugin name %.64q: %w", name, err)
	}
	if strings.ContainsAny(name, ".*>") {
		return fmt.Errorf("plugin name %q: it may not contain '.', '*' or '>'", name)
	}
	return nil
}

// subscribable checks a subject a handler is to serve: a valid subject or
// pattern, and not one of the bus's own (see abi.SystemSubject).
func subscribable(s string) error {
	if err := abi.ValidSubject(s, true); err != nil {
		return err
	}
	if abi.SystemSubject(s) {
		return errors.New("system subjects are reachable only through the host functions made for them")
	}
	return nil
}

func kvNamespace(spec Spec) string {
	if spec.KVNamespace != "" {
		return spec.KVNamespace
	}
	return spec.Name
}

// checkExclusive refuses a generation in which, with
// Options.ExclusiveSubjects set, a handler new or changed in it serves a
// subject that overlaps another handler's, unless both are Shared.
func (h *Host) checkExclusive(gen *generation) error {
	if !h.opts.ExclusiveSubjects {
		return nil
	}
	type served struct {
		name     string
		subjects []string
		shared   bool
	}
	var fresh, all []served
	for name, b := range gen.bindings {
		if b.policy {
			continue
		}
		s, isNew := gen.snaps[name]
		if !isNew {
			s = b.snap.Load()
		}
		sv := served{name, s.subjects, s.spec.Shared}
		all = append(all, sv)
		if cur := b.snap.Load(); isNew && (cur == nil || cur.plugin != s.plugin) {
			fresh = append(fresh, sv)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].name < fresh[j].name })
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	for _, a := range fresh {
		for _, b := range all {
			if a.name == b.name || (a.shared && b.shared) {
				continue
			}
			if mine, theirs, ok := OverlappingSubjects(a.subjects, b.subjects); ok {
				return fmt.Errorf("plugin %q: subject %q overlaps %q, which plugin %q serves; mark both shared if each should get these messages",
					a.name, mine, theirs, b.name)
			}
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
