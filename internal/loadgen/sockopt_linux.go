package loadgen

import "syscall"

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (linux/in.h), which
// the syscall package does not name.
const ipBindAddressNoPort = 24

// bindAddressNoPort makes a socket bound to a source address choose its port
// at connect() time, unique for the 4-tuple only, so that one source address
// serves ~28k connections per destination and ports in TIME_WAIT are reused.
func bindAddressNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
