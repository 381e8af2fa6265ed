package wsconn

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// batchSize is how many messages go out with one writev; the write deadline
// is renewed between batches, so a slow but moving peer is not cut off.
const batchSize = 64

// startWriterLocked starts the writer unless it runs or the socket is
// closed. c.mu is held. The writer exists only while there is work.
func (c *Conn) startWriterLocked() {
	if !c.writing && !c.sockClosed {
		c.writing = true
		go c.writeLoop()
	}
}

// writeLoop writes control frames, then queued messages, then the close
// frame, until nothing is left; it is the only writer of the socket.
func (c *Conn) writeLoop() {
	var (
		headers []byte
		bufs    net.Buffers
		batch   []outMsg
	)
	for {
		c.mu.Lock()
		control := c.control
		c.control = nil
		n := min(len(c.queue), batchSize)
		batch = append(batch[:0], c.queue[:n]...)
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil // an idle connection keeps no queue
		}
		for _, m := range batch {
			c.queuedBytes -= len(m.data)
		}
		var closing []byte
		if len(control) == 0 && n == 0 && c.closing && !c.closeSent {
			closing, c.closeSent = closeFrame(c.closeInfo.Code, c.closeInfo.Reason), true
		}
		if len(control) == 0 && n == 0 && closing == nil || c.sockClosed {
			c.writing = false
			c.mu.Unlock()
			return
		}
		// Set under c.mu, so that a close shortening it is not undone here.
		timeout := c.opts.WriteTimeout
		if c.closing {
			timeout = min(timeout, closeHandshakeTimeout)
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
		c.mu.Unlock()

		headers, bufs = headers[:0], bufs[:0]
		if len(control) > 0 {
			bufs = append(bufs, control)
		}
		headers = growFor(headers, 10*len(batch))
		for _, m := range batch {
			start := len(headers)
			headers = appendFrameHeader(headers, byte(m.typ), len(m.data))
			bufs = append(bufs, headers[start:], m.data)
		}
		if closing != nil {
			bufs = append(bufs, closing)
		}
		clear(batch)
		out := bufs // WriteTo consumes its receiver; bufs keeps the array
		if _, err := out.WriteTo(c.conn); err != nil {
			c.writeFailed(err)
			return
		}
		if n > 0 {
			c.touch()
		}
		if closing != nil {
			c.closeWritten()
		}
	}
}

// growFor makes room for n more bytes without moving what is there
// while frames are appended: the slices handed to bufs stay valid.
func growFor(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		return make([]byte, len(b), len(b)+n)
	}
	return b
}

// closeWritten runs once our close frame is out: the socket closes now when
// there is nothing to wait for, else when the peer answers or in 5s.
func (c *Conn) closeWritten() {
	c.mu.Lock()
	if c.dropAfter {
		c.mu.Unlock()
		c.closeSocket()
		return
	}
	c.closeBy = time.Now().Add(closeHandshakeTimeout).UnixNano()
	if c.timer != nil {
		c.timer.Reset(closeHandshakeTimeout)
	}
	c.mu.Unlock()
}

func (c *Conn) writeFailed(err error) {
	c.mu.Lock()
	c.writing = false
	c.mu.Unlock()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.drop(StatusPolicyViolation, ReasonWriteTimeout, false)
		return
	}
	c.drop(StatusAbnormal, ReasonWriteFailed, false)
}

// closeFrame encodes a close frame; 1005 (no status) makes one without a
// payload. The reason is cut to the 123 bytes a control frame leaves, on a
// rune boundary.
func closeFrame(code StatusCode, reason string) []byte {
	if code == StatusNoStatus {
		return appendFrameHeader(nil, byte(ws.OpClose), 0)
	}
	if len(reason) > ws.MaxControlFramePayloadSize-2 {
		reason = reason[:ws.MaxControlFramePayloadSize-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b := appendFrameHeader(make([]byte, 0, 4+len(reason)), byte(ws.OpClose), 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
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
