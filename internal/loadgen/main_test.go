package loadgen_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

// Every connection, reader and HTTP transport goroutine must be gone once a
// workload returns and the tests' servers are closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }
