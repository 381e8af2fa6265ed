package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every connection goroutine must be gone once the tests' servers are closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
