//go:build !linux

package loadgen

import "syscall"

// bindAddressNoPort does nothing outside Linux: the kernel picks the port at
// bind() time, so each source address offers fewer connections.
func bindAddressNoPort(_, _ string, _ syscall.RawConn) error { return nil }
