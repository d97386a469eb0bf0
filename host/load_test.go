package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/internal/plugin"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// TestLoadReadsOnlyRegularFiles: Spec.Path naming a FIFO, a device or a
// file over plugin.MaxModuleSize is refused at once with its name and why,
// and a symlink to a regular module loads.
func TestLoadReadsOnlyRegularFiles(t *testing.T) {
	h := trellistest.NewHost(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.wasm")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.wasm")
	os.Symlink("/dev/zero", zero)
	big := filepath.Join(dir, "big.wasm")
	if f, err := os.Create(big); err == nil {
		f.Truncate(plugin.MaxModuleSize + 1)
		f.Close()
	}
	link := filepath.Join(dir, "link.wasm")
	os.Symlink(trellistest.Wasm(t, "../abi/echo.wat"), link)

	for _, tc := range []struct{ path, says string }{
		{fifo, "is a named pipe (FIFO), not a regular file"},
		{zero, "is a character device, not a regular file"},
		{big, "is larger than 1073741824 bytes (plugin.MaxModuleSize)"},
	} {
		done := make(chan error, 1)
		go func() { done <- h.Host.Load(context.Background(), host.Spec{Name: "x", Path: tc.path}) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.path+" "+tc.says) || !strings.Contains(err.Error(), `plugin "x"`) {
				t.Errorf("error %v; want one naming the plugin and saying %q %q", err, tc.path, tc.says)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load of %s blocked", tc.path)
		}
	}
	if err := h.Host.Load(context.Background(), host.Spec{Name: "echo", Path: link, Subjects: []string{"echo"}}); err != nil {
		t.Fatalf("a symlink to a module: %v", err)
	}
}
