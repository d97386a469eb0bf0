package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

// The trellis binary, built once per test binary for the tests that use it
// as a user would: from a directory outside this repository, with nothing
// of the source tree around.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// trellisBinary builds cmd/trellis into a temporary directory once and
// returns its path.
func trellisBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "trellis-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "trellis")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{err, out}
		}
	})
	if binErr != nil {
		t.Fatalf("build the trellis binary: %v", binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// userEnv is the environment of a user's shell outside any Go workspace.
func userEnv() []string {
	return append(os.Environ(), "GOWORK=off", "GOFLAGS=", "NATS_URL=")
}

// toolchains says which language's tools are installed, and for a missing
// one the reason to skip it.
func toolchains() map[string]string {
	need := map[string][]string{"go": {"go"}, "c": {"clang"}, "rust": {"cargo", "rustc"}, "as": {"node", "npm"}}
	missing := map[string]string{}
	for lang, tools := range need {
		for _, tool := range tools {
			if _, err := exec.LookPath(tool); err != nil {
				missing[lang] = "no " + tool + " on PATH: the " + lang + " plugin is not tried"
			}
		}
	}
	return missing
}

// TestNewPluginsAnswerWithOnlyTheBinary is the promise of `trellis new` to
// someone who installed the binary and nothing else of Trellis: in a
// directory outside this repository, a plugin in every language is
// written, built by `trellis dev` with its own toolchain, and answers a
// request made with `trellis req`.
func TestNewPluginsAnswerWithOnlyTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a plugin in every language")
	}
	bin := trellisBinary(t)
	work := t.TempDir()
	if wd, _ := os.Getwd(); strings.HasPrefix(work, filepath.Dir(filepath.Dir(wd))) {
		t.Fatalf("temporary directory %s is inside the source tree", work)
	}
	trellis := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = work, userEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	missing := toolchains()
	var langs []string
	for _, lang := range []string{"go", "rust", "c", "as"} {
		if why := missing[lang]; why != "" {
			t.Run(lang, func(t *testing.T) { trellistest.SkipWithoutToolchain(t, why) })
			continue
		}
		langs = append(langs, lang)
		if out, err := trellis("new", "--lang", lang, filepath.Join("plugins", "hello-"+lang)); err != nil {
			t.Fatalf("trellis new --lang %s: %v\n%s", lang, err, out)
		}
	}
	if len(langs) == 0 {
		t.Skip("no toolchain installed")
	}

	logs := &trellistest.SyncBuffer{}
	dev := exec.Command(bin, "dev", "--nats-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", "data", "plugins")
	dev.Dir, dev.Env, dev.Stdout, dev.Stderr = work, userEnv(), logs, logs
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	t.Cleanup(func() {
		dev.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			dev.Process.Kill()
			<-exited
		}
	})
	re := regexp.MustCompile(`serving; watching for changes.*nats=(nats://127\.0\.0\.1:\d+)`)
	var url string
	// Cold builds of a Rust and an AssemblyScript plugin on a loaded
	// 2-core machine take minutes; this bounds a wait for an event.
	for deadline := time.Now().Add(5 * time.Minute); url == "" && time.Now().Before(deadline); {
		select {
		case err := <-exited:
			t.Fatalf("trellis dev exited (%v):\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("trellis dev never said it was serving:\n%s", logs.String())
	}
	for _, lang := range langs {
		name := "hello-" + lang
		out, err := trellis("req", "-s", url, name, "world")
		if want := "Hello from " + name + ": world\n"; err != nil || out != want {
			t.Errorf("trellis req %s: %v %q, want %q\n%s", name, err, out, want, logs.String())
		}
	}
	for _, bad := range []string{"build failed", "[ERROR]", "[WARN]  trellis: skipped"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("dev logged %q:\n%s", bad, logs.String())
		}
	}
}
