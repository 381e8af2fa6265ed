// Package workers runs short tasks on goroutines that outlive them. A
// connection layer with no goroutine per idle connection starts a task for
// every burst of reads, writes and routed messages; a new goroutine for each
// would start on a small stack and grow it again every time, which the
// profiles showed as a tenth of the CPU of an echo. A worker that finished a
// task waits a while for the next one, keeping its grown stack.
package workers

import "time"

// idleTimeout is how long a worker waits for a task before it exits: long
// enough to carry a busy server from burst to burst, short enough that a
// quiet one (and a test's leak check) sees the workers go.
const idleTimeout = 500 * time.Millisecond

// tasks hands a task to a worker that waits for one; unbuffered, so that a
// send succeeds only when a worker is there to run the task at once.
var tasks = make(chan func())

// Go runs f on a waiting worker, or on a new one when none waits: a task is
// never queued behind another, so one that blocks delays no other.
func Go(f func()) {
	select {
	case tasks <- f:
	default:
		go work(f)
	}
}

func work(f func()) {
	f()
	idle := time.NewTimer(idleTimeout)
	defer idle.Stop()
	for {
		select {
		case f := <-tasks:
			f()
			idle.Reset(idleTimeout)
		case <-idle.C:
			return
		}
	}
}
