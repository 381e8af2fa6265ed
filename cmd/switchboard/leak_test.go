package main

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

// serve must leave no goroutine behind once it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.IdleWorkers)
}
