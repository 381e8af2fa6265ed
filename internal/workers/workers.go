// Package workers runs short tasks on goroutines that outlive them. A
// connection layer with no goroutine per idle connection starts a task for
// every burst of reads, writes and routed messages; a new goroutine for each
// would start on a small stack and grow it again every time, which the
// profiles showed as a tenth of the CPU of an echo. A worker that finished a
// task waits a while for the next one, keeping its grown stack.
//
// A task costs one lock and one channel send to a worker that waits on its
// own channel: no timer is set per task. Idle workers are retired by one
// sweep that runs while any of them waits.
package workers

import (
	"sync"
	"time"
)

// idleTimeout is how long a worker waits for a task before it exits, at the
// least: long enough to carry a busy server from burst to burst, short
// enough that a quiet one (and a test's leak check) sees the workers go. A
// worker exits between one and one and a half times this after its last
// task (see sweep).
const idleTimeout = 500 * time.Millisecond

// sweepEvery is the period of the sweep while workers wait.
const sweepEvery = idleTimeout / 2

// worker is a goroutine waiting for its next task.
type worker struct {
	tasks chan func() // holds at most one task; nil tells the worker to exit
	epoch uint64      // the sweep count when it began to wait
}

var pool struct {
	mu       sync.Mutex
	idle     []*worker // the workers that wait, most recently idle last
	epoch    uint64    // sweeps so far
	sweeping bool      // a sweep is scheduled
}

// Go runs f on a waiting worker, or on a new one when none waits: a task is
// never queued behind another, so one that blocks delays no other. The
// worker idle for the shortest time runs it, with the warmest stack.
func Go(f func()) {
	pool.mu.Lock()
	if n := len(pool.idle); n > 0 {
		w := pool.idle[n-1]
		pool.idle[n-1] = nil
		pool.idle = pool.idle[:n-1]
		pool.mu.Unlock()
		w.tasks <- f // room for one: never blocks
		return
	}
	pool.mu.Unlock()
	go work(&worker{tasks: make(chan func(), 1)}, f)
}

func work(w *worker, f func()) {
	for f != nil {
		f()
		pool.mu.Lock()
		w.epoch = pool.epoch
		pool.idle = append(pool.idle, w)
		if !pool.sweeping {
			pool.sweeping = true
			time.AfterFunc(sweepEvery, sweep)
		}
		pool.mu.Unlock()
		f = <-w.tasks
	}
}

// sweep retires the workers that waited longer than idleTimeout (more
// sweeps than fit in it began since they did), and runs again while any
// worker waits.
func sweep() {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	pool.epoch++
	retired := 0
	for _, w := range pool.idle {
		if pool.epoch-w.epoch <= uint64(idleTimeout/sweepEvery) {
			break // the rest became idle later
		}
		w.tasks <- nil
		retired++
	}
	n := copy(pool.idle, pool.idle[retired:])
	clear(pool.idle[n:])
	pool.idle = pool.idle[:n]
	if n > 0 {
		time.AfterFunc(sweepEvery, sweep)
		return
	}
	pool.sweeping = false
}
