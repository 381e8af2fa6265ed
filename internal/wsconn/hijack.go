package wsconn

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
)

// bufferSize is the size of each connection's read and write buffers. net/http
// hands over 4 KiB ones at the hijack; most connections sit idle holding them,
// and larger messages bypass a bufio buffer anyway.
const bufferSize = 512

// smallBuffers is an http.ResponseWriter whose Hijack swaps net/http's
// buffers for small ones, keeps anything the client already sent, and routes
// every write to the socket through one socket, so that the connection's
// writer can send batches of data frames itself.
type smallBuffers struct {
	http.ResponseWriter
	sock *socket // set by Hijack
}

func (s *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	reader := conn
	if n := brw.Reader.Buffered(); n > 0 {
		// The client pipelined data after its handshake: serve it first.
		early, _ := brw.Reader.Peek(n)
		reader = &prefixedConn{Conn: conn, prefix: append([]byte(nil), early...)}
	}
	s.sock = &socket{conn: conn}
	return reader, bufio.NewReadWriter(bufio.NewReaderSize(reader, bufferSize), bufio.NewWriterSize(s.sock, bufferSize)), nil
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

// socket serialises the writes of the WebSocket library (control frames:
// pongs, pings, close, each flushed whole from a buffer larger than any
// control frame) with the connection's batches of data frames, so that frames
// never interleave. After a close frame no data frame is written.
type socket struct {
	conn      net.Conn
	mu        sync.Mutex
	closeSent bool
}

const opClose = 0x8

// Write is the library's path: one flushed buffer, starting at a frame boundary.
func (s *socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p) > 0 && p[0]&0x0f == opClose {
		s.closeSent = true
	}
	return s.conn.Write(p)
}

// writeFrames writes one unmasked, unfragmented frame per message with a
// single writev: the frames of a batch cost one system call, not one each.
func (s *socket) writeFrames(batch []outMsg) error {
	headers := make([]byte, 0, 10*len(batch)) // never grows: slices into it stay valid
	bufs := make(net.Buffers, 0, 2*len(batch))
	for _, m := range batch {
		start := len(headers)
		headers = appendFrameHeader(headers, byte(m.typ), len(m.data))
		bufs = append(bufs, headers[start:], m.data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeSent {
		return net.ErrClosed
	}
	_, err := bufs.WriteTo(s.conn)
	return err
}

// appendFrameHeader appends a server frame header (RFC 6455 §5.2): FIN set,
// no mask, the opcode and the payload length.
func appendFrameHeader(b []byte, opcode byte, n int) []byte {
	b = append(b, 0x80|opcode)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}
