package tlsmux

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/localca"
	"github.com/switchboard-gateway/switchboard/internal/netpoll"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs an http.Server on a Listener and returns its address and the
// roots that trust it.
func serve(t *testing.T, opts Options) (string, *x509.CertPool) {
	t.Helper()
	ca, err := localca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.NewIssuer("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, &tls.Config{GetCertificate: is.GetCertificate, NextProtos: []string{"http/1.1"}}, opts)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		io.WriteString(w, scheme+" "+r.Host)
	})}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	return ln.Addr().String(), roots
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHTTPAndHTTPSOnOnePort(t *testing.T) {
	t.Parallel()
	addr, roots := serve(t, Options{})
	plain := &http.Client{Timeout: 10 * time.Second}
	secure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer plain.CloseIdleConnections()
	defer secure.Transport.(*http.Transport).CloseIdleConnections()
	for range 3 {
		if got, want := get(t, plain, "http://"+addr+"/"), "http "+addr; got != want {
			t.Errorf("http:// answered %q, want %q", got, want)
		}
		if got, want := get(t, secure, "https://"+addr+"/"), "https "+addr; got != want {
			t.Errorf("https:// answered %q, want %q", got, want)
		}
	}
	// A client that does not trust the CA is refused by the handshake.
	untrusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer untrusting.Transport.(*http.Transport).CloseIdleConnections()
	var uerr x509.UnknownAuthorityError
	if _, err := untrusting.Get("https://" + addr + "/"); !errors.As(err, &uerr) {
		t.Errorf("GET without the CA = %v, want x509.UnknownAuthorityError", err)
	}
}

func TestGarbageFirstByteGetsBadRequest(t *testing.T) {
	t.Parallel()
	addr, _ := serve(t, Options{})
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "\x00\xff\x01garbage\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("garbage answered %q, %v; want a 400", line, err)
	}
}

func TestSilentClientClosed(t *testing.T) {
	t.Parallel()
	addr, _ := serve(t, Options{SniffTimeout: 50 * time.Millisecond})
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a silent client read %d, %v; want EOF once the sniff timeout closes it", n, err)
	}
}

func TestConnHandsOverTheSocketOnlyAfterTheFirstByte(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &Conn{Conn: a, first: 'G', pending: true}
	if _, err := c.SyscallConn(); !errors.Is(err, ErrPending) {
		t.Errorf("SyscallConn before the first Read = %v, want ErrPending", err)
	}
	p := make([]byte, 8)
	if n, err := c.Read(p); n != 1 || err != nil || p[0] != 'G' {
		t.Errorf("first Read = %d %q, %v; want the sniffed byte", n, p[:n], err)
	}
	if _, err := c.SyscallConn(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyscallConn of a pipe = %v, want ErrUnsupported", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tc := &Conn{Conn: d}
	if _, err := tc.SyscallConn(); err != nil {
		t.Errorf("SyscallConn of a TCP socket, byte read = %v, want the raw conn", err)
	}
}

func TestCloseWhileSniffing(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A sniff timeout longer than any test: Close must not wait for it.
	ln := New(inner, &tls.Config{}, Options{SniffTimeout: time.Hour})
	sniffing := func(n int) func() bool {
		return func() bool {
			ln.mu.Lock()
			defer ln.mu.Unlock()
			return len(ln.sniffing) == n
		}
	}
	// Both clients are accepted before either writes, so both are sniffed:
	// a client whose byte came first would be told apart by the accept
	// loop itself, which would then wait on Accept and take no other.
	var clients [2]net.Conn
	for i := range clients {
		if clients[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
		clients[i].SetReadDeadline(time.Now().Add(time.Minute))
	}
	testutil.Eventually(t, 10*time.Second, sniffing(2), "both clients are being sniffed")
	told, silent := clients[0], clients[1]
	io.WriteString(told, "G") // told apart, then waits for an Accept that never comes
	testutil.Eventually(t, 10*time.Second, sniffing(1), "the client that wrote is told apart")
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	// Close does not wait for the sniff timeout: it closes the silent
	// client, and the one no Accept took. That one's byte is left unread,
	// so on Linux its close is a reset.
	if n, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent client read %d, %v after Close; want EOF", n, err)
	}
	if n, err := told.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("told-apart client read %d, %v after Close; want it closed", n, err)
	}
}

// A plain connection reaches the event loop as a socket: netpoll takes its
// descriptor over, and the bytes after the sniffed one are read there.
func TestPlainConnIsTakenOverByTheEventLoop(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("netpoll is Linux's")
	}
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, &tls.Config{}, Options{})
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	io.WriteString(d, "GET")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := c.Read(first); err != nil || first[0] != 'G' {
		t.Fatalf("first Read = %q, %v", first, err)
	}
	w, err := netpoll.Watch(c, func() {}, func() {})
	if err != nil {
		t.Fatalf("netpoll.Watch(plain conn) = %v, want the descriptor taken over", err)
	}
	defer w.Close()
	rest := make([]byte, 2)
	testutil.Eventually(t, 10*time.Second, func() bool {
		n, _ := w.Read(rest)
		return n == 2
	}, "the bytes after the sniffed one read through the watcher")
	if string(rest) != "ET" {
		t.Errorf("read %q through the watcher, want %q", rest, "ET")
	}
}

// failingOnce is a listener whose first Accept fails as when the process is
// out of descriptors.
type failingOnce struct {
	net.Listener
	failed bool
}

func (f *failingOnce) Accept() (net.Conn, error) {
	if !f.failed {
		f.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

// An accept that fails for want of descriptors passes: the listener
// accepts again afterwards instead of leaving the port bound and deaf.
func TestAcceptErrorIsNotTheEnd(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(&failingOnce{Listener: inner}, &tls.Config{}, Options{})
	defer l.Close()
	client, err := net.Dial("tcp", inner.Addr().String()) // the kernel completes it before any Accept
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("G")); err != nil { // the first byte: plain
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after a failed accept: %v, want the next connection", err)
	}
	_ = c.Close()
}

// peek looks at the first byte without taking it out of the socket, and
// tells a socket with nothing yet from one whose client left.
func TestPeek(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := peek(server, false); !errors.Is(err, errNotYet) {
		t.Errorf("peek(no byte yet) = %v, want errNotYet", err)
	}
	io.WriteString(client, "GET")
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := peek(server, true); err != nil || b != 'G' {
		t.Errorf("peek(wait) = %q, %v; want 'G'", b, err)
	}
	p := make([]byte, 3)
	if _, err := io.ReadFull(server, p); err != nil || string(p) != "GET" {
		t.Errorf("read after peek = %q, %v; want the peeked byte still there", p, err)
	}
	client.Close()
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := peek(server, true); err != io.EOF {
		t.Errorf("peek(client gone) = %v, want io.EOF", err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := peek(a, false); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("peek(pipe) = %v, want ErrUnsupported", err)
	}
}

// A client slower than its accept is sniffed on a goroutine of its own and
// still handed on as the socket, its first byte in it.
func TestSlowFirstByteHandsTheSocket(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("peek is for unix sockets")
	}
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(inner, &tls.Config{}, Options{})
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	testutil.Eventually(t, 10*time.Second, func() bool {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.sniffing) == 1
	}, "the silent client is being sniffed")
	io.WriteString(d, "GET")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("Accept = %T, want the *net.TCPConn itself", c)
	}
	p := make([]byte, 3)
	if _, err := io.ReadFull(c, p); err != nil || string(p) != "GET" {
		t.Errorf("read = %q, %v; want GET", p, err)
	}
}
