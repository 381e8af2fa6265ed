//go:build linux

package lambdahost_test

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// A function process gets the parent-death signal when the thread that
// started it ends, not when the caller's does: a process started for a
// goroutine that then returns locked to its thread (which ends the thread)
// stays warm.
func TestProcessOutlivesTheThreadOfItsCaller(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{MaxProcs: 1})
	type result struct {
		out string
		err error
		tid int
	}
	res := make(chan result, 1)
	var work func()
	work = func() {
		runtime.LockOSThread() // never unlocked: Go ends the thread with the goroutine
		if syscall.Gettid() == os.Getpid() {
			// Go parks the main thread rather than end it: keep it busy so
			// that the work runs on another thread.
			done := make(chan struct{})
			go func() { work(); close(done) }()
			<-done
			runtime.UnlockOSThread()
			return
		}
		out, err := h.invoke(t, `{"pid":true}`) // h.pid would fail the test off its goroutine
		res <- result{out, err, syscall.Gettid()}
	}
	go work()
	r := <-res
	var first struct{ PID int }
	if err := json.Unmarshal([]byte(r.out), &first); r.err != nil || err != nil || first.PID == 0 {
		t.Fatalf("InvokeRaw = %s, %v; want {\"pid\":N}", r.out, r.err)
	}
	task := fmt.Sprintf("/proc/self/task/%d", r.tid)
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat(task)
		return os.IsNotExist(err)
	}, "the caller's thread %d ends", r.tid)
	if !alive(first.PID) {
		t.Fatalf("process %d died with the thread of its first caller", first.PID)
	}
	if got := h.pid(t, `{"pid":true}`); got != first.PID {
		t.Errorf("second invocation served by process %d, want the warm %d", got, first.PID)
	}
}
