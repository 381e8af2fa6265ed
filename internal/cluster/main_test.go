package cluster_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The cluster's background work and the engines' clients must be gone once
// each test's cluster is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }
