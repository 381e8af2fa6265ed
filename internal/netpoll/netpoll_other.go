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
func (*Watcher) Rearm() bool { return false }

// ArmWrite does nothing off Linux.
func (*Watcher) ArmWrite() error { return nil }

// HungUp reports false off Linux.
func (*Watcher) HungUp() bool { return false }

// UnregisterForTest does nothing off Linux.
func (*Watcher) UnregisterForTest() error { return nil }

// Read fails off Linux.
func (*Watcher) Read([]byte) (int, error) { return 0, errors.ErrUnsupported }

// Writev fails off Linux.
func (*Watcher) Writev([][]byte) (int, error) { return 0, errors.ErrUnsupported }

// Prober answers 0 off Linux.
type Prober struct{}

// NewProber returns a Prober that answers 0.
func NewProber(net.Conn) *Prober { return &Prober{} }

// Waiting returns 0 off Linux.
func (*Prober) Waiting() int { return 0 }

// Buffered returns 0 off Linux.
func (*Watcher) Buffered() int { return 0 }

// CloseWrite fails off Linux.
func (*Watcher) CloseWrite() error { return errors.ErrUnsupported }

// Close does nothing off Linux.
func (*Watcher) Close() error { return nil }
