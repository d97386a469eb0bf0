package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/host"
)

// Recording and replay are part of the deploy API, served with it:
//
//	GET  /api/deploy/{plugin}/record   the plugin's recording (host.RecordStatus)
//	POST /api/deploy/{plugin}/record   {"on": true|false}: turn it on or off
//	POST /api/deploy/{plugin}/replay   run recorded messages against a version
//	                                   (ReplayRequest), answer a host.ReplayReport

// MaxRecordBody bounds a record switch's body.
const MaxRecordBody = 4096

// ReplayTimeout bounds a replay served by the API: past it the replay
// stops and answers what it found so far (host.ReplayReport.Stopped).
const ReplayTimeout = 10 * time.Minute

// ReplayRequest is POST /api/deploy/{plugin}/replay. It is bounded like a
// DeployRequest (MaxDeployBody), module included.
type ReplayRequest struct {
	// Version names a candidate; or Wasm is a module (base64 in JSON),
	// with Config, if not null, replacing the stable's config.
	Version string            `json:"version,omitempty"`
	Wasm    []byte            `json:"wasm,omitempty"`
	Config  map[string]string `json:"config,omitempty"`
	// Subject filters the recorded messages (default all); Since is a
	// duration such as "1h" (default all the recording holds).
	Subject string `json:"subject,omitempty"`
	Since   string `json:"since,omitempty"`
	// Rate (messages a second, 0: as fast as possible), Limit,
	// IgnoreFields and Diffs: see host.ReplayOptions.
	Rate         float64  `json:"rate,omitempty"`
	Limit        int      `json:"limit,omitempty"`
	IgnoreFields []string `json:"ignore_fields,omitempty"`
	Diffs        int      `json:"diffs,omitempty"`
}

func (s *Server) recordRoutes() {
	s.mux.HandleFunc("GET /api/deploy/{plugin}/record", s.apiRecording)
	s.mux.HandleFunc("POST /api/deploy/{plugin}/record", s.apiRecord)
	s.mux.HandleFunc("POST /api/deploy/{plugin}/replay", s.apiReplay)
}

func (s *Server) apiRecording(w http.ResponseWriter, r *http.Request) {
	st, err := s.h.Recording(r.Context(), r.PathValue("plugin"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, st)
}

func (s *Server) apiRecord(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("plugin")
	var req struct {
		On *bool `json:"on"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRecordBody)).Decode(&req); err != nil || req.On == nil {
		writeError(w, http.StatusBadRequest, errors.New(`record request: want {"on": true} or {"on": false}`))
		return
	}
	st, err := s.h.SetRecording(r.Context(), name, *req.On)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	s.log.Info("recording switched", "plugin", name, "on", *req.On, "remote", r.RemoteAddr)
	writeJSON(w, st)
}

func (s *Server) apiReplay(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("plugin")
	var req ReplayRequest
	if !decodeModuleRequest(w, r, "replay", &req, true) {
		return
	}
	o := host.ReplayOptions{Plugin: name, Version: req.Version, Wasm: req.Wasm, Config: req.Config, Subject: req.Subject,
		Rate: req.Rate, Limit: req.Limit, IgnoreFields: req.IgnoreFields, Diffs: req.Diffs}
	if req.Since != "" {
		d, err := time.ParseDuration(req.Since)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("replay since %.32q: want a duration such as \"1h\"", req.Since))
			return
		}
		o.Since = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReplayTimeout)
	defer cancel()
	rep, err := s.h.Replay(ctx, o)
	if err != nil {
		code := statusOf(err)
		if strings.Contains(err.Error(), "replays running already") {
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	s.log.Info("replay", "plugin", name, "version", rep.Version, "replayed", rep.Replayed, "different", rep.Different, "remote", r.RemoteAddr)
	writeJSON(w, rep)
}
