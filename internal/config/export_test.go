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

// DocumentedPathsForTest lists the paths the reference's tables describe.
func DocumentedPathsForTest() []string {
	var out []string
	for p := range meanings {
		out = append(out, p)
	}
	for p := range componentDefaults {
		out = append(out, p)
	}
	return out
}
