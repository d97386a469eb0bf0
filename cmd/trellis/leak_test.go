package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the CLI's tests if a command leaves a goroutine running
// after it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
