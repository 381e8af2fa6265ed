// Package tlsmux serves TLS and plain connections on one listener, told
// apart by the first byte each client sends (0x16 opens a TLS handshake), so
// that ws://, wss://, http:// and https:// share a port. The byte is looked
// at in the socket without being taken out of it (MSG_PEEK), so that a plain
// connection is handed on as the socket it is and an event loop can take its
// descriptor over. A client whose first byte has arrived by the time it is
// accepted, as an HTTP client's usually has, is told apart at once by the
// accept loop; only a slower one gets a goroutine, which waits for its first
// byte at most SniffTimeout, so that a silent client never holds the loop.
package tlsmux

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// recordHandshake is the first byte of a TLS ClientHello record.
const recordHandshake = 0x16

// DefaultSniffTimeout bounds the wait for a connection's first byte.
const DefaultSniffTimeout = 10 * time.Second

// Options configure a Listener. The zero value works.
type Options struct {
	// SniffTimeout bounds the wait for a client's first byte; a client
	// silent that long is closed. 0 means DefaultSniffTimeout; negative
	// sets no bound.
	SniffTimeout time.Duration
}

// Listener accepts from an inner listener and returns, for each connection,
// a *tls.Conn (not yet handshaken: http.Server does it) or a plain
// connection. Close closes the inner listener and the connections not yet
// returned by Accept.
type Listener struct {
	inner   net.Listener
	tls     *tls.Config
	timeout time.Duration

	conns chan net.Conn
	done  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	err      error // the inner Accept's error, returned by Accept once done is closed
	closed   bool
	sniffing map[net.Conn]struct{} // connections whose first byte is awaited
}

// New returns a Listener serving both on inner, with cfg for TLS
// connections. It takes inner over: Close closes it.
func New(inner net.Listener, cfg *tls.Config, opts Options) *Listener {
	if opts.SniffTimeout == 0 {
		opts.SniffTimeout = DefaultSniffTimeout
	}
	l := &Listener{inner: inner, tls: cfg, timeout: opts.SniffTimeout, conns: make(chan net.Conn), done: make(chan struct{}), sniffing: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// acceptLoop accepts until the inner listener is closed. Any other error
// (out of descriptors, a connection aborted before it was accepted) passes:
// it waits, from 5 ms doubling to 1 s as net/http does, and accepts again,
// so that the port is never left bound and deaf.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
				continue
			case <-l.done:
				return
			}
		}
		delay = 0
		if err != nil {
			l.mu.Lock()
			if l.err == nil {
				l.err = err
			}
			l.mu.Unlock()
			l.shut()
			return
		}
		// The usual case: the client's first bytes came with or just after
		// its handshake. Told apart here, the connection costs no
		// goroutine, deadline or wrapper of its own.
		first, err := peek(c, false)
		switch {
		case err == nil:
			l.hand(c, l.wrap(c, first, false))
			continue
		case errors.Is(err, errNotYet), errors.Is(err, errors.ErrUnsupported):
		default: // the client has gone already
			_ = c.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.sniffing[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.sniff(c)
	}
}

// errNotYet is peek's answer when no byte has arrived yet.
var errNotYet = errors.New("tlsmux: no byte yet")

// sniff waits for c's first byte, at most the sniff timeout, and hands c to
// Accept as TLS or plain.
func (l *Listener) sniff(c net.Conn) {
	defer l.wg.Done()
	if l.timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	}
	first, err := peek(c, true)
	read := errors.Is(err, errors.ErrUnsupported)
	if read { // not a socket: the byte is read, and given back by Conn
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
		first = b[0]
	}
	_ = c.SetReadDeadline(time.Time{})
	l.mu.Lock()
	delete(l.sniffing, c)
	l.mu.Unlock()
	if err != nil {
		_ = c.Close()
		return
	}
	l.hand(c, l.wrap(c, first, read))
}

// wrap returns c as Accept returns it: TLS when first opens a handshake. A
// first byte that was read, not peeked, is given back by a Conn.
func (l *Listener) wrap(c net.Conn, first byte, read bool) net.Conn {
	out := c
	if read {
		out = &Conn{Conn: c, first: first, pending: true}
	}
	if first == recordHandshake {
		out = tls.Server(out, l.tls)
	}
	return out
}

// hand passes out, the connection c told apart, to Accept, or closes c
// once the Listener is closed.
func (l *Listener) hand(c, out net.Conn) {
	select {
	case l.conns <- out:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection, TLS or plain.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err == nil || l.closed {
			return nil, net.ErrClosed
		}
		return nil, l.err
	}
}

func (l *Listener) shut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
	default:
		close(l.done)
	}
}

// Close closes the inner listener and waits for the connections being
// sniffed, which it closes.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	for c := range l.sniffing {
		_ = c.Close()
	}
	l.mu.Unlock()
	err := l.inner.Close()
	l.shut()
	l.wg.Wait()
	return err
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Conn is an accepted connection that is not a socket, whose first byte the
// Listener had to read; its first Read returns that byte. Once it has,
// SyscallConn reaches what is beneath. A socket is returned as it is, its
// first byte still in it.
type Conn struct {
	net.Conn
	mu      sync.Mutex
	first   byte
	pending bool
}

// Read returns the sniffed byte first, then reads the connection.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.pending && len(p) > 0 {
		p[0] = c.first
		c.pending = false
		c.mu.Unlock()
		return 1, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// ErrPending is returned by SyscallConn while the sniffed byte has not been
// read: the descriptor alone would lose it.
var ErrPending = errors.New("tlsmux: the first byte has not been read yet")

// SyscallConn returns the socket's raw connection once the sniffed byte has
// been read.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	if pending {
		return nil, ErrPending
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }
