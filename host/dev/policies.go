package dev

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/regfile"
)

// PoliciesFile is the file, at the top of a dev directory, that puts
// policies in front of handlers without a config file. Each line names a
// handler, a colon, and the policies that run before it, in order:
//
//	# comments and blank lines are ignored
//	greet: auth, ratelimit     # auth, then ratelimit, then greet
//	*: sizelimit               # in front of every handler, before its own line's
//
// Names are plugin names as dev finds them (a .wasm file's name, a source
// directory's). A module that exports trellis_policy and no trellis_handle
// is loaded as a policy whatever this file says; a module that exports both
// (every Go module does: the Go SDK exports both) is loaded as a policy when
// this file names it as one. A handler named here whose policy is not loaded
// gets its messages refused (503), as in production, until it is. A policy
// that needs settings (auth's tokens) takes them from a config file:
// `trellis dev --config FILE`.
const PoliciesFile = "policies.txt"

// maxPoliciesFile bounds the size of a PoliciesFile read.
const maxPoliciesFile = 1 << 20

var policyName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// policyLines are the parsed PoliciesFile: the policies of every handler
// ("*") and of each named one.
type policyLines struct {
	all    []string
	byName map[string][]string
}

// readPolicies reads dir's PoliciesFile; none is no policies. A line it
// cannot read is an error naming file and line, and no line is used.
func readPolicies(dir string) (policyLines, error) {
	p := policyLines{byName: map[string][]string{}}
	file := filepath.Join(dir, PoliciesFile)
	b, err := regfile.Read(file, maxPoliciesFile, "dev.maxPoliciesFile")
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		handler, list, ok := strings.Cut(line, ":")
		handler = strings.TrimSpace(handler)
		if !ok || (handler != "*" && !policyName.MatchString(handler)) {
			return policyLines{}, fmt.Errorf("%s:%d: want HANDLER: POLICY, POLICY... (or * for every handler)", file, n)
		}
		var names []string
		for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !policyName.MatchString(f) {
				return policyLines{}, fmt.Errorf("%s:%d: %q is not a plugin name", file, n, f)
			}
			names = append(names, f)
		}
		if handler == "*" {
			p.all = append(p.all, names...)
		} else {
			p.byName[handler] = append(p.byName[handler], names...)
		}
	}
	return p, sc.Err()
}

// refs returns the policies to run before handler name, in order: those of
// every handler, then its own; a policy is never put in front of itself.
func (p policyLines) refs(name string) []host.PolicyRef {
	var out []host.PolicyRef
	for _, n := range append(append([]string(nil), p.all...), p.byName[name]...) {
		if n != name {
			out = append(out, host.PolicyRef{Name: n})
		}
	}
	return out
}

// names returns every policy the file names.
func (p policyLines) names() []string {
	out := append([]string(nil), p.all...)
	for _, l := range p.byName {
		out = append(out, l...)
	}
	return out
}
