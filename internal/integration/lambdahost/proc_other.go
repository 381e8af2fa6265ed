//go:build !unix

package lambdahost

import (
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

func killProcess(p *os.Process) { _ = p.Kill() }
