package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

func TestRecordThenReplayFromTheCLI(t *testing.T) {
	h, base := deployHost(t)
	code, out, errOut := runCLI("record", "greet", "--on", "--admin", base)
	if code != 0 || !strings.Contains(out, "greet: recording on, subjects greet, stream TRELLIS_RECORD_greet") {
		t.Fatalf("record --on: %d %s %s", code, out, errOut)
	}
	if code, out, _ = runCLI("ls", "--admin", base); code != 0 || !strings.Contains(out, "handler (recording)") {
		t.Fatalf("trellis ls does not show the recording: %d\n%s", code, out)
	}
	for i := range 6 {
		h.Request("greet", []byte(fmt.Sprint("Ada", i)), 5*time.Second)
	}
	trellistest.WaitFor(t, 10*time.Second, "6 recorded, as trellis record says", func() bool {
		code, out, _ = runCLI("record", "greet", "--admin", base)
		return code == 0 && strings.Contains(out, "6 recorded") && strings.Contains(out, "holds 6 messages")
	})

	same := trellistest.Wasm(t, "../../host/testdata/greetsame")
	code, out, errOut = runCLI("replay", "greet", "--since", "1h", "--to", "greet", "--module", same, "--admin", base)
	if code != 0 || !strings.Contains(out, "replayed 6 messages of greet") || !strings.Contains(out, "6 same, 0 different") {
		t.Fatalf("replay against the same answers: exit %d\n%s%s", code, out, errOut)
	}
	v2 := trellistest.Wasm(t, "../../host/testdata/greetv2")
	code, out, errOut = runCLI("replay", ">", "--to", "greet", "--module", v2, "--diffs", "2", "--rate", "1000", "--admin", base)
	if code != 1 || !strings.Contains(out, "0 same, 6 different") || strings.Count(out, "- recorded") != 2 ||
		!strings.Contains(out, `- recorded  "Hello, Ada5!"`) || !strings.Contains(out, `+ replayed  "Hello, Ada5."`) {
		t.Fatalf("replay against v2: exit %d, want 1\n%s%s", code, out, errOut)
	}
	t.Logf("trellis replay against v2:\n%s", out)
	// Against a candidate, by version.
	code, out, errOut = runCLI("deploy", "greet", v2, "--admin", base)
	if code != 0 {
		t.Fatalf("deploy: %d %s %s", code, out, errOut)
	}
	version := h.Candidates("greet")[0].Version
	code, out, _ = runCLI("replay", "greet", "--to", "greet@"+version, "--limit", "3", "--admin", base)
	if code != 1 || !strings.Contains(out, "replayed 3 messages of greet against "+version) {
		t.Fatalf("replay against greet@%s: exit %d\n%s", version, code, out)
	}

	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay", "greet"}, 2, "Usage: trellis replay"},
		{[]string{"replay", "greet", "--to", "greet@" + version, "--module", v2}, 2, "not both"},
		{[]string{"replay", "greet", "--to", "greet", "--since", "yesterday"}, 2, "invalid value"},
		{[]string{"replay", "greet", "--to", "greet", "--module", v2, "--limit", "1000000000"}, 1, "MaxReplayLimit"},
		{[]string{"replay", "greet", "--to", "greet", "--module", v2, "--since", "-1h"}, 1, "replay since -1h0m0s"},
		{[]string{"replay", "greet", "--to", "greet", "--module", v2, "--rate", "1e9"}, 1, "MaxReplayRate"},
		{[]string{"replay", "greet", "--to", "nope", "--module", v2}, 1, `plugin \"nope\" is not loaded`},
		{[]string{"replay", "greet", "--to", "greet", "--module", "/nonexistent.wasm"}, 1, "nonexistent.wasm"},
		{[]string{"record", "greet", "--on", "--off"}, 2, "Usage: trellis record"},
	} {
		args := append(bad.args, "--admin", base)
		if code, out, errOut := runCLI(args...); code != bad.code || !strings.Contains(out+errOut, strings.ReplaceAll(bad.want, `\"`, `"`)) {
			t.Errorf("%v: exit %d %q %q, want %d with %q", bad.args, code, out, errOut, bad.code, bad.want)
		}
	}
	if code, out, _ := runCLI("record", "greet", "--off", "--admin", base); code != 0 || !strings.Contains(out, "recording off") {
		t.Fatalf("record --off: %d %s", code, out)
	}
}
