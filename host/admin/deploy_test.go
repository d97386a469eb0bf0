package admin_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

func deployBody(t *testing.T, req admin.DeployRequest) string {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeployAPIIsOffUnlessAsked(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, "../../examples/greet"))
	_, base := startAdmin(t, h, admin.Options{})
	body := deployBody(t, admin.DeployRequest{Wasm: trellistest.WasmBytes(t, "../testdata/greetv2"), Shadow: true})
	if resp, out := trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet", body); resp.StatusCode == 200 {
		t.Fatalf("deploy API served without Options.Deploy: %s", out)
	}
	if len(h.Candidates("greet")) != 0 {
		t.Fatal("a candidate was added")
	}
}

func TestDeployAPIShadowsRollsOutAndRefuses(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, "../../examples/greet"))
	_, base := startAdmin(t, h, admin.Options{Deploy: true, Token: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}
	v2 := trellistest.WasmBytes(t, "../testdata/greetv2")

	if resp, _ := trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet", deployBody(t, admin.DeployRequest{Wasm: v2})); resp.StatusCode != 401 {
		t.Fatalf("deploy without the token: %d", resp.StatusCode)
	}
	cases := []struct {
		name, path, body string
		code             int
		want             string
	}{
		{"unknown plugin", "/api/deploy/nope", deployBody(t, admin.DeployRequest{Wasm: v2}), 404, `plugin \"nope\" is not loaded`},
		{"no module", "/api/deploy/greet", `{}`, 400, "no module"},
		{"not JSON", "/api/deploy/greet", `wasm`, 400, "deploy request"},
		{"shadow and canary", "/api/deploy/greet", deployBody(t, admin.DeployRequest{Wasm: v2, Shadow: true, Rollout: &host.Rollout{}}), 400, "not both"},
		{"bad plan", "/api/deploy/greet", deployBody(t, admin.DeployRequest{Wasm: v2, Rollout: &host.Rollout{Steps: []float64{0.5, 1.5}}}), 400, "at most 1 (100%)"},
		{"sample rate", "/api/deploy/greet", deployBody(t, admin.DeployRequest{Wasm: v2, Shadow: true, ShadowOptions: host.ShadowOptions{SampleRate: 2}}), 400, "sample rate 2"},
		{"too large", "/api/deploy/greet", `{"wasm":"` + strings.Repeat("A", admin.MaxDeployBody) + `"}`, 413, "admin.MaxDeployBody"},
	}
	for _, c := range cases {
		resp, out := trellistest.HTTP(t, nil, "POST", base+c.path, c.body, auth...)
		if resp.StatusCode != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, resp.StatusCode, out, c.code, c.want)
		}
	}
	if got := h.Candidates("greet"); len(got) != 0 {
		t.Fatalf("a refused request left candidates: %+v", got)
	}

	resp, out := trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet", deployBody(t, admin.DeployRequest{Wasm: v2, Shadow: true}), auth...)
	if resp.StatusCode != 200 {
		t.Fatalf("deploy a shadow: %d %s", resp.StatusCode, out)
	}
	var st admin.DeployStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Version == "" || len(st.Candidates) != 1 || st.Candidates[0].Mode != host.CandidateShadow {
		t.Fatalf("deploy answer %s: %v", out, err)
	}
	h.Request("greet", []byte("Ada"), 5*time.Second)
	trellistest.WaitFor(t, 10*time.Second, "the shadow's comparison in the API", func() bool {
		_, out := trellistest.HTTP(t, nil, "GET", base+"/api/deploy/greet", "", auth...)
		var now admin.DeployStatus
		return json.Unmarshal([]byte(out), &now) == nil && len(now.Candidates) == 1 && now.Candidates[0].Shadow != nil &&
			now.Candidates[0].Shadow.Differed == 1 && now.Candidates[0].Shadow.Diffs[0].Candidate == "Hello, Ada."
	})
	// /api/plugins carries the candidates too, for ls and the dashboard.
	_, out = trellistest.HTTP(t, nil, "GET", base+"/api/plugins", "", auth...)
	if !strings.Contains(out, `"candidates"`) || !strings.Contains(out, st.Version) {
		t.Fatalf("/api/plugins without the candidate: %s", out)
	}
	if resp, out := trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet/abort", `{}`, auth...); resp.StatusCode != 409 {
		t.Errorf("abort with no rollout: %d %s", resp.StatusCode, out)
	}
	if resp, out := trellistest.HTTP(t, nil, "POST", base+fmt.Sprintf("/api/deploy/greet/%s/promote", st.Version), ``, auth...); resp.StatusCode != 200 {
		t.Fatalf("promote: %d %s", resp.StatusCode, out)
	}
	if m := h.Request("greet", []byte("Ada"), 5*time.Second); string(m.Data) != "Hello, Ada." {
		t.Fatalf("after promotion the stable answers %q", m.Data)
	}
	if resp, out := trellistest.HTTP(t, nil, "DELETE", base+"/api/deploy/greet/"+st.Version, ``, auth...); resp.StatusCode != 404 {
		t.Errorf("remove a candidate promoted: %d %s", resp.StatusCode, out)
	}
}
