package workers_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"github.com/switchboard-gateway/switchboard/internal/workers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }

// A blocked task never holds up another: each runs at once.
func TestBlockedTaskDelaysNoOther(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	const n = 50
	started.Add(n)
	for range n {
		workers.Go(func() {
			started.Done()
			<-release
		})
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not every blocked task started: a task waited behind another")
	}
	close(release)
}

// Workers are reused between bursts and exit once idle.
func TestWorkersAreReusedThenExit(t *testing.T) {
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		workers.Go(wg.Done)
		wg.Wait() // one at a time: a single worker serves them all
	}
	if extra := runtime.NumGoroutine() - before; extra > 5 {
		t.Errorf("%d goroutines after 1000 sequential tasks, want a worker or so", extra)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before }, "idle workers exit")
}
