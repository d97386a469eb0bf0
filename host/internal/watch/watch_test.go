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
