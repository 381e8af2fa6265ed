package main

import (
	"testing"

	"go.uber.org/goleak"
)

// serve must leave no goroutine behind once it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
