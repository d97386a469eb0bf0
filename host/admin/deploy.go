package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/host"
)

// The deploy API changes what a host runs, so it is served only when
// Options.Deploy is set, behind the same token or password as the rest:
//
//	GET    /api/deploy/{plugin}                     the plugin's candidates and rollout
//	POST   /api/deploy/{plugin}                     add a candidate (DeployRequest): idle,
//	                                                a shadow, or a canary under a rollout
//	POST   /api/deploy/{plugin}/abort               roll the running rollout back
//	POST   /api/deploy/{plugin}/{version}/promote   make a candidate the stable version
//	DELETE /api/deploy/{plugin}/{version}           remove a candidate
//
// Errors are answered as {"error": "..."} with 400 for a request the host
// refuses (the text names the limit), 404 for an unknown plugin or
// candidate, and 409 when a rollout is in the way.

// MaxDeployBody bounds a DeployRequest, module included (base64 makes it
// a third larger than the module).
const MaxDeployBody = 64 << 20

// deployTimeout bounds a deploy request's work: compiling a large module.
const deployTimeout = 2 * time.Minute

// DeployRequest adds a candidate version: POST /api/deploy/{plugin}.
type DeployRequest struct {
	// Wasm is the module (base64 in JSON).
	Wasm []byte `json:"wasm"`
	// Config, if not null, replaces the stable version's config.
	Config map[string]string `json:"config,omitempty"`
	// Shadow makes it a shadow, with ShadowOptions.
	Shadow        bool               `json:"shadow,omitempty"`
	ShadowOptions host.ShadowOptions `json:"shadow_options"`
	// Rollout, if set, makes it a canary carrying out this plan.
	Rollout *host.Rollout `json:"rollout,omitempty"`
}

// DeployStatus is GET /api/deploy/{plugin}, and what POST answers.
type DeployStatus struct {
	Plugin     string               `json:"plugin"`
	Stable     string               `json:"stable"`
	Version    string               `json:"version,omitempty"` // the candidate a POST added
	Candidates []host.CandidateInfo `json:"candidates"`
	Rollout    *host.RolloutStatus  `json:"rollout,omitempty"`
}

func (s *Server) deployRoutes() {
	s.mux.HandleFunc("GET /api/deploy/{plugin}", s.apiDeployStatus)
	s.mux.HandleFunc("POST /api/deploy/{plugin}", s.apiDeploy)
	s.mux.HandleFunc("POST /api/deploy/{plugin}/abort", s.apiAbort)
	s.mux.HandleFunc("POST /api/deploy/{plugin}/{version}/promote", s.apiPromote)
	s.mux.HandleFunc("DELETE /api/deploy/{plugin}/{version}", s.apiRemove)
	s.recordRoutes() // recording and replay; see record.go
}

func (s *Server) deployStatus(name, version string) (DeployStatus, bool) {
	for _, info := range s.h.Plugins() {
		if info.Name == name && !info.Policy {
			st := DeployStatus{Plugin: name, Stable: info.Version, Version: version, Candidates: info.Candidates, Rollout: info.Rollout}
			if st.Candidates == nil {
				st.Candidates = []host.CandidateInfo{}
			}
			return st, true
		}
	}
	return DeployStatus{}, false
}

func (s *Server) apiDeployStatus(w http.ResponseWriter, r *http.Request) {
	st, ok := s.deployStatus(r.PathValue("plugin"), "")
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("plugin %q is not a loaded handler", r.PathValue("plugin")))
		return
	}
	writeJSON(w, st)
}

func (s *Server) apiDeploy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("plugin")
	var req DeployRequest
	if !decodeModuleRequest(w, r, "deploy", &req, false) {
		return
	}
	if len(req.Wasm) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("deploy request: no module (wasm)"))
		return
	}
	if req.Shadow && req.Rollout != nil {
		writeError(w, http.StatusBadRequest, errors.New("deploy request: a candidate is a shadow or a canary, not both"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), deployTimeout)
	defer cancel()
	mode := host.CandidateIdle
	if req.Shadow {
		mode = host.CandidateShadow
	}
	version, err := s.h.AddCandidate(ctx, name, host.Candidate{Wasm: req.Wasm, Config: req.Config, Mode: mode, Shadow: req.ShadowOptions})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	s.log.Info("candidate deployed", "plugin", name, "version", version, "mode", mode, "remote", r.RemoteAddr)
	if req.Rollout != nil {
		if err := s.h.StartRollout(name, version, *req.Rollout); err != nil {
			// Not left idle behind a refused plan: the request did nothing.
			_ = s.h.RemoveCandidate(ctx, name, version)
			writeError(w, statusOf(err), err)
			return
		}
	}
	st, _ := s.deployStatus(name, version)
	writeJSON(w, st)
}

func (s *Server) apiAbort(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("plugin")
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req)
	if req.Reason == "" {
		req.Reason = "by the operator"
	}
	if err := s.h.AbortRollout(r.Context(), name, req.Reason); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	st, _ := s.deployStatus(name, "")
	writeJSON(w, st)
}

func (s *Server) apiPromote(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("plugin"), r.PathValue("version")
	ctx, cancel := context.WithTimeout(r.Context(), deployTimeout)
	defer cancel()
	if err := s.h.Promote(ctx, name, version); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	st, _ := s.deployStatus(name, "")
	writeJSON(w, st)
}

func (s *Server) apiRemove(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("plugin"), r.PathValue("version")
	if err := s.h.RemoveCandidate(r.Context(), name, version); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	st, _ := s.deployStatus(name, "")
	writeJSON(w, st)
}

// statusOf maps a host's refusal to an HTTP status.
func statusOf(err error) int {
	msg := err.Error()
	switch {
	case errors.Is(err, host.ErrNoCandidate), strings.Contains(msg, "is not loaded"):
		return http.StatusNotFound
	case strings.Contains(msg, "is running"), strings.Contains(msg, "no rollout running"):
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// decodeModuleRequest decodes the JSON body of a request that carries a
// module (a deploy or a replay) into v, bounded by MaxDeployBody, and
// answers the request itself when it cannot: 413 for a body over the
// bound, refused before a byte of it is read when its length is declared,
// and 400 for one that does not decode (with strict, for a field v does
// not have either). It reports whether v was decoded.
func decodeModuleRequest(w http.ResponseWriter, r *http.Request, what string, v any, strict bool) bool {
	if r.ContentLength > MaxDeployBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%s request of %d bytes, over %d (admin.MaxDeployBody)", what, r.ContentLength, MaxDeployBody))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxDeployBody))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%s request over %d bytes (admin.MaxDeployBody)", what, MaxDeployBody))
			return false
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("%s request: %w", what, err))
		return false
	}
	return true
}
