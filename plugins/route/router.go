package main

import (
	"errors"
	"fmt"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// MirroredFromHeader names the header of a mirrored copy that holds the
// subject the original was sent to.
const MirroredFromHeader = "X-Mirrored-From"

// Router picks where a message goes from one of its headers, and names the
// subject copies are mirrored to.
type Router struct {
	// Header is the header whose value selects a route.
	Header string
	// Routes maps a header value to a subject.
	Routes map[string]string
	// Default, if set, is where a message goes when no route matches.
	Default string
	// Mirror, if set, is the subject that gets a copy of every message.
	Mirror string
}

// ParseRouter reads the config through get (trellis.Config in the plugin).
func ParseRouter(get policyconf.Getter) (Router, error) {
	rt := Router{Header: get.Or("header", ""), Routes: map[string]string{}}
	pairs, err := policyconf.Pairs(get.Or("routes", ""))
	if err != nil {
		return Router{}, fmt.Errorf("routes: %w", err)
	}
	for _, p := range pairs {
		if err := abi.ValidSubject(p.Value, false); err != nil {
			return Router{}, fmt.Errorf("routes: %s=%s: %w", p.Name, p.Value, err)
		}
		rt.Routes[p.Name] = p.Value
	}
	for _, s := range []struct {
		key string
		dst *string
	}{{"default", &rt.Default}, {"mirror", &rt.Mirror}} {
		v := get.Or(s.key, "")
		if v == "" {
			continue
		}
		if err := abi.ValidSubject(v, false); err != nil {
			return Router{}, fmt.Errorf("%s %q: %w", s.key, v, err)
		}
		*s.dst = v
	}
	switch {
	case len(rt.Routes) > 0 && rt.Header == "":
		return Router{}, errors.New("routes need a header to select them by")
	case rt.Header != "" && !policyconf.ValidHeaderName(rt.Header):
		return Router{}, fmt.Errorf("header %q is not a header name", rt.Header)
	case len(rt.Routes) == 0 && rt.Default == "" && rt.Mirror == "":
		return Router{}, errors.New("nothing to do: set routes, default or mirror")
	}
	return rt, nil
}

// Target returns the subject a message with headers h should go to, and
// false when it should go on to its own handler unchanged.
func (rt Router) Target(h trellis.Header) (string, bool) {
	if rt.Header != "" {
		if v, ok := policyconf.HeaderValue(h, rt.Header); ok {
			if subject, ok := rt.Routes[v]; ok {
				return subject, true
			}
		}
	}
	return rt.Default, rt.Default != ""
}

// MirrorHeader returns the headers of the mirrored copy of a message sent
// to subject with headers h: the same, plus X-Mirrored-From (replacing any
// the sender set). h is not changed.
func MirrorHeader(h trellis.Header, subject string) trellis.Header {
	out := make(trellis.Header, len(h)+1)
	for k, vs := range h {
		out[k] = vs
	}
	out.Set(MirroredFromHeader, subject)
	return out
}
