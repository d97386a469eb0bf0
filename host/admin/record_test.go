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

func TestRecordAndReplayAPI(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, "../../examples/greet"))
	_, base := startAdmin(t, h, admin.Options{Deploy: true, Token: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}

	if resp, _ := trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet/record", `{"on":true}`); resp.StatusCode != 401 {
		t.Fatalf("record without the token: %d", resp.StatusCode)
	}
	resp, out := trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet/record", `{"on":true}`, auth...)
	var st host.RecordStatus
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &st) != nil || !st.On || st.Stream != "TRELLIS_RECORD_greet" {
		t.Fatalf("record on: %d %s", resp.StatusCode, out)
	}
	for i := range 5 {
		h.Request("greet", []byte(fmt.Sprint("Ada", i)), 5*time.Second)
	}
	trellistest.WaitFor(t, 10*time.Second, "5 recorded, in the API", func() bool {
		_, out := trellistest.HTTP(t, nil, "GET", base+"/api/deploy/greet/record", "", auth...)
		return json.Unmarshal([]byte(out), &st) == nil && st.Recorded == 5
	})

	v2 := trellistest.WasmBytes(t, "../testdata/greetv2")
	body, _ := json.Marshal(admin.ReplayRequest{Wasm: v2, Since: "1h", Subject: "greet", Diffs: 2})
	resp, out = trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet/replay", string(body), auth...)
	var rep host.ReplayReport
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &rep) != nil || rep.Replayed != 5 || rep.Different != 5 || len(rep.Diffs) != 2 {
		t.Fatalf("replay: %d %s", resp.StatusCode, out)
	}

	cases := []struct {
		name, path, body string
		code             int
		want             string
	}{
		{"unknown plugin", "/api/deploy/nope/replay", `{"version":"x"}`, 404, "is not loaded"},
		{"huge limit", "/api/deploy/greet/replay", `{"limit":1000000000}`, 400, "MaxReplayLimit"},
		{"bad since", "/api/deploy/greet/replay", `{"since":"yesterday"}`, 400, `replay since \"yesterday\"`},
		{"negative since", "/api/deploy/greet/replay", `{"since":"-1h"}`, 400, "replay since -1h0m0s"},
		{"unknown field", "/api/deploy/greet/replay", `{"speed":1}`, 400, "unknown field"},
		{"not JSON", "/api/deploy/greet/replay", `replay`, 400, "replay request"},
		{"too large", "/api/deploy/greet/replay", `{"wasm":"` + strings.Repeat("A", admin.MaxDeployBody) + `"}`, 413, "admin.MaxDeployBody"},
		{"record without on", "/api/deploy/greet/record", `{}`, 400, `want {\"on\": true}`},
		{"record too large", "/api/deploy/greet/record", `{"on":true,"x":"` + strings.Repeat("A", admin.MaxRecordBody) + `"}`, 400, "record request"},
		{"record unknown plugin", "/api/deploy/nope/record", `{"on":true}`, 404, "is not loaded"},
	}
	for _, c := range cases {
		resp, out := trellistest.HTTP(t, nil, "POST", base+c.path, c.body, auth...)
		if resp.StatusCode != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, resp.StatusCode, out, c.code, c.want)
		}
	}
	resp, out = trellistest.HTTP(t, nil, "POST", base+"/api/deploy/greet/record", `{"on":false}`, auth...)
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &st) != nil || st.On {
		t.Fatalf("record off: %d %s", resp.StatusCode, out)
	}
}
