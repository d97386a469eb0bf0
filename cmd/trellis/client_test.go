package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// authServer starts a nats-server on a free loopback port that takes one
// user, with a responder on "who" that answers with a header.
func authServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "ada", Password: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("ada", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	nc.Subscribe("who", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("X-Answered-By", "responder")
		r.Data = append([]byte("hi "), m.Data...)
		m.RespondMsg(r)
	})
	nc.Flush()
	return s.ClientURL()
}

// natsHome makes a nats CLI configuration directory with one context and
// points XDG_CONFIG_HOME at it; selected says whether context.txt selects it.
func natsHome(t *testing.T, name, body string, selected bool) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	dir := filepath.Join(home, "nats", "context")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if selected {
		os.WriteFile(filepath.Join(home, "nats", "context.txt"), []byte(name+"\n"), 0o644)
	}
}

// TestClientVerbsFindTheServerAsTheNatsCLIDoes: flags, then the nats CLI's
// environment variables, then a context (named or selected).
func TestClientVerbsFindTheServerAsTheNatsCLIDoes(t *testing.T) {
	url := authServer(t)
	for _, k := range []string{"NATS_URL", "NATS_CONTEXT", "NATS_USER", "NATS_PASSWORD", "NATS_CREDS", "NATS_TOKEN", "NATS_NKEY"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	ok := func(t *testing.T, args ...string) {
		t.Helper()
		code, out, errOut := runCLI(append([]string{"req", "--timeout", "5s"}, append(args, "who", "there")...)...)
		if code != 0 || out != "hi there\n" {
			t.Fatalf("req %v: %d %q %q", args, code, out, errOut)
		}
	}
	t.Run("flags", func(t *testing.T) {
		ok(t, "--server", url, "--user", "ada", "--password", "s3cret")
		ok(t, "-s", url, "--user", "ada", "--password", "s3cret")
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("NATS_URL", url)
		t.Setenv("NATS_USER", "ada")
		t.Setenv("NATS_PASSWORD", "s3cret")
		ok(t)
		// A flag wins over the environment.
		if code, _, errOut := runCLI("req", "--timeout", "2s", "-s", "nats://127.0.0.1:1", "who"); code == 0 || !strings.Contains(errOut, "127.0.0.1:1") {
			t.Fatalf("-s did not override NATS_URL: %d %q", code, errOut)
		}
	})
	t.Run("named context", func(t *testing.T) {
		natsHome(t, "dev", `{"url":"`+url+`","user":"ada","password":"s3cret"}`, false)
		ok(t, "--context", "dev")
		t.Setenv("NATS_CONTEXT", "dev")
		ok(t)
	})
	t.Run("selected context", func(t *testing.T) {
		natsHome(t, "dev", `{"url":"`+url+`","user":"ada","password":"s3cret"}`, true)
		ok(t)
		// A login given on the command line replaces the context's.
		if code, _, errOut := runCLI("req", "--timeout", "2s", "--user", "ada", "--password", "wrong", "who"); code == 0 || !strings.Contains(strings.ToLower(errOut), "authorization") {
			t.Fatalf("--password did not replace the context's: %d %q", code, errOut)
		}
	})
	t.Run("missing context", func(t *testing.T) {
		code, _, errOut := runCLI("req", "--context", "nope", "who")
		if code != 2 || !strings.Contains(errOut, `context "nope"`) {
			t.Fatalf("%d %q", code, errOut)
		}
	})
}

func TestReqPrintsReplyHeadersAndStatus(t *testing.T) {
	url := authServer(t)
	code, out, errOut := runCLI("req", "-s", url, "--user", "ada", "--password", "s3cret", "--headers", "who", "there")
	if want := "NATS/1.0\nX-Answered-By: responder\n\nhi there\n"; code != 0 || out != want {
		t.Fatalf("req --headers: %d %q %q, want %q", code, out, errOut, want)
	}
	// No responder: the server's own status, 503.
	code, out, _ = runCLI("req", "-s", url, "--user", "ada", "--password", "s3cret", "-i", "nobody.home")
	if code != 1 {
		t.Fatalf("no responders: exit %d %q", code, out)
	}
}

func TestVerbsRefuseBadFlagValues(t *testing.T) {
	cases := []struct {
		args []string
		says string
	}{
		{[]string{"dev", "--log-level", "verbose", "."}, `"verbose" is not one of trace, debug, info, warn, error`},
		{[]string{"run", "--log-level", "loud"}, `"loud" is not one of trace, debug, info, warn, error`},
		{[]string{"req", "--timeout", "-1s", "x"}, "want a positive duration"},
		{[]string{"completion", "tcsh"}, `want bash, zsh or fish`},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(c.args...)
		if code != 2 || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.says)
		}
	}
}

func TestHelpVerbAndCompletion(t *testing.T) {
	code, out, _ := runCLI("help", "dev")
	if code != 0 || !strings.Contains(out, "Usage: trellis dev") || !strings.Contains(out, "-nats-listen") {
		t.Fatalf("help dev: %d %q", code, out)
	}
	if code, _, errOut := runCLI("help", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown verb") {
		t.Fatalf("help frobnicate: %d %q", code, errOut)
	}
	code, out, _ = runCLI("completion", "bash")
	if code != 0 || !strings.Contains(out, "complete -o filenames -F _trellis trellis") || !strings.Contains(out, "--headers") {
		t.Fatalf("completion bash: %d %q", code, out)
	}
}
