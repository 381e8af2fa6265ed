package redisqueue_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every store's subscription and every long poll have ended once each
// test's stores are closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
