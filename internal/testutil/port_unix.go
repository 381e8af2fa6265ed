//go:build unix

package testutil

import (
	"os"
	"syscall"
)

// reservePort takes an exclusive lock on the file at path, which stands for
// a port; release gives it back. The lock goes with the process, so a test
// process that dies reserves nothing.
func reservePort(path string) (release func(), ok bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false
	}
	return func() { _ = f.Close() }, true
}
