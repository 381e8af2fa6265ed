package wsconn

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"golang.org/x/time/rate"
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

// readBufferSize is the size of the pooled read buffers. A reader holds one
// only while bytes are waiting; larger payloads bypass it.
const readBufferSize = 4096

// reader is a pooled read buffer with room for a frame header.
type reader struct {
	br     *bufio.Reader
	header [ws.MaxHeaderSize]byte
}

var readers = sync.Pool{New: func() any { return &reader{br: bufio.NewReaderSize(nil, readBufferSize)} }}

// ownBufferSize is the read buffer of a connection read on a goroutine of
// its own (TLS, other systems): it is held for the connection's life.
const ownBufferSize = 512

// readReady runs when the poller sees bytes (or an end) on the socket.
func (c *Conn) readReady() {
	c.mu.Lock()
	if c.reading || c.sockClosed {
		c.mu.Unlock()
		return
	}
	c.reading = true
	c.mu.Unlock()
	c.readWaiting()
}

// readWaiting reads every frame already waiting, then gives the buffer back
// and rearms the poller. c.reading is set.
func (c *Conn) readWaiting() {
	r := readers.Get().(*reader)
	r.br.Reset(c.source())
	var err error
	if c.discarding {
		err = discard(r.br) // readiness: this read does not block
	}
	for err == nil && !c.discarding {
		err = c.readFrame(r)
		if errors.Is(err, errDiscard) {
			c.discarding, err = true, nil
			_, _ = r.br.Discard(r.br.Buffered())
			break
		}
		if r.br.Buffered() == 0 && !c.pending() {
			break
		}
	}
	r.br.Reset(nil)
	readers.Put(r)
	c.endRead(err)
}

// readAll reads the connection until it ends, on a goroutine of its own.
func (c *Conn) readAll() {
	r := &reader{br: bufio.NewReaderSize(c.source(), ownBufferSize)}
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
// is rearmed for the next bytes.
func (c *Conn) endRead(err error) {
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
		return
	}
	w.Rearm()
}

// readFrame reads one frame and acts on it: control frames are answered,
// data frames are gathered into messages for OnMessage. A broken rule
// closes the connection and returns errDiscard.
func (c *Conn) readFrame(r *reader) error {
	h, err := ws.ReadHeaderBuffer(r.br, r.header[:])
	if err != nil {
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			return c.fail(StatusProtocolError, err.Error())
		}
		return err
	}
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
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
	if c.partial != nil {
		held = int64(len(c.partial.data))
	}
	if !h.OpCode.IsControl() && c.opts.ReadLimit >= 0 && held+h.Length > c.opts.ReadLimit {
		// Refused on the header: nothing of the payload is read or held.
		return c.fail(StatusMessageTooBig, ReasonTooBig)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return err
	}
	ws.Cipher(payload, h.Mask, 0)

	switch h.OpCode {
	case ws.OpPing:
		c.pong(payload)
		return nil
	case ws.OpPong:
		return nil
	case ws.OpClose:
		return c.peerClosed(payload)
	}
	switch {
	case h.Fin && c.partial == nil:
		return c.deliver(Message{Type: MessageType(h.OpCode), Data: payload})
	case c.partial == nil:
		c.partial = &partial{typ: MessageType(h.OpCode), data: payload}
		return nil
	}
	c.partial.data = append(c.partial.data, payload...)
	if !h.Fin {
		return nil
	}
	m := Message{Type: c.partial.typ, Data: c.partial.data}
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
	c.touch()
	c.inCallback.Store(true)
	c.handler.OnMessage(m)
	c.inCallback.Store(false)
	return nil
}

// pong answers a client's ping, unless the client pings faster than
// PingRate: each pong costs a write.
func (c *Conn) pong(payload []byte) {
	if c.opts.PingRate >= 0 {
		if c.pings == nil {
			c.pings = rate.NewLimiter(rate.Limit(c.opts.PingRate), max(int(c.opts.PingRate), 1))
		}
		if !c.pings.Allow() {
			c.mu.Lock()
			c.closeLocked(StatusPolicyViolation, ReasonPingFlood, false, false)
			c.mu.Unlock()
			return
		}
	}
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
