package natsqueue_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The movers and long polls must be gone once each test's store is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }
