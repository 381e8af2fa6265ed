//go:build unix

package loadgen

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// ownGroup makes cmd the leader of a process group of its own, so that what
// it starts (a framework's worker processes) is stopped with it.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// stopGroup sends SIGTERM to cmd's process group and waits for cmd to end;
// after wait, SIGKILL. It reports a stop that needed SIGKILL.
func stopGroup(cmd *exec.Cmd, exited <-chan error, wait time.Duration) error {
	pgid := cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-exited:
		// The leader is gone; what it started may linger.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	case <-time.After(wait):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	return fmt.Errorf("the command did not end within %v of SIGTERM and was killed", wait)
}
