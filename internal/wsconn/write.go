package wsconn

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
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

// startWriterLocked starts the writer unless it runs, the socket is closed,
// or the connection is not started yet (Start then starts it). c.mu is
// held. The writer exists only while there is work.
func (c *Conn) startWriterLocked() {
	if c.started && !c.writing && !c.sockClosed {
		c.writing = true
		workers.Go(c.writeLoop)
	}
}

// writeBatch runs on a reader (readAvailable) once the frames it read are
// handled: it writes the answers they queued with ReplyFrame on the
// reader's goroutine, in one writev, instead of handing each to a writer
// goroutine to wake; what the socket does not take waits for the poller,
// as the writer's would. batching stays as keep says: a reader that goes
// on reading keeps batching until it stops.
func (c *Conn) writeBatch(keep bool) {
	c.mu.Lock()
	c.batching = keep
	start := c.batched && c.started && !c.writing && !c.sockClosed
	c.batched = false
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		c.write(true)
	}
}

// writeLoop writes control frames, then everything queued, then the close
// frame, until nothing is left; it is the only writer of the socket. It
// takes the queue whole and hands back the previous one, emptied. Its
// state and the queue's arrays come from pools and go back when the burst
// is over: an idle connection keeps none, and a busy one allocates none.
//
// A watched socket is written without ever waiting: when it takes no more,
// the unwritten frames stay on the connection (c.stalled), the poller is
// asked to say when it is writable, and the task ends; WriteTimeout then
// bounds the wait. Other connections (TLS) write with a deadline instead.
func (c *Conn) writeLoop() { c.write(false) }

// write is the writer: writeLoop's body, run by a writer goroutine or, when
// inline, by a reader (writeBatch), which writes what it takes once and
// hands what comes meanwhile to a writer goroutine.
func (c *Conn) write(inline bool) {
	c.mu.Lock()
	s := c.stalled
	c.stalled, c.writeBy = nil, 0
	c.mu.Unlock()
	if s == nil {
		s = scratches.Get().(*scratch)
	}
	wrote := false
	for {
		if len(s.out) == 0 {
			if wrote && inline {
				if !c.take(s) {
					s.release()
					return
				}
				// More came while the reader wrote its answers: a writer
				// goroutine goes on with it, and the reader reads again.
				c.mu.Lock()
				c.stalled = s
				c.mu.Unlock()
				workers.Go(c.writeLoop)
				return
			}
			if wrote {
				// Let the producers run before taking the queue again, so
				// that in a fan-out one writev carries more messages: in
				// fanout 1000x5000, 85k writev calls become 57k and the
				// server's CPU falls by a third. The first write of a burst
				// (a lone reply) is not delayed.
				runtime.Gosched()
			}
			if !c.take(s) {
				s.release()
				return
			}
		}
		var n int
		var err error
		if c.watch != nil {
			n, err = c.watch.Writev(s.out)
		} else {
			n, err = c.writeBlocking(s.out)
		}
		if n > 0 {
			wrote = true
			consume(&s.out, n)
		}
		switch {
		case errors.Is(err, syscall.EAGAIN):
			c.stall(s)
			return
		case err != nil:
			s.release()
			c.writeFailed(err)
			return
		}
		if len(s.out) == 0 {
			if s.data {
				s.data = false
				if !inline { // a reader's messages were just read: deliver touched
					c.touch()
				}
			}
			if s.closing {
				s.closing = false
				c.closeWritten()
			}
		}
	}
}

// take moves control frames, then the queue, then (with nothing else to
// write) the close frame into s.out, and reports whether there is anything
// to write. When there is not, the writer is done.
func (c *Conn) take(s *scratch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sockClosed {
		c.writing = false
		return false
	}
	if len(c.control) > 0 {
		s.out = append(s.out, c.control)
		c.control = nil
	}
	if batch := c.queue; len(batch) > 0 {
		s.out = append(s.out, batch...)
		s.data = true
		clear(batch)
		c.queue, s.spare = s.spare[:0], batch[:0]
		c.queuedBytes = 0
	}
	if len(s.out) == 0 && c.closing && !c.closeSent {
		s.out = append(s.out, closeFrame(c.closeInfo.Code, c.closeInfo.Reason))
		s.closing, c.closeSent = true, true
	}
	if len(s.out) == 0 {
		c.writing = false
		recycle(c.queue) // an idle connection keeps no queue
		c.queue = nil
		return false
	}
	return true
}

// stall parks s on the connection until the poller says the socket is
// writable again; a closed socket ends the writer instead.
func (c *Conn) stall(s *scratch) {
	c.mu.Lock()
	if c.sockClosed {
		c.writing = false
		c.mu.Unlock()
		s.release()
		return
	}
	timeout := c.opts.WriteTimeout
	if c.closing {
		timeout = min(timeout, closeHandshakeTimeout)
	}
	now := time.Now()
	c.stalled, c.writeBy = s, now.Add(timeout).UnixNano()
	c.armLocked(c.nextTick(now))
	c.mu.Unlock()
	if err := c.watch.ArmWrite(); err != nil {
		c.mu.Lock()
		if c.stalled == s {
			c.stalled, c.writeBy = nil, 0
		}
		c.writing = false
		c.mu.Unlock()
		s.release()
		// Never told when it is writable, the writer could not go on.
		c.drop(StatusInternalError, ReasonWatchFailed, false)
	}
}

// writeBlocking writes up to maxBatchMessages frames (and, unless the first
// is larger, maxBatchBytes) with one writev under a fresh deadline.
func (c *Conn) writeBlocking(out [][]byte) (int, error) {
	n, size := 0, 0
	for n < len(out) && n < maxBatchMessages && (n == 0 || size+len(out[n]) <= maxBatchBytes) {
		size += len(out[n])
		n++
	}
	c.mu.Lock()
	// Set under c.mu, so that a close shortening it is not undone here.
	timeout := c.opts.WriteTimeout
	if c.closing {
		timeout = min(timeout, closeHandshakeTimeout)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	c.mu.Unlock()
	bufs := net.Buffers(slices.Clone(out[:n])) // WriteTo consumes what it is given
	wrote, err := bufs.WriteTo(c.conn)
	return int(wrote), err
}

// consume drops the first n bytes of out.
func consume(out *[][]byte, n int) {
	v := *out
	i := 0
	for i < len(v) && n >= len(v[i]) {
		n -= len(v[i])
		v[i] = nil
		i++
	}
	if i < len(v) && n > 0 {
		v[i] = v[i][n:]
	}
	*out = v[i:]
	if len(*out) == 0 {
		*out = v[:0]
	}
}

// scratch is a writer's state, pooled between bursts: the frames taken
// from the queue and not yet written, and the queue's previous array.
type scratch struct {
	out     [][]byte
	spare   [][]byte
	data    bool // out holds messages: their writing counts as activity
	closing bool // out ends with our close frame
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// release gives s and its arrays back to their pools.
func (s *scratch) release() {
	clear(s.out[:cap(s.out)]) // the pool must not keep messages alive
	s.out, s.data, s.closing = s.out[:0], false, false
	recycle(s.spare)
	s.spare = nil
	scratches.Put(s)
}

// A send queue lives on pooled arrays of 16, 64, 256 and 1024 frames:
// most bursts fit the first, a fan-out's grow through the others, and none
// is allocated anew for each burst. Longer queues grow as slices do.
var (
	queues16   = sync.Pool{New: func() any { return new([16][]byte) }}
	queues64   = sync.Pool{New: func() any { return new([64][]byte) }}
	queues256  = sync.Pool{New: func() any { return new([256][]byte) }}
	queues1024 = sync.Pool{New: func() any { return new([1024][]byte) }}
)

// newQueue returns an empty send queue on a pooled array.
func newQueue() [][]byte { return queues16.Get().(*[16][]byte)[:0] }

// push appends f to q, moving it to the next pooled array when it is full.
func push(q [][]byte, f []byte) [][]byte {
	if len(q) == cap(q) {
		var bigger [][]byte
		switch cap(q) {
		case 16:
			bigger = queues64.Get().(*[64][]byte)[:0]
		case 64:
			bigger = queues256.Get().(*[256][]byte)[:0]
		case 256:
			bigger = queues1024.Get().(*[1024][]byte)[:0]
		}
		if bigger != nil {
			bigger = append(bigger, q...)
			recycle(q)
			q = bigger
		}
	}
	return append(q, f)
}

// recycle clears a queue's array and gives it back to its pool, if it came
// from one.
func recycle(q [][]byte) {
	q = q[:cap(q)]
	switch cap(q) {
	case 16:
		clear(q)
		queues16.Put((*[16][]byte)(q))
	case 64:
		clear(q)
		queues64.Put((*[64][]byte)(q))
	case 256:
		clear(q)
		queues256.Put((*[256][]byte)(q))
	case 1024:
		clear(q)
		queues1024.Put((*[1024][]byte)(q))
	}
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
	if c.lingerAfter { // the client reads our close frame, then EOF
		if c.watch != nil {
			_ = c.watch.CloseWrite()
		} else if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
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
