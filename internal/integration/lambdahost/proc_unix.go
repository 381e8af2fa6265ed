//go:build unix

package lambdahost

import (
	"errors"
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

// processAlive reports whether a process with the given PID exists (one
// owned by another user included).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// freezeProcess stops p's process group, as AWS freezes an execution
// environment between invocations; thawProcess resumes it. Errors are
// ignored: a process that is gone has nothing to freeze.
func freezeProcess(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGSTOP); err != nil {
		_ = p.Signal(syscall.SIGSTOP)
	}
}

func thawProcess(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGCONT); err != nil {
		_ = p.Signal(syscall.SIGCONT)
	}
}
