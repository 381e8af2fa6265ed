//go:build !unix

package tlsmux

import (
	"errors"
	"net"
)

// peek is not available: every connection's first byte is read.
func peek(net.Conn, bool) (byte, error) { return 0, errors.ErrUnsupported }
