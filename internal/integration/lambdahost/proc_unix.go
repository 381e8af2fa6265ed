//go:build unix

package lambdahost

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the process in a group of its own, so that kill
// reaches whatever it started too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcess kills p's process group, or p alone if that fails.
func killProcess(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}
