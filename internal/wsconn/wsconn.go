// Package wsconn terminates WebSocket connections: the upgrade, reading
// frames, a bounded send queue, keepalive pings, the idle and lifetime
// limits, and close codes. It knows nothing of routes, integrations,
// registries or auth.
//
// An idle connection costs no goroutine and no buffer: on Linux a shared
// epoll instance (package netpoll) starts a reader when bytes arrive, the
// reader borrows a pooled buffer for as long as bytes are waiting, and a
// writer exists only while messages are queued. One timer per connection
// drives pings and the idle and lifetime limits. Connections that cannot be
// watched (TLS, other systems) are read on a goroutine of their own instead,
// with the same code. The WebSocket protocol itself (handshake, frame
// headers, masking, checks) is github.com/gobwas/ws's.
package wsconn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/time/rate"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/netpoll"
	"github.com/switchboard-gateway/switchboard/internal/workers"
)

// StatusCode is a WebSocket close code.
type StatusCode int

// Close codes the gateway sends or reports.
const (
	StatusNormal          StatusCode = 1000 // DeleteConnection, or the client's normal close
	StatusGoingAway       StatusCode = 1001 // drain, idle timeout, lifetime limit
	StatusProtocolError   StatusCode = 1002 // the peer broke RFC 6455
	StatusUnsupportedData StatusCode = 1003
	StatusNoStatus        StatusCode = 1005 // the peer closed without a code
	StatusAbnormal        StatusCode = 1006 // the TCP connection dropped without a close frame
	StatusInvalidPayload  StatusCode = 1007
	StatusPolicyViolation StatusCode = 1008 // slow consumer: the send queue overflowed
	StatusMessageTooBig   StatusCode = 1009 // a client message exceeded the read limit
	StatusInternalError   StatusCode = 1011
)

// Close reasons the connection layer sends.
const (
	ReasonGoingAway    = "Going away"
	ReasonIdle         = "Idle timeout"
	ReasonLifetime     = "Maximum connection duration reached"
	ReasonSlowConsumer = "Slow consumer: send queue full"
	ReasonPingTimeout  = "Ping timeout"
	ReasonTooBig       = "Message too big"
	ReasonInvalidUTF8  = "Invalid UTF-8 in a text message"
	ReasonPingFlood    = "Too many pings"
	ReasonFrameFlood   = "Too many pongs or empty fragments"
	ReasonWriteTimeout = "Write timeout"
	ReasonWriteFailed  = "Write failed"
	ReasonWatchFailed  = "Internal error: socket no longer watched"
	ReasonFrameTimeout = "Frame not completed in time"
	ReasonFragments    = "Too many fragments"
)

// Errors returned by Send.
var (
	// ErrClosed is returned when sending on a connection that is closing or closed.
	ErrClosed = errors.New("wsconn: connection closed")
	// ErrQueueFull is returned when the send queue overflowed; the connection
	// is then being closed with StatusPolicyViolation.
	ErrQueueFull = errors.New("wsconn: send queue full")
)

// MessageType tells text frames from binary ones.
type MessageType int

// Message types.
const (
	Text   MessageType = MessageType(ws.OpText)
	Binary MessageType = MessageType(ws.OpBinary)
)

// Options configures a connection. The zero value is ready to use and applies
// API Gateway's limits. Every limit follows one convention: zero means its
// default, negative disables it.
type Options struct {
	// ReadLimit is the largest message a client may send, in bytes; a larger
	// one closes the connection with 1009. Zero means 128 KiB (API Gateway's).
	ReadLimit int64
	// SendQueueMessages is how many outbound messages may wait (those being
	// written no longer count). Zero means DefaultSendQueueMessages.
	SendQueueMessages int
	// SendQueueBytes is how many outbound bytes may wait; one message larger
	// than this is still accepted into an empty queue. Zero means
	// DefaultSendQueueBytes. Overflowing either bound closes the connection
	// with 1008.
	SendQueueBytes int
	// WriteTimeout bounds how long a write may make no progress: a peer that
	// stops reading is closed when it expires. Zero means 10s. It is not a
	// limit that can be disabled: a negative value means 10s too, since a
	// peer that never reads must be let go.
	WriteTimeout time.Duration
	// PingInterval is how often a ping is sent. Zero means 30s.
	PingInterval time.Duration
	// PongTimeout is how long a ping waits for its pong before the client
	// is dropped. Zero means 10s; negative never drops a client for a
	// missing pong.
	PongTimeout time.Duration
	// IdleTimeout closes (1001) a connection with no data message in either
	// direction for this long. Pings do not count. Zero means 10m (API Gateway's).
	IdleTimeout time.Duration
	// MaxLifetime closes (1001) a connection this long after it opened.
	// Zero means 2h (API Gateway's).
	MaxLifetime time.Duration
	// FrameTimeout is how long a frame may take to arrive whole once its
	// first bytes are in: a client that starts a frame and trickles the
	// rest (or never sends it) is closed with 1008 when it expires. The
	// memory held for a frame grows with the bytes that arrived, not with
	// the length its header claims. Zero means 30s; negative disables.
	FrameTimeout time.Duration
	// PingRate is how many pings, unsolicited pongs and empty non-final
	// fragments per second a client may send, together, with bursts of as
	// many: frames that cost a parse (a ping, a write too) and that no
	// message budget counts. A client sending more is closed with 1008.
	// Zero means 10; negative disables the check.
	PingRate float64
	// MaxFragments is how many frames one message may arrive in. Each
	// costs a frame header and bookkeeping, so a message sent a byte per
	// frame within ReadLimit costs far more than its size says; one more
	// frame than this closes the connection with 1009 "Too many
	// fragments" (RFC 6455 §7.4.1: a message too big to process), refused
	// on its header. Zero means DefaultMaxFragments; negative disables.
	MaxFragments int
}

// DefaultMaxFragments is MaxFragments' default: a 128 KiB message in
// frames of 128 bytes. Browsers send a message in one frame; libraries that
// fragment use frames of kilobytes.
const DefaultMaxFragments = 1024

// Default send queue bounds. A reader at a normal pace must never be cut
// by another client's burst: the queue holds a whole burst of messages of
// the largest size a client may send (the gateway's default MessageBurst
// of 128 KiB messages) with room to spare, so overflowing it means the
// client stopped reading, not that others were fast. The bytes are a
// bound, not an allocation: a broadcast's frame is shared by every queue.
const (
	DefaultSendQueueMessages = 1024
	DefaultSendQueueBytes    = 16 << 20
)

func (o Options) withDefaults() Options {
	if o.ReadLimit == 0 {
		o.ReadLimit = apigw.MaxMessageBytes
	}
	if o.SendQueueMessages == 0 {
		o.SendQueueMessages = DefaultSendQueueMessages
	}
	if o.SendQueueBytes == 0 {
		o.SendQueueBytes = DefaultSendQueueBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.PongTimeout == 0 {
		o.PongTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = apigw.IdleTimeout
	}
	if o.MaxLifetime == 0 {
		o.MaxLifetime = apigw.MaxConnectionDuration
	}
	if o.PingRate == 0 {
		o.PingRate = 10
	}
	if o.FrameTimeout == 0 {
		o.FrameTimeout = 30 * time.Second
	}
	if o.MaxFragments == 0 {
		o.MaxFragments = DefaultMaxFragments
	}
	return o
}

// CloseInfo says how a connection ended.
type CloseInfo struct {
	Code   StatusCode
	Reason string
	// ByPeer is true when the client closed, or the TCP connection dropped.
	ByPeer bool
}

// closeHandshakeTimeout is how long a peer has to answer our close frame
// before the socket is closed anyway.
const closeHandshakeTimeout = 5 * time.Second

// Message is one inbound WebSocket message.
type Message struct {
	Type MessageType
	Data []byte
	// Received is when its last frame was read: the clock reading of the
	// read that brought it.
	Received time.Time
}

// Frame is a message encoded once as a WebSocket frame, ready to be queued
// on any number of connections.
type Frame struct {
	b []byte // header and payload
}

// NewFrame encodes a message: FIN set, no mask (RFC 6455 §5.2).
func NewFrame(typ MessageType, data []byte) Frame {
	b := appendFrameHeader(make([]byte, 0, maxHeaderLen+len(data)), byte(typ), len(data))
	return Frame{b: append(b, data...)}
}

// maxHeaderLen is the longest header of a server frame.
const maxHeaderLen = 10

// Handler receives a connection's messages and its end; see Conn.Start.
type Handler interface {
	OnMessage(Message)
	OnClose(CloseInfo)
}

// Conn is one accepted WebSocket connection. Send, Close, Closing and
// LastActive are safe for concurrent use; Start is called once. Every field
// counts: an idle connection is this struct, the socket, and a timer if
// it has a deadline.
type Conn struct {
	conn     net.Conn
	opts     *Options         // the Upgrader's, shared
	openedAt int64            // unix nanoseconds
	watch    *netpoll.Watcher // nil: a goroutine of its own reads the connection
	handler  Handler

	lastActive atomic.Int64 // unix nanoseconds of the last data message
	lastRead   atomic.Int64 // unix nanoseconds of the last frame read from the peer
	inCallback atomic.Bool  // the reader is in OnMessage, not reading
	frameSince atomic.Int64 // unix nanoseconds when the frame not yet whole began, or 0

	// The reader's state: one reader runs at a time (see reading).
	pings      *rate.Limiter // see allowControl; created on the first use
	partial    *partial      // the fragmented message being reassembled, or nil
	in         *input        // a watched socket's bytes read but not yet whole frames, or nil
	discarding bool          // the client broke a rule: its bytes are dropped unread

	mu          sync.Mutex // guards the fields below
	queue       [][]byte   // encoded frames
	queuedBytes int
	control     []byte // encoded pongs and pings, written before queued messages
	started     bool   // Start ran: writers may start
	writing     bool   // a writer runs: a goroutine of its own, or a reader writing its answers
	reading     bool   // a reader is running
	// batching: a reader (readAvailable) is handling frames and writes the
	// answers they queue (ReplyFrame) itself once they are handled
	// (writeBatch), instead of starting a writer for each; batched: an
	// answer waits for that.
	batching    bool
	batched     bool
	closing     bool
	closeSent   bool
	dropAfter   bool        // close the socket once the close frame is written
	lingerAfter bool        // once it is written, close our side and drain the client's
	sockClosed  bool        // the socket is closed: no reader starts, no write succeeds
	finished    bool        // OnClose has been called
	pingsOut    int32       // pings sent and not yet answered by a pong; fits beside the bools
	closeInfo   *CloseInfo  // set by the first close; its frame follows the queue
	timer       *time.Timer // nil while there is no deadline
	nextPing    int64       // unix nanoseconds
	pingSentAt  int64       // unix nanoseconds of the unanswered ping, or 0
	closeBy     int64       // unix nanoseconds after which the socket is closed, or 0
	stalled     *scratch    // the writer's unwritten frames while the socket takes no more
	writeBy     int64       // unix nanoseconds by which a stalled writer must move, or 0
}

// input is the start of a frame whose rest has not arrived yet.
type input struct {
	b    []byte
	need int // the frame's whole length once its header is known, or 0
}

// partial is a fragmented message in reassembly.
type partial struct {
	typ    MessageType
	data   []byte
	frames int // frames received so far
}

// AcceptOptions are per-handshake choices made by the caller.
type AcceptOptions struct {
	// Subprotocol is put on the 101 response when the client offered it.
	Subprotocol string
	// BeforeOpen, when set, runs once the upgrade is accepted and before the
	// 101 response is written, with the Conn that Accept then returns (not
	// started: what is sent to it waits for Start). What it does, such as
	// registering the connection, is thus done before the client can know it
	// is connected. An error from it answers 500 instead of 101, and Accept
	// returns that error.
	BeforeOpen func(*Conn) error
}

// Upgrader accepts connections that share one set of Options.
type Upgrader struct {
	opts Options
}

// NewUpgrader returns an Upgrader for opts.
func NewUpgrader(opts Options) *Upgrader { return &Upgrader{opts: opts.withDefaults()} }

// Options returns the options its connections get, defaults applied.
func (u *Upgrader) Options() Options { return u.opts }

// Accept upgrades the request. On failure it has already written an HTTP
// error response. The connection does nothing until Start.
func (u *Upgrader) Accept(w http.ResponseWriter, r *http.Request, ao AcceptOptions) (*Conn, error) {
	hu := ws.HTTPUpgrader{}
	if p := ao.Subprotocol; p != "" {
		hu.Protocol = func(offered string) bool { return offered == p }
	}
	hw := &hijackHook{ResponseWriter: w, opts: &u.opts, beforeOpen: ao.BeforeOpen}
	conn, _, _, err := hu.Upgrade(r, hw)
	if err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		if hw.hookErr != nil {
			err = hw.hookErr
		}
		return nil, fmt.Errorf("accept: %w", err)
	}
	return hw.c, nil
}

// hijackHook hands the upgrader a hijacked connection whose writes run
// beforeOpen ahead of the 101 response, with the Conn built at the hijack.
type hijackHook struct {
	http.ResponseWriter
	opts       *Options
	beforeOpen func(*Conn) error

	c       *Conn // built by Hijack
	hookErr error // beforeOpen's error
}

// Hijack implements http.Hijacker for the upgrader.
func (h *hijackHook) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return conn, rw, err
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		// The client pipelined frames after its handshake: they are read first.
		early, _ = rw.Reader.Peek(n)
	}
	h.c = newConn(conn, early, h.opts)
	if h.beforeOpen == nil {
		return conn, rw, nil
	}
	// net/http's hijack gave a fresh, empty writer: it writes through the
	// hook instead of another buffer.
	rw.Writer.Reset(&openWriter{h: h, w: conn})
	return conn, rw, nil
}

// openWriter runs the hook's beforeOpen before it writes a 101 response
// (a refusal is written as it is).
type openWriter struct {
	h       *hijackHook
	w       io.Writer
	checked bool
}

var status101 = []byte("HTTP/1.1 101 ")

func (o *openWriter) Write(p []byte) (int, error) {
	if !o.checked {
		o.checked = true
		if bytes.HasPrefix(p, status101) {
			if err := o.h.beforeOpen(o.h.c); err != nil {
				o.h.hookErr = err
				_, _ = io.WriteString(o.w, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return 0, err
			}
		}
	}
	return o.w.Write(p)
}

// newConn wraps an upgraded connection; early holds bytes the client sent
// after its handshake that were already read from conn. opts has its
// defaults.
func newConn(conn net.Conn, early []byte, opts *Options) *Conn {
	c := &Conn{
		conn:     conn,
		opts:     opts,
		openedAt: time.Now().UnixNano(),
	}
	if len(early) > 0 {
		// Read before the socket's own bytes, by whichever reader runs.
		c.in = &input{b: bytes.Clone(early)}
	}
	c.lastActive.Store(c.openedAt)
	return c
}

// Start serves the connection until it closes: h.OnMessage is called for
// every inbound message, in order, never twice at once, and must not block
// for long (while it runs, this client is not read). h.OnClose is called
// once, on a goroutine of its own, after the socket is closed and the last
// OnMessage has returned.
func (c *Conn) Start(h Handler) {
	c.handler = h
	now := time.Now()
	c.mu.Lock()
	if c.opts.PingInterval > 0 {
		c.nextPing = now.Add(c.opts.PingInterval).UnixNano()
	}
	c.armLocked(c.nextTick(now))
	// No reader may start before the watch is known; endRead below arms it.
	c.reading = true
	c.mu.Unlock()

	w, err := netpoll.Watch(c.conn, c.readReady, c.writeLoop)
	c.mu.Lock()
	if err == nil {
		c.watch, c.conn = w, nil // the Watcher owns the socket now
	}
	c.started = true
	c.startWriterLocked()                  // for what was queued or closed before Start
	c.batching = err == nil && c.in != nil // readAvailable below, as readReady would set it
	c.mu.Unlock()
	switch {
	case err != nil:
		go c.readAll()
	case c.in != nil:
		// The bytes the client sent with its handshake: no readiness
		// announces them.
		go func() {
			if c.endRead(c.readAvailable()) {
				c.readReady()
			}
		}()
	default:
		if c.endRead(nil) {
			workers.Go(c.readReady)
		}
	}
}

// Closing reports whether the connection is closing or closed: it takes no
// more messages.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// LastActive returns when the last data message went in either direction
// (an answer its reader wrote counts at the read of its message).
func (c *Conn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }

func (c *Conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// Send queues a message and never blocks: one stalled client must not stall
// its senders. On overflow the connection is closed with 1008 and
// ErrQueueFull returned. To send one message to many connections, encode it
// once with NewFrame and use SendFrame.
func (c *Conn) Send(typ MessageType, data []byte) error { return c.SendFrame(NewFrame(typ, data)) }

// SendFrame is Send for a frame encoded by NewFrame, which may be queued on
// many connections at once.
func (c *Conn) SendFrame(f Frame) error { return c.sendFrame(f, false) }

// ReplyFrame is SendFrame for an answer that OnMessage queues on the
// connection it was called for, on the reader's goroutine, before it
// returns: the reader writes it once the frames it read are handled, with
// their other answers, in one write and without waking a writer. Anywhere
// else it is SendFrame, and it must not be called from another goroutine
// while OnMessage runs: the answer would wait for the reader.
func (c *Conn) ReplyFrame(f Frame) error { return c.sendFrame(f, true) }

func (c *Conn) sendFrame(f Frame, reply bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return ErrClosed
	}
	if len(c.queue) > 0 && (c.opts.SendQueueMessages > 0 && len(c.queue) >= c.opts.SendQueueMessages ||
		c.opts.SendQueueBytes > 0 && c.queuedBytes+len(f.b) > c.opts.SendQueueBytes) {
		c.closeLocked(StatusPolicyViolation, ReasonSlowConsumer, false, false)
		return ErrQueueFull
	}
	if c.queue == nil {
		c.queue = newQueue()
	}
	c.queue = push(c.queue, f.b)
	c.queuedBytes += len(f.b)
	if reply && c.batching && !c.writing && c.batchRoom() {
		c.batched = true
		return nil
	}
	c.startWriterLocked()
	return nil
}

// Answers wait for the reader's write while the queue holds fewer than
// maxReplyBatch frames and half its limits: past them a writer takes the
// queue at once, so that answers waiting for the end of a long read never
// make a reading client a slow consumer.
const maxReplyBatch = 256

// batchRoom reports whether the queue has room for answers that wait for
// the reader's write. c.mu is held.
func (c *Conn) batchRoom() bool {
	n := len(c.queue)
	return n < maxReplyBatch &&
		(c.opts.SendQueueMessages <= 0 || 2*n < c.opts.SendQueueMessages) &&
		(c.opts.SendQueueBytes <= 0 || 2*c.queuedBytes < c.opts.SendQueueBytes)
}

// Flush writes, at once, the answers that wait for the end of the reader's
// read (ReplyFrame): OnMessage calls it before it blocks.
func (c *Conn) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batched {
		c.batched = false
		c.startWriterLocked()
	}
}

// Close starts a graceful close: queued messages are written, then the close
// handshake runs with code and reason; a peer that does not answer it within
// 5s is dropped. It does not wait: OnClose says when the connection is
// closed. Only the first close counts.
func (c *Conn) Close(code StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, false, true)
}

// closeLocked records the first close and queues its close frame; it
// reports whether this call was the first. Unless graceful, queued messages
// are dropped. The socket stays open for the peer's answer.
func (c *Conn) closeLocked(code StatusCode, reason string, byPeer, graceful bool) bool {
	if c.closing {
		return false
	}
	c.closing = true
	c.closeInfo = &CloseInfo{Code: code, Reason: reason, ByPeer: byPeer}
	if !graceful {
		c.queue, c.queuedBytes = nil, 0
		if c.writing {
			// A write waiting on a peer that stopped reading gets as long as
			// the close handshake, not a full WriteTimeout.
			by := time.Now().Add(closeHandshakeTimeout)
			if c.writeBy != 0 {
				c.writeBy = min(c.writeBy, by.UnixNano())
				c.armLocked(c.nextTick(time.Now()))
			} else if c.watch == nil {
				_ = c.conn.SetWriteDeadline(by)
			}
		}
	}
	c.startWriterLocked()
	return true
}

// fail closes the connection for a broken rule: the close frame is
// written, then our side of the TCP connection is shut, and the client's
// bytes are drained (errDiscard, which it returns) until it hangs up or the
// close handshake's time is over.
func (c *Conn) fail(code StatusCode, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeLocked(code, reason, false, false) {
		c.lingerAfter = true
	}
	return errDiscard
}

// drop closes the socket without a close frame: the peer is gone, or broke
// a rule that allows no answer.
func (c *Conn) drop(code StatusCode, reason string, byPeer bool) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.closeInfo = &CloseInfo{Code: code, Reason: reason, ByPeer: byPeer}
		c.queue, c.queuedBytes = nil, 0
		c.closeSent = true // no close frame: the code may be one never sent (1006)
	}
	c.mu.Unlock()
	c.closeSocket()
}

// closeSocket stops watching and closes the socket; a blocked read or write
// returns at once. OnClose follows once no reader runs.
func (c *Conn) closeSocket() {
	c.mu.Lock()
	if c.sockClosed {
		c.mu.Unlock()
		return
	}
	c.sockClosed = true
	w := c.watch
	c.mu.Unlock()
	if w != nil {
		_ = w.Close()
	} else {
		_ = c.conn.Close()
	}
	c.finishIfDone()
}

// finishIfDone calls OnClose once the socket is closed and no reader runs.
func (c *Conn) finishIfDone() {
	c.mu.Lock()
	if !c.sockClosed || c.reading || c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	info := CloseInfo{Code: StatusAbnormal, ByPeer: true} // every path to here sets closeInfo; in case one did not
	if c.closeInfo != nil {
		info = *c.closeInfo
	}
	c.queue, c.queuedBytes, c.control, c.stalled = nil, 0, nil, nil
	c.partial, c.in = nil, nil // no reader runs
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	workers.Go(func() { c.handler.OnClose(info) })
}

// tick runs on the connection's timer: a stalled writer's deadline, the
// deadline of a frame not yet whole, pings, the pong deadline, the idle
// and lifetime limits and the close handshake's deadline.
func (c *Conn) tick() {
	now := time.Now()
	n := now.UnixNano()
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	if c.writeBy != 0 && n >= c.writeBy {
		// The peer stopped reading: the writer made no progress in time.
		c.mu.Unlock()
		c.drop(StatusPolicyViolation, ReasonWriteTimeout, false)
		return
	}
	if c.closing {
		if c.closeBy != 0 && n >= c.closeBy {
			c.mu.Unlock()
			c.closeSocket()
			return
		}
		c.armLocked(c.nextTick(now))
		c.mu.Unlock()
		return
	}
	if fs := c.frameSince.Load(); fs != 0 && c.opts.FrameTimeout > 0 && n >= fs+int64(c.opts.FrameTimeout) {
		// A frame begun and not finished in time. As for a broken rule, the
		// close frame goes out, our side is shut, and the socket closes when
		// the client hangs up or the close handshake's time is over.
		if c.closeLocked(StatusPolicyViolation, ReasonFrameTimeout, false, false) {
			c.lingerAfter = true
		}
		c.armLocked(c.nextTick(now))
		c.mu.Unlock()
		return
	}
	if c.pingSentAt != 0 && n >= c.pingSentAt+int64(c.opts.PongTimeout) {
		// A client held back by the gateway (its reader inside OnMessage)
		// cannot have its pong read: that is not its fault. Nor is a pong
		// that arrived and waits for the gateway to read it: bytes in the
		// socket, or a reader that has not got to them yet, as on a loaded
		// machine. Only a client that sent nothing is taken for dead.
		if c.lastRead.Load() <= c.pingSentAt && !c.inCallback.Load() && !c.unreadLocked() {
			c.mu.Unlock()
			c.drop(StatusAbnormal, ReasonPingTimeout, true)
			return
		}
		c.pingSentAt = 0
	}
	if code, reason, hit := c.limitHit(now); hit {
		c.closeLocked(code, reason, false, true)
	} else if c.nextPing != 0 && n >= c.nextPing {
		c.nextPing = n + int64(c.opts.PingInterval)
		if c.pingSentAt == 0 && c.opts.PongTimeout > 0 {
			c.pingSentAt = n
		}
		c.pingsOut++
		c.control = appendFrameHeader(c.control, byte(ws.OpPing), 0)
		c.startWriterLocked()
	}
	c.armLocked(c.nextTick(now))
	c.mu.Unlock()
}

// unreadLocked reports whether a watched socket's bytes wait for the
// gateway: a reader is running, or the socket holds bytes no reader has
// taken yet. A connection read on a goroutine of its own always has a
// reader, so only inCallback tells for it. c.mu is held (it is taken
// before the Watcher's lock, never after).
func (c *Conn) unreadLocked() bool {
	return c.watch != nil && !c.sockClosed && (c.reading || c.watch.Buffered() > 0)
}

// never is nextTick's answer when nothing is due.
const never = time.Duration(1<<63 - 1)

// armLocked runs tick in d, or not at all for never: a connection with no
// pings and no limits keeps no timer. c.mu is held.
func (c *Conn) armLocked(d time.Duration) {
	switch {
	case d == never:
		if c.timer != nil {
			c.timer.Stop()
		}
	case c.timer == nil:
		c.timer = time.AfterFunc(d, c.tick)
	default:
		c.timer.Reset(d)
	}
}

// nextTick returns how long until tick must run again. c.mu is held.
func (c *Conn) nextTick(now time.Time) time.Duration {
	next := int64(1<<63 - 1)
	if c.writeBy != 0 {
		next = c.writeBy
	}
	if c.closing {
		if c.closeBy != 0 {
			next = min(next, c.closeBy)
		}
	} else {
		if c.nextPing != 0 {
			next = min(next, c.nextPing)
		}
		if c.pingSentAt != 0 {
			next = min(next, c.pingSentAt+int64(c.opts.PongTimeout))
		}
		if fs := c.frameSince.Load(); fs != 0 && c.opts.FrameTimeout > 0 {
			next = min(next, fs+int64(c.opts.FrameTimeout))
		}
		if c.opts.IdleTimeout > 0 {
			next = min(next, c.lastActive.Load()+int64(c.opts.IdleTimeout))
		}
		if c.opts.MaxLifetime > 0 {
			next = min(next, c.openedAt+int64(c.opts.MaxLifetime))
		}
	}
	if next == 1<<63-1 {
		return never
	}
	return max(time.Duration(next-now.UnixNano()), time.Millisecond)
}

func (c *Conn) limitHit(now time.Time) (StatusCode, string, bool) {
	if c.opts.MaxLifetime > 0 && now.UnixNano() >= c.openedAt+int64(c.opts.MaxLifetime) {
		return StatusGoingAway, ReasonLifetime, true
	}
	if c.opts.IdleTimeout > 0 && !now.Before(c.LastActive().Add(c.opts.IdleTimeout)) {
		return StatusGoingAway, ReasonIdle, true
	}
	return 0, "", false
}
