package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/host"
)

// readyz answers the readiness probe: 200 "ready" or 503 "not ready",
// then one line per reason (the bus, the first apply, each plugin not
// serving). A plugin refused while another version serves is not listed:
// the host serves the last good version. Reasons for a refusal are shown
// only to a request with the endpoint's credentials (or to every request
// when the endpoint has none, as on loopback).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := s.h.Readiness()
	if !s.authorized(r) {
		for i := range rd.Plugins {
			rd.Plugins[i].Reason = ""
		}
	}
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(rd)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprint(w, readinessText(rd, time.Now()))
}

// readinessText is /readyz's plain-text body.
func readinessText(rd host.Readiness, now time.Time) string {
	var b strings.Builder
	if rd.Ready {
		b.WriteString("ready\n")
	} else {
		b.WriteString("not ready\n")
	}
	if !rd.BusConnected {
		b.WriteString("bus: not connected to NATS\n")
	}
	if rd.Held {
		b.WriteString("host: waiting for its configuration's first apply\n")
	}
	for _, p := range rd.Plugins {
		fmt.Fprintf(&b, "plugin %s: %s for %s", p.Plugin, p.State, now.Sub(p.Since).Round(time.Millisecond))
		if p.Reason != "" {
			fmt.Fprintf(&b, ": %s", p.Reason)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
