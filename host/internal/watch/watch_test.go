package watch_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trellis-mesh/trellis/host/internal/watch"
)

// TestMain fails the package's tests if a watcher's goroutines outlive them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunReportsAChangeAndEndsWithItsContext(t *testing.T) {
	dir := t.TempDir()
	w, err := watch.New(watch.Options{Paths: []string{dir}, Recursive: true, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	ended := make(chan error, 1)
	go func() {
		ended <- w.Run(ctx, func(context.Context) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	if err := os.WriteFile(filepath.Join(dir, "a.wasm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported for a new file")
	}
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run ended with %v, want context.Canceled", err)
	}
}

func TestCloseStopsAWatcherThatNeverRan(t *testing.T) {
	w, err := watch.New(watch.Options{Paths: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// TestMain's leak check fails if fsnotify's goroutine is still running.
}

// TestAFileIsWatchedThroughItsDirectoryAlone: a change beside a watched file
// is reported, one in a directory below it (a JetStream store beside a
// config file, say) is not.
func TestAFileIsWatchedThroughItsDirectoryAlone(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "trellis.hcl")
	store := filepath.Join(dir, "jetstream")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := watch.New(watch.Options{Paths: []string{file}, Recursive: true, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 16)
	ended := make(chan error, 1)
	go func() {
		ended <- w.Run(ctx, func(context.Context) {
			select {
			case changed <- struct{}{}:
			default: // one reported is enough to fail or pass
			}
		})
	}()
	defer func() { cancel(); <-ended }()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(store, "blk"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changed:
		t.Fatal("a change below the watched file's directory was reported")
	case <-time.After(300 * time.Millisecond):
	}
	if err := os.WriteFile(file, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported for the watched file")
	}
}
