package loadgen_test

import (
	"os"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

// Every connection, reader and HTTP transport goroutine must be gone once a
// workload returns and the tests' servers are closed. Run with
// startServerEnv set, the test binary is instead the server command that
// TestStart starts.
func TestMain(m *testing.M) {
	if addr := os.Getenv(startServerEnv); addr != "" {
		os.Exit(serveSlowly(addr))
	}
	goleak.VerifyTestMain(m, testutil.IdleWorkers)
}
