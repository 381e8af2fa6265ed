package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

// serve must leave no goroutine behind once it returns. The gateways the
// tests start, in process or not, keep their local CA in a directory of
// their own.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SWITCHBOARD_DATA_DIR", dir)
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(testutil.IdleWorkers); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
