package build

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// CFlagsFile names the file in a C plugin's directory whose lines (one flag
// each, the format clangd reads) are added to the compiler's command line.
// Only -I, -D, -U, -W, -f and -std= flags are taken, so that the file
// cannot change the target or the output; a relative -I is relative to the
// plugin's directory. `trellis new --lang c` writes one that points at the
// SDK when the plugin lives outside the Trellis tree.
const CFlagsFile = "compile_flags.txt"

func buildC(ctx context.Context, s *source, out string) error {
	clang, err := exec.LookPath("clang")
	if err != nil {
		return &ToolchainError{Lang: C, Tool: "clang", Install: installC}
	}
	args := []string{"--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-s"}
	if inc := findUp(s.dir, filepath.Join("sdk", "c", "trellis.h")); inc != "" {
		args = append(args, "-I"+filepath.Dir(inc))
	}
	flags, err := cFlags(filepath.Join(s.dir, CFlagsFile))
	if err != nil {
		return err
	}
	args = append(args, flags...)
	args = append(args, "-o", out)
	args = append(args, s.files...)
	cmd := exec.CommandContext(ctx, clang, args...)
	cmd.Dir = s.dir
	output, err := run(cmd, "clang")
	if err != nil {
		if tool := missingCTool(output); tool != "" {
			return &ToolchainError{Lang: C, Tool: tool, Install: installC}
		}
	}
	return err
}

// cFlags reads the flags of a compile_flags.txt; a missing file is no flags.
func cFlags(path string) ([]string, error) {
	b, err := readSource(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var flags []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		flag := strings.TrimSpace(sc.Text())
		for _, prefix := range []string{"-I", "-D", "-U", "-W", "-f", "-std="} {
			if strings.HasPrefix(flag, prefix) {
				flags = append(flags, flag)
				break
			}
		}
	}
	return flags, sc.Err()
}

var (
	missingLibcHeader = regexp.MustCompile(`'(stdlib|stdio|string|stddef|stdint|stdarg|errno)\.h' file not found`)
	missingLinker     = regexp.MustCompile(`"wasm-ld"( doesn't exist| not found)|wasm-ld: (command )?not found`)
)

// missingCTool tells a toolchain that is not installed from a plugin that
// does not compile, by clang's output.
func missingCTool(output []byte) string {
	switch {
	case missingLinker.Match(output):
		return "wasm-ld (package lld)"
	case missingLibcHeader.Match(output), strings.Contains(string(output), "wasm32-wasi/libc.a"):
		return "the WASI C library (package wasi-libc)"
	case strings.Contains(string(output), "libclang_rt.builtins-wasm32"):
		return "clang's wasm32 runtime (package libclang-rt-14-dev-wasm32)"
	}
	return ""
}

// findUp walks up from dir to the first directory holding rel and returns
// rel's path there, or "" when no ancestor holds it.
func findUp(dir, rel string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if p := filepath.Join(abs, rel); fileExists(p) {
			return p
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return ""
		}
		abs = parent
	}
}
