package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// deployHost serves examples/greet with the deploy API on, and returns the
// admin endpoint's URL.
func deployHost(t *testing.T) (*trellistest.Host, string) {
	t.Helper()
	h := trellistest.NewHost(t)
	h.Load("greet", trellistest.Wasm(t, "../../examples/greet"))
	a, err := admin.New(h.Host, admin.Options{Listen: "127.0.0.1:0", Deploy: true, Logger: h.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
		http.DefaultClient.CloseIdleConnections()
	})
	return h, "http://" + a.Addr()
}

func TestDeployShadowThenCanaryToPromotion(t *testing.T) {
	h, base := deployHost(t)
	v2 := trellistest.Wasm(t, "../../host/testdata/greetv2")

	for _, bad := range [][]string{
		{"deploy", "greet", v2, "--canary", "50%,150%", "--admin", base},
		{"deploy", "greet", v2, "--canary", "50%", "--max-error-ratio", "x", "--admin", base},
		{"deploy", "greet", v2, "--shadow", "--sample", "200%", "--admin", base},
		{"deploy", "greet", v2, "--shadow", "--canary", "50%", "--admin", base},
		{"deploy", "greet", v2, "--abort", "--admin", base},
	} {
		if code, _, errOut := runCLI(bad...); code != 2 || !strings.Contains(errOut, "trellis deploy") {
			t.Errorf("%v: exit %d %q, want 2", bad[3:], code, errOut)
		}
	}
	if code, _, errOut := runCLI("deploy", "greet", v2, "--shadow", "--max-rate", "100000", "--admin", base); code != 1 || !strings.Contains(errOut, "MaxShadowRate") {
		t.Errorf("--max-rate past the limit: exit %d %q", code, errOut)
	}

	code, out, errOut := runCLI("deploy", "greet", v2, "--shadow", "--admin", base)
	if code != 0 || !strings.Contains(out, "is a shadow of greet@") {
		t.Fatalf("deploy --shadow: %d %s %s", code, out, errOut)
	}
	version := h.Candidates("greet")[0].Version
	h.Request("greet", []byte("Ada"), 5*time.Second)
	trellistest.WaitFor(t, 10*time.Second, "the shadow's diff in trellis deploy's report", func() bool {
		code, out, _ = runCLI("deploy", "greet", "--admin", base)
		return code == 0 && strings.Contains(out, `- stable    "Hello, Ada!"`) && strings.Contains(out, `+ candidate "Hello, Ada."`)
	})
	if !strings.Contains(out, "kv_write greeted ×1 (not made)") {
		t.Errorf("report without the shadow's side effect:\n%s", out)
	}
	code, out, _ = runCLI("ls", "--admin", base)
	if code != 0 || !strings.Contains(out, "└ candidate") || !strings.Contains(out, version) || !strings.Contains(out, "shadow: 1 compared, 1 differ") {
		t.Errorf("ls with a shadow:\n%s", out)
	}
	if code, out, errOut := runCLI("deploy", "greet", "--remove", version, "--admin", base); code != 0 || len(h.Candidates("greet")) != 0 {
		t.Fatalf("--remove: %d %s %s", code, out, errOut)
	}

	// The canary needs traffic to be judged on.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.Client().Request("greet", []byte("Ada"), 5*time.Second); err != nil {
				t.Errorf("request during the rollout: %v", err)
				return
			}
			time.Sleep(3 * time.Millisecond) // pace, not order
		}
	}()
	code, out, errOut = runCLI("deploy", "greet", v2, "--config", "audit=off", "--canary", "50%,100%", "--step", "200ms",
		"--min-messages", "10", "--interval", "20ms", "--max-p99-ratio", "3", "--latency-floor", "20ms", "--wait", "--poll", "50ms", "--admin", base)
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(out, "is a canary of greet@") || !strings.Contains(out, "step 1 of 2, 50% of the traffic") ||
		!strings.Contains(out, "promoted, it is the stable version") {
		t.Fatalf("deploy --canary --wait: %d\n%s%s", code, out, errOut)
	}
	if info := h.Plugins()[0]; info.Version != version {
		t.Fatalf("stable after the rollout: %s, want %s", info.Version, version)
	}
	code, out, _ = runCLI("deploy", "greet", "--admin", base)
	if code != 0 || !strings.Contains(out, "rollout "+version+": promoted") {
		t.Errorf("status after promotion:\n%s", out)
	}
}

func TestDeployHelp(t *testing.T) {
	if code, _, errOut := runCLI("deploy", "--help"); code != 0 || !strings.Contains(errOut, "Usage: trellis deploy") {
		t.Errorf("deploy --help: %d %q", code, errOut)
	}
}
