package sqs_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every trigger and long poll a test starts has ended when it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
