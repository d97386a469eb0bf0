package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

// startDev runs the trellis binary's dev verb with args in dir and returns
// the NATS URL it serves on, its logs and its exit.
func startDev(t *testing.T, dir string, args ...string) (string, *trellistest.SyncBuffer, *exec.Cmd, chan error) {
	t.Helper()
	logs := &trellistest.SyncBuffer{}
	cmd := exec.Command(trellisBinary(t), append([]string{"dev", "--nats-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, ".data")}, args...)...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, userEnv(), logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	re := regexp.MustCompile(`serving; watching .*nats=(nats://127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs, cmd, exited
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dev exited (%v):\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("dev never served:\n%s", logs.String())
	return "", nil, nil, nil
}

// TestSecondInterruptForcesTheExit: a call that would hold the graceful
// shutdown for its whole deadline is cut short by a second interrupt, and
// the log says what was still in flight.
func TestSecondInterruptForcesTheExit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	wasm, err := os.ReadFile(trellistest.Wasm(t, "testdata/slow.wat"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "plugins"), 0o755)
	os.WriteFile(filepath.Join(dir, "plugins", "slow.wasm"), wasm, 0o644)
	url, logs, cmd, exited := startDev(t, dir, "--timeout", "5m", "plugins")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	started, _ := nc.SubscribeSync("slow.started")
	nc.PublishRequest("slow", "_INBOX.nobody", nil)
	if _, err := started.NextMsg(time.Minute); err != nil {
		t.Fatalf("the slow call never started: %v\n%s", err, logs.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	trellistest.WaitFor(t, time.Minute, "the graceful shutdown to begin", func() bool {
		return strings.Contains(logs.String(), "shutting down")
	})
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("exit %v, want status 130\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a second interrupt did not end dev:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "calls_in_flight=\"slow (1)\"") {
		t.Fatalf("the log does not say what was in flight:\n%s", logs.String())
	}
}

// TestDevRefusesAMissingDirectoryBeforeStarting: nothing starts (no NATS,
// no watch) for a DIR that is not there.
func TestDevRefusesAMissingDirectoryBeforeStarting(t *testing.T) {
	start := time.Now()
	code, _, errOut := runCLI("dev", "--nats-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", t.TempDir(), filepath.Join(t.TempDir(), "nope"))
	if code != 2 || !strings.Contains(errOut, "no such file or directory") || strings.Contains(errOut, "NATS") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

// TestDevServesAConfigFile: dev --config serves what the file lists, as run
// does.
func TestDevServesAConfigFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	wasm, err := os.ReadFile(trellistest.Wasm(t, "../../abi/echo.wat"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "echo.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "t.hcl"), []byte("data_dir = \".data\"\nplugin \"echo\" {\n  path = \"echo.wasm\"\n  subjects = [\"echo\"]\n}\n"), 0o644)
	logs := &trellistest.SyncBuffer{}
	cmd := exec.Command(trellisBinary(t), "dev", "--config", "t.hcl", "--nats-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, userEnv(), logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	re := regexp.MustCompile(`serving; watching the config.*nats=(nats://127\.0\.0\.1:\d+)`)
	var url string
	trellistest.WaitFor(t, time.Minute, "dev --config to serve", func() bool {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
		}
		return url != ""
	})
	if code, out, errOut := runCLI("req", "-s", url, "echo", "configured"); code != 0 || out != "configured\n" {
		t.Fatalf("req: %d %q %q\n%s", code, out, errOut, logs.String())
	}
}
