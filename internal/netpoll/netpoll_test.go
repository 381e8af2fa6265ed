//go:build linux

package netpoll_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/switchboard-gateway/switchboard/internal/netpoll"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The poller's goroutine runs only while a connection is watched.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func expect(t *testing.T, ready chan struct{}, want bool, what string) {
	t.Helper()
	wait := 50 * time.Millisecond // only a sanity window for "no event": a late event would fail the next expect
	if want {
		wait = 5 * time.Second
	}
	select {
	case <-ready:
		if !want {
			t.Fatalf("%s: readiness reported, want none", what)
		}
	case <-time.After(wait):
		if want {
			t.Fatalf("%s: no readiness reported", what)
		}
	}
}

// Reading fires once per arming. Bytes that arrived while it was not
// armed, since it last fired, make Rearm answer "read again": none is lost
// between a reader's last read and its Rearm.
func TestReadinessFiresOncePerArming(t *testing.T) {
	server, client := pair(t)
	ready := make(chan struct{}, 10)
	_, _ = client.Write([]byte("a")) // before Watch: noted at registration
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, _ := unix.IoctlGetInt(socketFD(t, server), unix.SIOCINQ)
		return n == 1
	}, "the byte never reached the server's socket")
	w, err := netpoll.Watch(server, func() { ready <- struct{}{} }, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	expect(t, ready, false, "not armed yet")
	if !w.Rearm() {
		t.Fatal("Rearm with a byte that arrived before Watch: not told to read again")
	}
	if w.Rearm() {
		t.Fatal("a second Rearm with nothing new: told to read again")
	}
	_, _ = client.Write([]byte("b"))
	expect(t, ready, true, "a write while armed")
	_, _ = client.Write([]byte("c"))
	expect(t, ready, false, "a write before Rearm")
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Buffered() == 3 }, "the bytes never reached the server's socket")
	if !w.Rearm() {
		t.Fatal("Rearm after a write that came while not armed: not told to read again")
	}

	buf := make([]byte, 1)
	if n, err := w.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v; want 1 byte", n, err)
	}
	// Two bytes are left: they fire only when more arrive. A reader reads
	// until EAGAIN before it rearms.
	if w.Rearm() {
		t.Fatal("Rearm with bytes left from before: told to read again")
	}
	expect(t, ready, false, "Rearm with bytes left from before")
	_, _ = client.Write([]byte("d"))
	expect(t, ready, true, "bytes that arrived after Rearm")

	buf = make([]byte, 8)
	if n, err := w.Read(buf); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v; want 3 bytes", n, err)
	}
	if _, err := w.Read(buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Read with nothing waiting = %v, want EAGAIN: it must not wait", err)
	}
	if w.Rearm() {
		t.Fatal("Rearm with nothing waiting: told to read again")
	}
	expect(t, ready, false, "Rearm with nothing waiting")
	if w.HungUp() {
		t.Fatal("HungUp before the peer hung up")
	}
	_ = client.Close()
	expect(t, ready, true, "the peer hung up")
	if !w.HungUp() {
		t.Fatal("HungUp after the readiness that told of the end = false: a short read would be taken for all there is")
	}
	if _, err := w.Read(buf); err != io.EOF {
		t.Fatalf("Read after the peer hung up = %v, want io.EOF", err)
	}
}

// socketFD is c's descriptor, for a look at its socket.
func socketFD(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestCloseEndsTheEventsAndTheSocket(t *testing.T) {
	server, client := pair(t)
	ready := make(chan struct{}, 10)
	w, err := netpoll.Watch(server, func() { ready <- struct{}{} }, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if w.Rearm() { // after Close: ignored
		t.Error("Rearm after Close: told to read again")
	}
	_ = w.Close() // twice: harmless
	if _, err := w.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
	_, _ = client.Write([]byte("a"))
	expect(t, ready, false, "after Close")
	// The socket is closed once the Watcher closes it: Watch closed the
	// original connection and kept only its duplicate.
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("the peer reads data from a closed socket")
	}
}

func TestOnlySocketsAreWatched(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := netpoll.Watch(a, func() {}, func() {}); !errors.Is(err, netpoll.ErrUnsupported) {
		t.Errorf("Watch(net.Pipe) = %v, want ErrUnsupported", err)
	}
}

// Writev never waits: it fills the socket until EAGAIN, and ArmWrite says
// when the socket takes bytes again.
func TestWritevAndWritability(t *testing.T) {
	server, client := pair(t)
	writable := make(chan struct{}, 10)
	w, err := netpoll.Watch(server, func() {}, func() { writable <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	chunk := make([]byte, 64<<10)
	total := 0
	for {
		n, err := w.Writev([][]byte{chunk, chunk})
		total += n
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatalf("Writev: %v", err)
		}
		if total > 1<<30 {
			t.Fatal("1 GiB written to a peer that reads nothing: Writev does not stop at EAGAIN")
		}
	}
	if err := w.ArmWrite(); err != nil {
		t.Fatalf("ArmWrite: %v", err)
	}
	expect(t, writable, false, "socket still full")
	if _, err := io.ReadFull(client, make([]byte, total)); err != nil {
		t.Fatalf("reading what was written: %v", err)
	}
	expect(t, writable, true, "after the peer read everything")
}

// A registration the kernel lost is reported, not discarded: ArmWrite
// fails with ErrRearm, so the owner can close the socket.
func TestArmWriteFailureIsReported(t *testing.T) {
	server, _ := pair(t)
	w, err := netpoll.Watch(server, func() {}, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.UnregisterForTest(); err != nil {
		t.Fatal(err)
	}
	if err := w.ArmWrite(); !errors.Is(err, netpoll.ErrRearm) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("ArmWrite of an unregistered socket = %v, want ErrRearm wrapping ENOENT", err)
	}
}

// Buffered says how many bytes wait to be read, so that a reader can size
// its buffer by what arrived.
func TestBufferedCountsWaitingBytes(t *testing.T) {
	server, client := pair(t)
	w, err := netpoll.Watch(server, func() {}, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n := w.Buffered(); n != 0 {
		t.Errorf("Buffered with nothing sent = %d, want 0", n)
	}
	_, _ = client.Write([]byte("abc"))
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Buffered() == 3 }, "Buffered = 3 after 3 bytes sent")
	_, _ = w.Read(make([]byte, 8))
	if n := w.Buffered(); n != 0 {
		t.Errorf("Buffered after reading everything = %d, want 0", n)
	}
	_ = w.Close()
	if n := w.Buffered(); n != 0 {
		t.Errorf("Buffered after Close = %d, want 0", n)
	}
}

// A Prober tells the same of a socket that is not watched, and answers 0
// for a connection that is not a socket.
func TestProberCountsWaitingBytes(t *testing.T) {
	server, client := pair(t)
	p := netpoll.NewProber(server)
	_, _ = client.Write([]byte("abcd"))
	testutil.Eventually(t, 5*time.Second, func() bool { return p.Waiting() == 4 }, "Waiting = 4 after 4 bytes sent")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if n := netpoll.NewProber(a).Waiting(); n != 0 {
		t.Errorf("Waiting of a pipe = %d, want 0", n)
	}
}
