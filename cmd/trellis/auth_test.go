package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/trellis-mesh/trellis/host/bus"
)

// operatorFixture writes a nats-server config in operator (JWT) mode with
// one application account, and a credentials file for each of users.
func operatorFixture(t *testing.T, users ...string) (conf string, creds map[string]string) {
	t.Helper()
	dir := t.TempDir()
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	op, _ := nkeys.CreateOperator()
	opPub := must(op.PublicKey())
	opJWT := must(jwt.NewOperatorClaims(opPub).Encode(op))
	account := func(name string) (nkeys.KeyPair, string, string) {
		kp, _ := nkeys.CreateAccount()
		pub := must(kp.PublicKey())
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		return kp, pub, must(ac.Encode(op))
	}
	_, sysPub, sysJWT := account("SYS")
	app, appPub, appJWT := account("APP")
	conf = filepath.Join(dir, "nats.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: 127.0.0.1:-1\noperator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		opJWT, sysPub, sysPub, sysJWT, appPub, appJWT)), 0o600)
	creds = map[string]string{}
	for _, u := range users {
		kp, _ := nkeys.CreateUser()
		uc := jwt.NewUserClaims(must(kp.PublicKey()))
		uc.Name = u
		uc.IssuerAccount = appPub
		ujwt := must(uc.Encode(app))
		seed, _ := kp.Seed()
		b, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		creds[u] = filepath.Join(dir, u+".creds")
		os.WriteFile(creds[u], b, 0o600)
	}
	return conf, creds
}

// echoBus starts a bus whose host connection echoes requests on "echo".
func echoBus(t *testing.T, opts bus.Options) *bus.Bus {
	t.Helper()
	b, err := bus.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.Conn().Subscribe("echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientVerbsHonourNATSURLAndCreds runs an embedded server in operator
// mode, where the host logs in with a credentials file, and reaches it with
// req, pub and sub through NATS_URL and --creds.
func TestClientVerbsHonourNATSURLAndCreds(t *testing.T) {
	conf, creds := operatorFixture(t, "host", "client")
	if _, err := bus.Start(context.Background(), bus.Options{ConfigFile: conf, DisableJetStream: true}); err == nil ||
		!strings.Contains(err.Error(), `nats { credentials = "FILE.creds" }`) {
		t.Fatalf("operator mode without host credentials: %v", err)
	}
	b := echoBus(t, bus.Options{ConfigFile: conf, DisableJetStream: true,
		Auth: bus.Credentials{CredsFile: creds["host"]}})

	t.Setenv("NATS_URL", b.ClientURL())
	if code, _, errOut := runCLI("req", "--timeout", "2s", "echo", "hi"); code != 1 || !strings.Contains(errOut, "Authorization Violation") {
		t.Fatalf("req without credentials: %d %q", code, errOut)
	}
	if code, out, errOut := runCLI("req", "--creds", creds["client"], "echo", "hi"); code != 0 || out != "hi\n" {
		t.Fatalf("req with NATS_URL and --creds: %d %q %q", code, out, errOut)
	}
	// -s wins over NATS_URL.
	good := b.ClientURL()
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	if code, out, errOut := runCLI("req", "-s", good, "--creds", creds["client"], "echo", "over -s"); code != 0 || out != "over -s\n" {
		t.Fatalf("req with -s: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI("req", "--creds", creds["client"], "--timeout", "500ms", "echo", "x"); code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("req to NATS_URL without -s: %d %q", code, errOut)
	}
	t.Setenv("NATS_URL", good)
	// sub and pub log in the same way.
	done := make(chan string, 1)
	go func() {
		_, out, errOut := runCLI("sub", "--creds", creds["client"], "-count", "1", "-timeout", "20s", "events.>")
		done <- out + errOut
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _, errOut := runCLI("pub", "--creds", creds["client"], "events.x", "seen"); code != 0 {
			t.Fatalf("pub: %d %q", code, errOut)
		}
		select {
		case out := <-done:
			if out != "events.x: seen\n" {
				t.Fatalf("sub: %q", out)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("sub never saw pub's message")
		}
	}
}

func TestClientVerbsLogInWithUserAndNKey(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "svc.nk")
	os.WriteFile(seedFile, seed, 0o600)
	b := echoBus(t, bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true,
		Users:  []bus.User{{Name: "alice", Password: "pw"}, {Name: "svc", NKey: pub}},
		Export: []string{"echo"}})
	for _, args := range [][]string{{"--user", "alice", "--password", "pw"}, {"--nkey", seedFile}} {
		all := append(append([]string{"req", "-s", b.ClientURL()}, args...), "echo", "ok")
		if code, out, errOut := runCLI(all...); code != 0 || out != "ok\n" {
			t.Fatalf("%v: %d %q %q", args, code, out, errOut)
		}
	}
	if code, _, errOut := runCLI("req", "-s", b.ClientURL(), "--user", "alice", "--password", "wrong", "echo", "x"); code != 1 || !strings.Contains(errOut, "Authorization Violation") {
		t.Fatalf("wrong password: %d %q", code, errOut)
	}
}

func TestRunRefusesAnUnauthenticatedBusBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "trellis.hcl")
	os.WriteFile(file, []byte("data_dir = \"data\"\nnats {\n  listen = \"0.0.0.0:0\"\n}\n"), 0o644)
	code, _, errOut := runCLI("run", "--config", file)
	if code != 1 || !strings.Contains(errOut, "0.0.0.0:0") || !strings.Contains(errOut, "allow_unauthenticated = true") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
