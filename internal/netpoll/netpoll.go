// Package netpoll tells when idle connections become readable, so that a
// connection needs no goroutine of its own while it waits. On Linux one epoll
// instance watches every registered socket; elsewhere, and for connections
// that are not plain sockets (TLS), Watch returns ErrUnsupported and the
// caller reads on a goroutine instead.
package netpoll

import "errors"

// ErrUnsupported is returned by Watch when the connection cannot be watched:
// not a socket, or not on Linux.
var ErrUnsupported = errors.New("netpoll: connection cannot be watched")

// ErrRearm is wrapped by the error of ArmWrite when the kernel
// refused the registration: the socket is no longer watched.
var ErrRearm = errors.New("netpoll: cannot rearm the socket")
