//go:build unix

package tlsmux

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peek returns the first byte waiting in c's socket without taking it out,
// so that c can be handed on as the socket it is. Without wait it never
// blocks and returns errNotYet when nothing has arrived; with wait it waits
// for a byte within c's read deadline. A connection that is not a socket
// gets errors.ErrUnsupported; one the client closed, io.EOF.
func peek(c net.Conn, wait bool) (byte, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, errors.ErrUnsupported
	}
	var (
		b    [1]byte
		n    int
		rerr error
	)
	recv := func(fd uintptr) bool {
		for {
			n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if rerr != unix.EINTR {
				break
			}
		}
		return !wait || rerr != unix.EAGAIN // false: wait for the socket to be readable
	}
	if wait {
		err = rc.Read(recv)
	} else {
		err = rc.Control(func(fd uintptr) { recv(fd) })
	}
	switch {
	case err != nil:
		return 0, err // the read deadline passed, or c was closed
	case rerr == unix.EAGAIN:
		return 0, errNotYet
	case rerr == unix.ENOTSOCK:
		return 0, errors.ErrUnsupported
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return b[0], nil
}
