package build

import (
	"context"
	"os/exec"
)

func buildWAT(ctx context.Context, s *source, out string) error {
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		return &ToolchainError{Lang: WAT, Tool: "wat2wasm", Install: installWAT}
	}
	cmd := exec.CommandContext(ctx, tool, s.files[0], "-o", out)
	cmd.Dir = s.dir
	_, err = run(cmd, "wat2wasm")
	return err
}
