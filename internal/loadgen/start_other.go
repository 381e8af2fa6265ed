//go:build !unix

package loadgen

import (
	"fmt"
	"os/exec"
	"time"
)

func ownGroup(*exec.Cmd) {}

// stopGroup kills cmd (no process groups here) and waits for it to end.
func stopGroup(cmd *exec.Cmd, exited <-chan error, wait time.Duration) error {
	if err := cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("the command did not end within %v of being killed", wait)
	}
}
