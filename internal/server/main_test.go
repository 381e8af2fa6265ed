package server_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

// Every connection goroutine must be gone once the tests' servers are closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }
