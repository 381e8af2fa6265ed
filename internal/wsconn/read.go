package wsconn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"golang.org/x/time/rate"

	"github.com/switchboard-gateway/switchboard/internal/netpoll"
)

// errStop ends a reader that has nothing more to read: the connection is
// closing and the socket is, or is about to be, closed.
var errStop = errors.New("wsconn: stop reading")

// errDiscard turns a reader into a discarder: the client broke a rule,
// frames are no longer parsed, and what it still sends is read and dropped
// until it hangs up or the close handshake's time is over. Closing a socket
// with unread bytes would send a reset, and the client might never read its
// close frame.
var errDiscard = errors.New("wsconn: discard input")

// readBufferSize is the size of the pooled read buffers of watched sockets.
// A reader holds one only while the socket has bytes; a frame larger than
// the buffer is gathered in an array that grows with the bytes that
// arrived (grow), never to the length its header claims.
const readBufferSize = 4096

// readSpace is what the reader of a watched socket borrows while the
// socket has bytes: the read buffer, and the header reader of parse, so
// that a frame costs no allocation of its own to parse. The reader, which
// holds the only pointer, comes first: the collector scans no further.
type readSpace struct {
	r      bytes.Reader
	header [ws.MaxHeaderSize]byte
	buf    [readBufferSize]byte
}

var readSpaces = sync.Pool{New: func() any { return new(readSpace) }}

// reader is the stream reader of a connection read on a goroutine of its
// own, with room for a frame header.
type reader struct {
	br     *bufio.Reader
	probe  *netpoll.Prober // what waits in the socket, beyond br
	header [ws.MaxHeaderSize]byte
}

// ownBufferSize is the read buffer of a connection read on a goroutine of
// its own (TLS, other systems): it is held for the connection's life.
const ownBufferSize = 512

// readReady runs when the poller sees bytes (or an end) on the socket. It
// reads until the socket has nothing left, and again, on the same
// goroutine, as long as more bytes arrived before it rearmed.
func (c *Conn) readReady() {
	for {
		c.mu.Lock()
		if c.reading || c.sockClosed {
			c.mu.Unlock()
			return
		}
		c.reading = true
		c.batching = true // readAvailable's answers wait for the end of each read (writeBatch)
		c.mu.Unlock()
		if !c.endRead(c.readAvailable()) {
			return
		}
	}
}

// readAvailable reads and handles every frame the socket holds, without
// waiting: a frame not yet whole stays in c.in until the next readiness,
// and no goroutine waits for its rest. c.reading and c.batching are set.
//
// The answers the frames' handler queues with ReplyFrame are written by
// the reader itself after each read's frames (writeBatch): one writev for
// them, and no writer goroutine to wake.
func (c *Conn) readAvailable() error {
	sp := readSpaces.Get().(*readSpace)
	defer readSpaces.Put(sp)
	pooled := &sp.buf
	defer c.writeBatch(false)
	b, need, drained := pooled[:0], 0, false
	if in := c.in; in != nil {
		c.in, need = nil, in.need
		if cap(in.b) <= readBufferSize {
			b = append(b, in.b...) // a small start: read the rest into the pooled buffer
		} else {
			b = in.b
		}
	}
	for {
		if len(b) > 0 && !c.discarding {
			var off int
			var err error
			off, need, err = c.parse(sp, b)
			if off > 0 {
				c.writeBatch(true)
			}
			b = b[:copy(b, b[off:])]
			if errors.Is(err, errDiscard) {
				c.discarding, b = true, b[:0]
			} else if err != nil {
				return err
			}
		}
		if drained {
			c.keep(b, pooled, need)
			return nil
		}
		if len(b) == cap(b) {
			b = grow(b, need, c.watch.Buffered())
		}
		room := cap(b) - len(b)
		n, err := c.watch.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case errors.Is(err, syscall.EAGAIN):
			c.keep(b, pooled, need)
			return nil
		case err != nil:
			return err
		case c.discarding:
			b = b[:0]
		}
		// A read that filled less than the room it was given took all the
		// socket held (epoll(7)): what arrives later fires the poller
		// again, and a read that would only find EAGAIN is saved. A socket
		// whose peer hung up is read to its end, which no later readiness
		// would announce. (TCP's urgent data also stops a read short, with
		// bytes left; a client that sends it waits for its next bytes to
		// be read, and delays no one else.)
		drained = n < room && !c.watch.HungUp()
	}
}

// keep holds the start of a frame not yet whole, the last bytes read
// (b), in c.in until the next readiness.
func (c *Conn) keep(b []byte, pooled *[readBufferSize]byte, need int) {
	if len(b) == 0 || c.discarding {
		c.frameDone()
		return
	}
	kept := b
	if &b[:1][0] == &pooled[0] || cap(b) > max(need, readBufferSize) {
		// The pooled buffer goes back, and a large one is not held
		// for a small remainder: the start is kept in an array of
		// its own length.
		kept = bytes.Clone(b)
	}
	c.in = &input{b: kept, need: need}
	c.frameStarted()
}

// grow returns b, which is full, in an array with room for the bytes
// that already arrived and wait to be read (arrived), or twice as large if
// that is more, but no larger than the frame being gathered needs (need,
// once its header is known). Memory for a frame thus grows with the bytes
// that arrived, not with the length a header claims: a header alone
// reserves nothing, and a frame whose bytes are all there is gathered in
// one array of its size.
func grow(b []byte, need, arrived int) []byte {
	n := max(2*cap(b), len(b)+arrived)
	if need > len(b) {
		n = min(n, need)
	}
	return append(make([]byte, 0, n), b...)
}

// parse handles the whole frames at the start of b and returns how many
// bytes they took, and the length of the frame that follows when its
// header is there but not all of it.
func (c *Conn) parse(sp *readSpace, b []byte) (off, need int, err error) {
	r := &sp.r
	defer r.Reset(nil) // the pool must not keep b alive
	now := time.Now()  // one clock reading for the frames of one read
	for off < len(b) {
		r.Reset(b[off:])
		h, err := ws.ReadHeaderBuffer(r, sp.header[:])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return off, 0, nil // the header's rest is on its way
		}
		if err == nil {
			err = c.checkHeader(h, now)
		} else {
			err = c.fail(StatusProtocolError, err.Error())
		}
		if err != nil {
			return off, 0, err
		}
		// The header's own length, as read: a length written in more
		// bytes than it needs (legal to gobwas/ws, as in the stream
		// reader) makes it longer than ws.HeaderSize says. Compared before
		// adding, so that a length near 2^63 (no ReadLimit) cannot wrap.
		hdr := len(b) - off - r.Len()
		if h.Length > int64(r.Len()) {
			return off, int(min(int64(hdr)+h.Length, math.MaxInt)), nil
		}
		size := hdr + int(h.Length)
		payload := bytes.Clone(b[off+size-int(h.Length) : off+size]) // OnMessage keeps it
		off += size
		c.frameDone()
		ws.Cipher(payload, h.Mask, 0)
		if err := c.handleFrame(h, payload, now); err != nil {
			return off, 0, err
		}
	}
	return off, 0, nil
}

// readAll reads the connection until it ends, on a goroutine of its own.
func (c *Conn) readAll() {
	var src io.Reader = c.conn
	if c.in != nil { // the bytes the client sent with its handshake
		src = io.MultiReader(bytes.NewReader(c.in.b), c.conn)
		c.in = nil
	}
	r := &reader{br: bufio.NewReaderSize(src, ownBufferSize), probe: netpoll.NewProber(c.conn)}
	var err error
	for err == nil {
		if c.discarding {
			err = discard(r.br)
			continue
		}
		if err = c.readFrame(r); errors.Is(err, errDiscard) {
			c.discarding, err = true, nil
		}
	}
	c.endRead(err)
}

// discard drops what is buffered, or else what one read brings.
func discard(br *bufio.Reader) error {
	var err error
	if br.Buffered() == 0 {
		_, err = br.Peek(1)
	}
	_, _ = br.Discard(br.Buffered())
	return err
}

// endRead ends a reader: on err the connection ends, otherwise the poller
// is rearmed for the next bytes; again reports that bytes arrived while
// it read, which no readiness will announce: the caller reads again.
func (c *Conn) endRead(err error) (again bool) {
	if err != nil && !errors.Is(err, errStop) {
		// The peer went away without a close frame, or the socket failed.
		c.drop(StatusAbnormal, "", true)
	}
	c.mu.Lock()
	c.reading = false
	w, sockClosed := c.watch, c.sockClosed
	c.mu.Unlock()
	if sockClosed || err != nil {
		c.finishIfDone()
		return false
	}
	return w.Rearm()
}

// readFrame reads one frame from a stream and acts on it (handleFrame).
func (c *Conn) readFrame(r *reader) error {
	h, err := ws.ReadHeaderBuffer(r.br, r.header[:])
	if err != nil {
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			return c.fail(StatusProtocolError, err.Error())
		}
		return err
	}
	if err := c.checkHeader(h, time.Now()); err != nil {
		return err
	}
	if int64(r.br.Buffered()) < h.Length {
		c.frameStarted()
	}
	payload, err := readPayload(r, int(h.Length))
	if err != nil {
		return err
	}
	c.frameDone()
	ws.Cipher(payload, h.Mask, 0)
	return c.handleFrame(h, payload, time.Now())
}

// readPayload reads a payload of n bytes into an array that grows with
// what arrived (grow), not to n at once.
func readPayload(r *reader, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, max(r.br.Buffered(), ownBufferSize)))
	for len(b) < n {
		if len(b) == cap(b) {
			b = grow(b, n, r.br.Buffered()+r.probe.Waiting())
		}
		m, err := r.br.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}

// frameStarted notes that a frame has begun and not yet arrived whole,
// unless an earlier one is still pending: it must be whole within
// FrameTimeout, which the connection's timer enforces (tick).
func (c *Conn) frameStarted() {
	if c.opts.FrameTimeout <= 0 || c.frameSince.Load() != 0 {
		return
	}
	now := time.Now()
	c.frameSince.Store(now.UnixNano())
	c.mu.Lock()
	if !c.finished {
		c.armLocked(c.nextTick(now))
	}
	c.mu.Unlock()
}

// frameDone notes that no frame is pending.
func (c *Conn) frameDone() {
	if c.frameSince.Load() != 0 {
		c.frameSince.Store(0)
	}
}

// checkHeader applies RFC 6455's rules and the read limit to a frame's
// header, before any of its payload is read, at now. A broken rule closes
// the connection and returns errDiscard (or errStop, for an unmasked frame).
func (c *Conn) checkHeader(h ws.Header, now time.Time) error {
	c.lastRead.Store(now.UnixNano())
	state := ws.StateServerSide
	if c.partial != nil {
		state |= ws.StateFragmented
	}
	if err := ws.CheckHeader(h, state); err != nil {
		if errors.Is(err, ws.ErrProtocolMaskRequired) {
			// RFC 6455 §5.1: the server closes, with or without a close frame.
			c.drop(StatusProtocolError, err.Error(), false)
			return errStop
		}
		return c.fail(StatusProtocolError, err.Error())
	}
	var held int64
	if c.partial != nil && !h.OpCode.IsControl() {
		held = int64(len(c.partial.data))
		if c.opts.MaxFragments >= 0 && c.partial.frames >= c.opts.MaxFragments {
			return c.fail(StatusMessageTooBig, ReasonFragments)
		}
	}
	if !h.OpCode.IsControl() && c.opts.ReadLimit >= 0 && held+h.Length > c.opts.ReadLimit {
		// Refused on the header: nothing of the payload is read or held.
		return c.fail(StatusMessageTooBig, ReasonTooBig)
	}
	return nil
}

// handleFrame acts on a frame: control frames are answered, data frames
// are gathered into messages for OnMessage; now is when it was read.
func (c *Conn) handleFrame(h ws.Header, payload []byte, now time.Time) error {
	switch h.OpCode {
	case ws.OpPing:
		if !c.allowControl() {
			return c.fail(StatusPolicyViolation, ReasonPingFlood)
		}
		c.pong(payload)
		return nil
	case ws.OpPong:
		if !c.pongAsked() && !c.allowControl() {
			return c.fail(StatusPolicyViolation, ReasonFrameFlood)
		}
		return nil
	case ws.OpClose:
		// The answers to the messages before it go out before the close
		// drops what is queued.
		c.writeBatch(c.batching)
		return c.peerClosed(payload)
	}
	if !h.Fin && len(payload) == 0 && !c.allowControl() {
		// An empty fragment carries nothing and ends no message: like a
		// pong, it costs a parse and no message budget counts it.
		return c.fail(StatusPolicyViolation, ReasonFrameFlood)
	}
	switch {
	case h.Fin && c.partial == nil:
		return c.deliver(Message{Type: MessageType(h.OpCode), Data: payload, Received: now})
	case c.partial == nil:
		c.partial = &partial{typ: MessageType(h.OpCode), data: payload, frames: 1}
		return nil
	}
	c.partial.frames++
	c.partial.data = append(c.partial.data, payload...)
	if !h.Fin {
		return nil
	}
	m := Message{Type: c.partial.typ, Data: c.partial.data, Received: now}
	c.partial = nil
	return c.deliver(m)
}

// deliver hands a whole message to OnMessage, unless the connection is
// closing: then it is only read, as RFC 6455 §1.4 asks, and dropped.
func (c *Conn) deliver(m Message) error {
	if m.Type == Text && !utf8.Valid(m.Data) {
		// RFC 6455 §8.1: a text message must be UTF-8.
		return c.fail(StatusInvalidPayload, ReasonInvalidUTF8)
	}
	if c.Closing() {
		return nil
	}
	c.lastActive.Store(m.Received.UnixNano())
	c.inCallback.Store(true)
	c.handler.OnMessage(m)
	c.inCallback.Store(false)
	return nil
}

// allowControl reports whether the client may send one more frame that
// no message budget counts: a ping, a pong or an empty fragment. They
// share one limiter of PingRate per second, with bursts of as many.
func (c *Conn) allowControl() bool {
	if c.opts.PingRate < 0 {
		return true
	}
	if c.pings == nil {
		c.pings = rate.NewLimiter(rate.Limit(c.opts.PingRate), max(int(c.opts.PingRate), 1))
	}
	return c.pings.Allow()
}

// pongAsked reports whether a pong answers one of our pings, which is
// then no longer awaited: only unsolicited pongs count against PingRate.
func (c *Conn) pongAsked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingsOut == 0 {
		return false
	}
	c.pingsOut--
	return true
}

// pong answers a client's ping.
func (c *Conn) pong(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.control = append(appendFrameHeader(c.control, byte(ws.OpPong), len(payload)), payload...)
	c.startWriterLocked()
}

// peerClosed handles the client's close frame: it is the answer to ours, or
// the client's own close, which is echoed. Either way the socket is closed
// once our close frame is out.
func (c *Conn) peerClosed(payload []byte) error {
	code, reason := StatusNoStatus, ""
	if len(payload) > 0 {
		wc, wr := ws.ParseCloseFrameData(payload)
		if len(payload) < 2 {
			return c.fail(StatusProtocolError, "Close frame payload of 1 byte")
		}
		if err := ws.CheckCloseFrameData(wc, wr); err != nil {
			if errors.Is(err, ws.ErrProtocolInvalidUTF8) {
				return c.fail(StatusInvalidPayload, err.Error())
			}
			return c.fail(StatusProtocolError, err.Error())
		}
		code, reason = StatusCode(wc), wr
	}
	c.mu.Lock()
	c.closeLocked(code, reason, true, false) // 1005 is echoed as an empty close frame
	c.dropAfter = true
	sent := c.closeSent
	c.mu.Unlock()
	if sent {
		c.closeSocket() // the answer to our close frame
	}
	return errStop
}
