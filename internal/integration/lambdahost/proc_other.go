//go:build !unix

package lambdahost

import (
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

func killProcess(p *os.Process) { _ = p.Kill() }

// There is no portable way to freeze a process here: it keeps running
// between invocations.
func freezeProcess(*os.Process) {}

func thawProcess(*os.Process) {}

// processAlive cannot tell here: every owner counts as alive, so that no
// directory in use is removed.
func processAlive(int) bool { return true }
