package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FreePort returns a loopback TCP port for a server the test starts and
// points others at (a nats-server process, a cluster's routes), reserved
// until the test ends.
//
// A port the kernel handed out with ":0" and closed again is free only a
// moment: a connection dialled anywhere on the machine may take it as its
// source port, and then the server cannot bind it. FreePort picks ports
// below the kernel's range for source ports, which no dial takes, and
// reserves each with a lock on a file that every test process on the
// machine sees, so two packages' tests never pick the same one.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi, ok := reservablePorts()
	dir := filepath.Join(os.TempDir(), "switchboard-test-ports")
	if ok && os.MkdirAll(dir, 0o755) == nil {
		for range 200 {
			port := lo + rand.IntN(hi-lo)
			if release, ok := reservePort(filepath.Join(dir, strconv.Itoa(port))); ok {
				if bindable(port) {
					t.Cleanup(release)
					return port
				}
				release()
			}
		}
	}
	// No range of its own, or no reservation to be had: the kernel's pick.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// reservablePorts returns the ports [lo, hi) FreePort picks from: those
// between 10000 and the start of the kernel's range for source ports, or
// above its end when the range starts too low to leave room below.
func reservablePorts() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	first, err1 := strconv.Atoi(f[0])
	last, err2 := strconv.Atoi(f[1])
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, false
	case first-10000 >= 2000:
		return 10000, first, true
	case 65536-(last+1) >= 2000:
		return last + 1, 65536, true
	}
	return 0, 0, false
}

// bindable reports whether a listener can bind 127.0.0.1:port now.
func bindable(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
