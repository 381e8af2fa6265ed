//go:build !linux

package netpoll

import "net"

// Watch always fails off Linux: the caller reads on a goroutine.
func Watch(net.Conn, func()) (*Watcher, error) { return nil, ErrUnsupported }

// Watcher is never created off Linux.
type Watcher struct{}

// Rearm does nothing off Linux.
func (*Watcher) Rearm() {}

// Stop does nothing off Linux.
func (*Watcher) Stop() {}
