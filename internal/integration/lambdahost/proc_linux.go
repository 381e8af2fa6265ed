//go:build linux

package lambdahost

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startProcess starts cmd so that the kernel kills it (SIGKILL) when this
// process dies, however it dies: a gateway killed with SIGKILL leaves no
// function running. The caller calls release once cmd has been reaped.
//
// The parent-death signal is tied to the thread that forked the child, not
// to the process: Linux sends it when that thread exits. Go ends a thread
// only when a goroutine locked to it returns, so every child is started from
// one goroutine locked to its thread (starter.loop), which returns only once
// none of the children it started is left.
func startProcess(cmd *exec.Cmd) (release func(), err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	reqs := starter.acquire()
	errc := make(chan error, 1)
	reqs <- startRequest{cmd: cmd, err: errc}
	if err := <-errc; err != nil {
		starter.release()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(starter.release) }, nil
}

type startRequest struct {
	cmd *exec.Cmd
	err chan<- error
}

// starter owns the thread that forks every function process.
var starter threadStarter

type threadStarter struct {
	mu   sync.Mutex
	reqs chan startRequest // nil while no loop runs
	live int               // children started (or being started) and not yet released
}

// acquire counts one more child and returns the running loop's channel,
// starting a loop if none runs.
func (s *threadStarter) acquire() chan<- startRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reqs == nil {
		s.reqs = make(chan startRequest)
		go s.loop(s.reqs)
	}
	s.live++
	return s.reqs
}

// release counts one child less; the last one ends the loop and its thread.
func (s *threadStarter) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live--
	if s.live == 0 {
		close(s.reqs)
		s.reqs = nil
	}
}

// loop starts each requested command on this goroutine's thread. It never
// unlocks the thread, so Go ends the thread when loop returns: by then every
// child it started has been reaped.
func (s *threadStarter) loop(reqs <-chan startRequest) {
	runtime.LockOSThread()
	for r := range reqs {
		r.err <- r.cmd.Start()
	}
}
