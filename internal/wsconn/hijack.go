package wsconn

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// bufferSize is the size of each connection's read and write buffers. net/http
// hands over 4 KiB ones at the hijack; most connections sit idle holding them,
// and larger messages bypass a bufio buffer anyway, so small ones cost one
// extra system call only for a frame that straddles them.
const bufferSize = 512

// smallBuffers is an http.ResponseWriter whose Hijack swaps net/http's
// buffers for small ones, keeping anything the client already sent.
type smallBuffers struct {
	http.ResponseWriter
}

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// The client pipelined data after its handshake: serve it first.
		early, _ := brw.Reader.Peek(n)
		conn = &prefixedConn{Conn: conn, prefix: append([]byte(nil), early...)}
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, bufferSize), bufio.NewWriterSize(conn, bufferSize)), nil
}

// prefixedConn reads prefix before the connection's own bytes.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

var _ io.Reader = (*prefixedConn)(nil)
