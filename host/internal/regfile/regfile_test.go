package regfile_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/internal/regfile"
)

func TestReadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "x.wasm")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "y.wasm")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.wasm")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sub := filepath.Join(dir, "d.wasm")
	os.Mkdir(sub, 0o755)

	for _, tc := range []struct{ path, kind string }{
		{fifo, "a named pipe (FIFO)"},
		{zero, "a character device"},
		{sock, "a socket"},
		{sub, "a directory"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			done := make(chan error, 1)
			go func() {
				_, err := regfile.Read(tc.path, 1<<30, "the limit")
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Read blocked")
			}
			var nr *regfile.NotRegularError
			if !errors.As(err, &nr) || !strings.Contains(err.Error(), tc.kind) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %v; want one naming %s and %q", err, tc.path, tc.kind)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("allocated %d bytes to refuse it", grew)
			}
		})
	}
}

func TestReadFollowsSymlinksToRegularFiles(t *testing.T) {
	dir := t.TempDir()
	// A Kubernetes ConfigMap volume: file -> ..data/file, ..data -> ..2024_x.
	real := filepath.Join(dir, "..2024_x")
	os.Mkdir(real, 0o755)
	os.WriteFile(filepath.Join(real, "a.wasm"), []byte("content"), 0o644)
	os.Symlink("..2024_x", filepath.Join(dir, "..data"))
	os.Symlink(filepath.Join("..data", "a.wasm"), filepath.Join(dir, "a.wasm"))
	b, err := regfile.Read(filepath.Join(dir, "a.wasm"), 100, "the limit")
	if err != nil || string(b) != "content" {
		t.Fatalf("Read = %q, %v", b, err)
	}
}

func TestReadRefusesAFileOverTheLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.wasm")
	os.WriteFile(path, make([]byte, 101), 0o644)
	_, err := regfile.Read(path, 100, "plugin.MaxModuleSize")
	var tl *regfile.TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "100 bytes (plugin.MaxModuleSize)") {
		t.Fatalf("error %v; want one naming the limit", err)
	}
	if b, err := regfile.Read(path, 101, "x"); err != nil || len(b) != 101 {
		t.Fatalf("at the limit: %d bytes, %v", len(b), err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	if b, err := regfile.Read(empty, 100, "x"); err != nil || len(b) != 0 {
		t.Fatalf("empty: %q, %v", b, err)
	}
}
