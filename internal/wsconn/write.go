package wsconn

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/switchboard-gateway/switchboard/internal/workers"
)

// A writev carries at most maxBatchMessages messages and, unless one
// message is larger, maxBatchBytes; the write deadline is renewed between
// writes, so that a slow but moving peer is not cut off.
const (
	maxBatchMessages = 1000 // an iovec each: Linux's IOV_MAX is 1024
	maxBatchBytes    = 1 << 20
)

// startWriterLocked starts the writer unless it runs or the socket is
// closed. c.mu is held. The writer exists only while there is work.
func (c *Conn) startWriterLocked() {
	if !c.writing && !c.sockClosed {
		c.writing = true
		workers.Go(c.writeLoop)
	}
}

// writeLoop writes control frames, then everything queued, then the close
// frame, until nothing is left; it is the only writer of the socket. It
// takes the queue whole and hands back the previous one, emptied. Its
// buffers and the queue's first array come from pools and go back when the
// burst is over: an idle connection keeps none, and a busy one allocates
// none.
func (c *Conn) writeLoop() {
	s := scratches.Get().(*scratch)
	defer scratches.Put(s)
	var spare [][]byte
	for {
		if spare != nil {
			// After a write, let the producers run before taking the queue
			// again, so that in a fan-out one writev carries more messages:
			// in fanout 1000x5000, 85k writev calls become 57k and the
			// server's CPU falls by a third. The first write of a burst (a
			// lone reply) is not delayed.
			runtime.Gosched()
		}
		c.mu.Lock()
		control, batch := c.control, c.queue
		var closing []byte
		if len(control) == 0 && len(batch) == 0 && c.closing && !c.closeSent {
			closing, c.closeSent = closeFrame(c.closeInfo.Code, c.closeInfo.Reason), true
		}
		if len(control) == 0 && len(batch) == 0 && closing == nil || c.sockClosed {
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			recycle(batch)
			recycle(spare)
			return
		}
		c.control, c.queue, c.queuedBytes = nil, spare[:0], 0
		c.mu.Unlock()

		rest := batch
		for first := true; first || len(rest) > 0; first = false {
			n, size := 0, 0
			for n < len(rest) && n < maxBatchMessages && (n == 0 || size+len(rest[n]) <= maxBatchBytes) {
				size += len(rest[n])
				n++
			}
			s.bufs = s.bufs[:0]
			if first && len(control) > 0 {
				s.bufs = append(s.bufs, control)
			}
			s.bufs = append(s.bufs, rest[:n]...)
			rest = rest[n:]
			if len(rest) == 0 && closing != nil {
				s.bufs = append(s.bufs, closing)
			}
			err := c.write(s.bufs)
			clear(s.bufs) // the pool must not keep messages alive
			if err != nil {
				c.writeFailed(err)
				return
			}
		}
		if len(batch) > 0 {
			c.touch()
		}
		if closing != nil {
			c.closeWritten()
		}
		clear(batch)
		spare = batch[:0]
	}
}

// scratch is a writer's iovecs, pooled between bursts.
type scratch struct {
	bufs net.Buffers
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// queueArrayLen is the length of a send queue's first array: most bursts
// fit, larger ones grow the queue as usual.
const queueArrayLen = 16

var queueArrays = sync.Pool{New: func() any { return new([queueArrayLen][]byte) }}

// newQueue returns an empty send queue on a pooled array.
func newQueue() [][]byte { return queueArrays.Get().(*[queueArrayLen][]byte)[:0] }

// recycle gives a queue's array back to the pool if it is one of its own.
func recycle(q [][]byte) {
	if cap(q) == queueArrayLen {
		q = q[:queueArrayLen]
		clear(q)
		queueArrays.Put((*[queueArrayLen][]byte)(q))
	}
}

// write sends bufs with one writev under a fresh deadline.
func (c *Conn) write(bufs net.Buffers) error {
	c.mu.Lock()
	// Set under c.mu, so that a close shortening it is not undone here.
	timeout := c.opts.WriteTimeout
	if c.closing {
		timeout = min(timeout, closeHandshakeTimeout)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	c.mu.Unlock()
	_, err := bufs.WriteTo(c.conn) // consumes a copy of the slice header: bufs keeps its array
	return err
}

// closeWritten runs once our close frame is out: the socket closes now when
// there is nothing to wait for, else when the peer answers or hangs up, or
// in 5s.
func (c *Conn) closeWritten() {
	c.mu.Lock()
	if c.dropAfter {
		c.mu.Unlock()
		c.closeSocket()
		return
	}
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok && c.lingerAfter {
		_ = cw.CloseWrite() // the client reads our close frame, then EOF
	}
	c.closeBy = time.Now().Add(closeHandshakeTimeout).UnixNano()
	c.armLocked(closeHandshakeTimeout)
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
