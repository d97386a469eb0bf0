package host

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// Every handler appears as a NATS service (the protocol of nats.go/micro),
// so that `nats micro ls`, `info`, `stats` and `ping` list the plugins of
// every host on a bus: the service's name is the plugin's, its version
// "0.0.0+" and the content hash (micro requires a semantic version; the
// hash goes in the build metadata, which semver ignores in comparisons,
// and in the metadata key trellis.version), and its endpoints are the
// plugin's subjects.
//
// The host answers the $SRV verbs itself, with micro's types, rather than
// through micro.AddService: an endpoint that micro adds subscribes its own
// handler to the endpoint's subject, which would take messages from the
// plugin's subscription (in the same queue group) or get a copy of each
// (in another), and micro's INFO and STATS report only the endpoints it
// serves. Answering them here keeps one subscription per subject, the
// binding's, and makes STATS the figures of the host's metrics:
// num_requests counts trellis_messages_total for the subject,
// num_errors those answered with an error (4xx, 5xx or a fault), and
// processing_time the sum of trellis_message_duration_seconds. Without
// metrics (Options.DisableMetrics) they are zero.
//
// One subscription, to $SRV.>, serves every plugin; a PING, INFO or STATS
// to all services gets one answer per plugin, as from as many services.

// services answers the $SRV verbs for the host's handlers.
type services struct {
	sub *nats.Subscription
	mu  sync.Mutex
	ids map[string]serviceID // by plugin name, kept for the host's life
}

type serviceID struct {
	id      string
	started time.Time
}

var (
	serviceNameRE  = regexp.MustCompile(`^[A-Za-z0-9\-_]+$`)
	endpointNameRE = regexp.MustCompile(`[^A-Za-z0-9\-_]`)
)

// startServices subscribes to $SRV.> on the host's connection. A bus that
// refuses it (a user without the permission) costs the discovery only.
func (h *Host) startServices() {
	sub, err := h.bus.Conn().Subscribe(micro.APIPrefix+".>", h.serveService)
	if err != nil {
		h.log.Warn("plugins will not show as NATS services", "error", err)
		return
	}
	h.svc.sub = sub
}

// serviceID returns the service instance ID of plugin name.
func (h *Host) serviceID(name string) serviceID {
	h.svc.mu.Lock()
	defer h.svc.mu.Unlock()
	if h.svc.ids == nil {
		h.svc.ids = map[string]serviceID{}
	}
	id, ok := h.svc.ids[name]
	if !ok {
		id = serviceID{id: nuid.Next(), started: time.Now().UTC()}
		h.svc.ids[name] = id
	}
	return id
}

// ServiceVersion is the semantic version under which a plugin of content
// hash version shows as a NATS service: "0.0.0+" and the hash.
func ServiceVersion(version string) string { return "0.0.0+" + version }

// EndpointName is the NATS service endpoint name of a subject: its
// characters other than letters, digits, '-' and '_' replaced by '-'.
func EndpointName(subject string) string {
	return endpointNameRE.ReplaceAllString(subject, "-")
}

// serveService answers one $SRV request: $SRV.VERB, $SRV.VERB.NAME or
// $SRV.VERB.NAME.ID.
func (h *Host) serveService(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	parts := strings.Split(m.Subject, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return
	}
	verb := parts[1]
	if verb != "PING" && verb != "INFO" && verb != "STATS" {
		return
	}
	h.mu.Lock()
	bindings := make([]*binding, 0, len(h.bindings))
	for _, b := range h.bindings {
		if !b.policy && serviceNameRE.MatchString(b.name) && (len(parts) < 3 || parts[2] == b.name) {
			bindings = append(bindings, b)
		}
	}
	h.mu.Unlock()
	sort.Slice(bindings, func(i, j int) bool { return bindings[i].name < bindings[j].name })
	for _, b := range bindings {
		s := b.snap.Load()
		if s == nil {
			continue
		}
		sid := h.serviceID(b.name)
		if len(parts) == 4 && parts[3] != sid.id {
			continue
		}
		ident := micro.ServiceIdentity{Name: b.name, ID: sid.id, Version: ServiceVersion(s.version),
			Metadata: map[string]string{"trellis.version": s.version, "trellis.queue": s.queue, "trellis.language": s.plugin.Language()}}
		var resp any
		switch verb {
		case "PING":
			resp = micro.Ping{ServiceIdentity: ident, Type: micro.PingResponseType}
		case "INFO":
			info := micro.Info{ServiceIdentity: ident, Type: micro.InfoResponseType,
				Description: "Trellis plugin " + b.name, Endpoints: []micro.EndpointInfo{}}
			for _, subj := range s.subjects {
				info.Endpoints = append(info.Endpoints, micro.EndpointInfo{Name: EndpointName(subj), Subject: subj,
					QueueGroup: s.queue, Metadata: map[string]string{}})
			}
			resp = info
		case "STATS":
			started := sid.started
			if e, ok := h.LastReload(b.name); ok && e.Kind != EventRefused {
				started = e.Time.UTC() // when the version serving started
			}
			resp = h.serviceStats(b, s, ident, started)
		}
		data, err := json.Marshal(resp)
		if err != nil {
			continue
		}
		if err := m.Respond(data); err != nil {
			h.log.Debug("service answer failed", "plugin", b.name, "verb", verb, "error", err)
		}
	}
}

// serviceStats is a plugin's STATS answer, from its metrics.
func (h *Host) serviceStats(b *binding, s *snapshot, ident micro.ServiceIdentity, started time.Time) micro.Stats {
	st := micro.Stats{ServiceIdentity: ident, Type: micro.StatsResponseType, Started: started,
		Endpoints: []*micro.EndpointStats{}}
	figures := map[string]*micro.EndpointStats{}
	for _, sj := range b.metrics.Stats() {
		figures[sj.Subject] = &micro.EndpointStats{NumRequests: int(sj.Requests), NumErrors: int(sj.Errors),
			ProcessingTime: sj.Time}
	}
	for _, subj := range s.subjects {
		e := &micro.EndpointStats{}
		if f := figures[subj]; f != nil {
			e = f
		}
		e.Name, e.Subject, e.QueueGroup = EndpointName(subj), subj, s.queue
		if e.NumRequests > 0 {
			e.AverageProcessingTime = e.ProcessingTime / time.Duration(e.NumRequests)
		}
		st.Endpoints = append(st.Endpoints, e)
	}
	return st
}
