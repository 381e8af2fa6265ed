package testutil

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestFreePortReserves: the ports FreePort hands out are distinct, outside
// the kernel's range for source ports, bindable, and reserved against any
// other taker until the test ends.
func TestFreePortReserves(t *testing.T) {
	lo, hi, ok := reservablePorts()
	if !ok {
		t.Skip("no room outside the kernel's range for source ports")
	}
	seen := map[int]bool{}
	for range 50 {
		port := FreePort(t)
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		if port < lo || port >= hi {
			t.Errorf("port %d outside [%d, %d)", port, lo, hi)
		}
		if release, ok := reservePort(filepath.Join(os.TempDir(), "switchboard-test-ports", strconv.Itoa(port))); ok {
			release()
			t.Errorf("port %d could be reserved a second time", port)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", port, err)
		}
		l.Close()
	}
	var released int
	t.Run("released", func(t *testing.T) {
		released = FreePort(t)
	})
	release, ok := reservePort(filepath.Join(os.TempDir(), "switchboard-test-ports", strconv.Itoa(released)))
	if !ok {
		t.Fatalf("port %d still reserved after its test ended", released)
	}
	release()
}
