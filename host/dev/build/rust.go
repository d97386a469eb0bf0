package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// inspectRust reports a Cargo.toml in dir: a plugin if its [lib] is a
// cdylib, a *NotPluginError if it is another kind of crate, nil if there is no
// Cargo.toml (or only a workspace manifest).
func inspectRust(dir string) (*source, error) {
	b, err := readSource(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		return nil, nil
	}
	m := parseManifest(string(b))
	if m.pkg == "" {
		return nil, nil // a virtual workspace manifest: its members are found on their own
	}
	if !m.cdylib {
		return nil, notPlugin(dir, Rust, "Rust crate %q is not a cdylib; add crate-type = [\"cdylib\"] under [lib] to build it as a plugin", m.pkg)
	}
	crate := m.lib
	if crate == "" {
		crate = m.pkg
	}
	return &source{lang: Rust, dir: dir, crate: strings.ReplaceAll(crate, "-", "_")}, nil
}

type manifest struct {
	pkg, lib string // [package] name, [lib] name
	cdylib   bool
}

// parseManifest reads the few Cargo.toml keys Build needs: the package and
// library names and the library's crate types. It is not a TOML parser; it
// understands the one-line forms cargo new and people write.
func parseManifest(text string) manifest {
	var m manifest
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case section == "package" && key == "name":
			m.pkg = strings.Trim(value, `"'`)
		case section == "lib" && key == "name":
			m.lib = strings.Trim(value, `"'`)
		case section == "lib" && (key == "crate-type" || key == "crate_type"):
			m.cdylib = strings.Contains(value, `"cdylib"`) || strings.Contains(value, `'cdylib'`)
		}
	}
	return m
}

// buildRust runs cargo in a target directory of its own per crate, under
// the user's cache directory, so the source tree gets no target/ (a
// watcher there sees only the sources) and a rebuild is incremental.
func buildRust(ctx context.Context, s *source, out string) error {
	cargo, rustc, err := lookRust()
	if err != nil {
		return err
	}
	triple := rustTarget(ctx, rustc)
	abs, err := filepath.Abs(s.dir)
	if err != nil {
		return err
	}
	targetDir, err := cargoTargetDir(abs, s.crate)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, cargo, "build", "--release", "--target", triple, "--offline")
	cmd.Dir = s.dir
	cmd.Env = env([]string{"RUSTC=" + rustc, "CARGO_TARGET_DIR=" + targetDir},
		"RUSTC_WRAPPER", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_ENCODED_RUSTFLAGS")
	output, err := run(cmd, "cargo build")
	if err != nil {
		if missingRustStd(output) {
			return &ToolchainError{Lang: Rust, Tool: "the Rust standard library for " + triple, Install: installRust}
		}
		return err
	}
	return copyFile(filepath.Join(targetDir, triple, "release", s.crate+".wasm"), out)
}

// lookRust finds cargo and rustc: Debian's in /usr/bin when both are there
// (a rustup toolchain first on PATH often lacks the Wasm standard library),
// else the ones on PATH.
func lookRust() (cargo, rustc string, err error) {
	cargo, rustc = filepath.Join(debianBin, "cargo"), filepath.Join(debianBin, "rustc")
	if fileExists(cargo) && fileExists(rustc) {
		return cargo, rustc, nil
	}
	cargo, err = exec.LookPath("cargo")
	if err != nil {
		return "", "", &ToolchainError{Lang: Rust, Tool: "cargo", Install: installRust}
	}
	rustc, err = exec.LookPath("rustc")
	if err != nil {
		return "", "", &ToolchainError{Lang: Rust, Tool: "rustc", Install: installRust}
	}
	return cargo, rustc, nil
}

// debianBin is where Debian installs cargo and rustc.
var debianBin = "/usr/bin"

var rustTargets sync.Map // rustc path -> target triple

// rustTarget returns the WASI preview 1 target this rustc calls
// wasm32-wasi (Rust before 1.78) or wasm32-wasip1 (later; the old name is
// gone from 1.84).
func rustTarget(ctx context.Context, rustc string) string {
	if t, ok := rustTargets.Load(rustc); ok {
		return t.(string)
	}
	triple := "wasm32-wasi"
	if b, err := exec.CommandContext(ctx, rustc, "--print", "target-list").Output(); err == nil {
		list := "\n" + string(b) + "\n"
		if !strings.Contains(list, "\nwasm32-wasi\n") && strings.Contains(list, "\nwasm32-wasip1\n") {
			triple = "wasm32-wasip1"
		}
		rustTargets.Store(rustc, triple)
	}
	return triple
}

func missingRustStd(output []byte) bool {
	o := string(output)
	return strings.Contains(o, "can't find crate for `std`") || strings.Contains(o, "can't find crate for `core`")
}

// cargoTargetDir returns the target directory for the crate at abs,
// creating it: one per crate path, so that two crates with one name never
// share an output file. It is under the user's cache directory
// (~/.cache/trellis/cargo), or in the temporary directory for a crate that
// is itself there (a test's), so that throwaway crates leave nothing behind
// that outlives them.
func cargoTargetDir(abs, crate string) (string, error) {
	base, err := os.UserCacheDir()
	base = filepath.Join(base, "trellis", "cargo")
	tmp := os.TempDir()
	if err != nil || strings.HasPrefix(abs, filepath.Clean(tmp)+string(filepath.Separator)) {
		base = filepath.Join(tmp, "trellis-cargo")
	}
	sum := sha256.Sum256([]byte(abs))
	dir := filepath.Join(base, crate+"-"+hex.EncodeToString(sum[:6]))
	return dir, os.MkdirAll(dir, 0o755)
}

// copyFile copies a toolchain's output module, which must be a regular file
// of at most plugin.MaxModuleSize bytes.
func copyFile(from, to string) error {
	b, err := plugin.ReadModule(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
