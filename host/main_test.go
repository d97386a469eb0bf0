package host_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// host a test starts must end all of its own when closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
