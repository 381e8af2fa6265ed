//go:build unix

package testutil

import (
	"syscall"
	"testing"
	"time"
)

// ReportCPU starts measuring the process's CPU time (user + system) and
// returns the function that reports it per operation, as "cpu-µs/op", at
// the end of a benchmark. On a machine shared with other work the CPU a
// benchmark spends varies less than its wall time; client and server in one
// process are both counted, so compare sub-benchmarks of the same run.
func ReportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
