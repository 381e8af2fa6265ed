//go:build !linux

package lambdahost

import "os/exec"

// startProcess starts cmd. Only Linux has a parent-death signal: elsewhere a
// function process outlives a gateway that is killed without Close.
func startProcess(cmd *exec.Cmd) (release func(), err error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {}, nil
}
