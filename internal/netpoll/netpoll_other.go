//go:build !linux

package netpoll

import (
	"errors"
	"net"
)

// Watch always fails off Linux: the caller reads on a goroutine.
func Watch(net.Conn, func(), func()) (*Watcher, error) { return nil, ErrUnsupported }

// Watcher is never created off Linux.
type Watcher struct{}

// Rearm does nothing off Linux.
func (*Watcher) Rearm() {}

// ArmWrite does nothing off Linux.
func (*Watcher) ArmWrite() {}

// Writev fails off Linux.
func (*Watcher) Writev([][]byte) (int, error) { return 0, errors.ErrUnsupported }

// Stop does nothing off Linux.
func (*Watcher) Stop() {}
