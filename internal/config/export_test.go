package config

import "time"

// SetServerlessEvalTimeoutForTest changes the bound on evaluating a
// serverless.ts or .js file until the returned function is called. Only
// for tests that do not run in parallel.
func SetServerlessEvalTimeoutForTest(d time.Duration) (restore func()) {
	old := serverlessEvalTimeout
	serverlessEvalTimeout = d
	return func() { serverlessEvalTimeout = old }
}
