package admin_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain closes the browser the dashboard tests share, then fails the
// package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
