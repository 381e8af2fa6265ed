package main

import (
	"os"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

// asMainEnv set to 1 makes the test binary run main with its arguments, so
// that a test can run the gateway as a process of its own (and kill it).
const asMainEnv = "SWITCHBOARD_TEST_AS_MAIN"

// serve must leave no goroutine behind once it returns.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m, testutil.IdleWorkers)
}
