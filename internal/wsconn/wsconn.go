// Package wsconn terminates WebSocket connections: the upgrade, the read
// loop, a bounded send queue drained by a writer, keepalive pings, the idle
// and lifetime limits, and close codes. It knows nothing of routes,
// integrations, registries or auth, so that a leaner connection layer can
// replace it behind the same small API.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// StatusCode is a WebSocket close code.
type StatusCode int

// Close codes the gateway sends or reports.
const (
	StatusNormal          StatusCode = 1000 // DeleteConnection, or the client's normal close
	StatusGoingAway       StatusCode = 1001 // drain, idle timeout, lifetime limit
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
	ReasonWriteTimeout = "Write timeout"
)

var errInvalidUTF8 = errors.New("wsconn: invalid UTF-8 in a text message")

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
	Text   MessageType = MessageType(websocket.MessageText)
	Binary MessageType = MessageType(websocket.MessageBinary)
)

// Options configures a connection. The zero value is ready to use and applies
// API Gateway's limits.
type Options struct {
	// ReadLimit is the largest message a client may send, in bytes; a larger
	// one closes the connection with 1009. Zero means 128 KiB; negative is unlimited.
	ReadLimit int64
	// SendQueueMessages is how many outbound messages may wait. Zero means 1024.
	SendQueueMessages int
	// SendQueueBytes is how many outbound bytes may wait; one message larger
	// than this is still accepted into an empty queue. Zero means 4 MiB.
	// Overflowing either bound closes the connection with 1008.
	SendQueueBytes int
	// WriteTimeout bounds one write to the socket; a peer that stops reading
	// is closed when it expires. Zero means 10s.
	WriteTimeout time.Duration
	// PingInterval is how often a ping is sent. Zero means 30s; negative disables.
	PingInterval time.Duration
	// PongTimeout is how long to wait for the pong. Zero means 10s.
	PongTimeout time.Duration
	// IdleTimeout closes (1001) a connection with no data message in either
	// direction for this long. Pings do not count. Zero means 10m; negative disables.
	IdleTimeout time.Duration
	// MaxLifetime closes (1001) a connection this long after it opened.
	// Zero means 2h; negative disables.
	MaxLifetime time.Duration
	// PingRate is how many pings per second a client may send, with bursts
	// of as many; a client pinging faster is closed with 1008. Zero means
	// 10; negative disables the check.
	PingRate float64
}

func (o Options) withDefaults() Options {
	if o.ReadLimit == 0 {
		o.ReadLimit = 128 * 1024
	}
	if o.SendQueueMessages == 0 {
		o.SendQueueMessages = 1024
	}
	if o.SendQueueBytes == 0 {
		o.SendQueueBytes = 4 << 20
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.PongTimeout == 0 {
		o.PongTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.MaxLifetime == 0 {
		o.MaxLifetime = 2 * time.Hour
	}
	if o.PingRate == 0 {
		o.PingRate = 10
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

// Message is one inbound WebSocket message.
type Message struct {
	Type MessageType
	Data []byte
}

type outMsg struct {
	typ  websocket.MessageType
	data []byte
}

// Conn is one accepted WebSocket connection. Send and Close are safe for
// concurrent use; Serve is called once.
type Conn struct {
	ws       *websocket.Conn
	sock     *socket // the library's writes and ours, serialised
	opts     Options
	openedAt time.Time

	lastActive atomic.Int64 // unix nanoseconds of the last data message
	lastRead   atomic.Int64 // unix nanoseconds of the last message read from the peer
	inCallback atomic.Bool  // the reader is in onMessage, not reading

	pings *rate.Limiter // client pings; created on the first one, read loop only

	mu          sync.Mutex // guards the fields below
	queue       []outMsg
	queuedBytes int
	closing     bool
	closeInfo   CloseInfo // set by the first Close
	graceful    bool      // flush the queue before the close handshake

	wake    chan struct{} // capacity 1: the writer has work
	closeCh chan struct{} // closed by the first Close
}

// AcceptOptions are per-handshake choices made by the caller.
type AcceptOptions struct {
	// Subprotocol is put on the 101 response when the client offered it.
	Subprotocol string
}

// Accept upgrades the request. On failure it has already written an HTTP
// error response.
func Accept(w http.ResponseWriter, r *http.Request, opts Options, ao AcceptOptions) (*Conn, error) {
	opts = opts.withDefaults()
	var c *Conn
	wo := &websocket.AcceptOptions{
		// Called on the read goroutine before the pong is sent.
		OnPingReceived: func(context.Context, []byte) bool { return c.allowPing() },
		// Origin checks are the gateway's policy, not the library's: API
		// Gateway accepts any origin.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	}
	if ao.Subprotocol != "" {
		wo.Subprotocols = []string{ao.Subprotocol}
	}
	sb := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sb, r, wo)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	ws.SetReadLimit(opts.ReadLimit)
	c = &Conn{
		ws:       ws,
		sock:     sb.sock,
		opts:     opts,
		openedAt: time.Now(),
		wake:     make(chan struct{}, 1),
		closeCh:  make(chan struct{}),
	}
	c.lastActive.Store(c.openedAt.UnixNano())
	return c, nil
}

// allowPing counts a client's ping and closes the connection when the
// client pings faster than PingRate: each pong costs a write.
func (c *Conn) allowPing() bool {
	if c.opts.PingRate < 0 {
		return true
	}
	if c.pings == nil {
		c.pings = rate.NewLimiter(rate.Limit(c.opts.PingRate), max(int(c.opts.PingRate), 1))
	}
	if c.pings.Allow() {
		return true
	}
	c.closeNow(StatusPolicyViolation, ReasonPingFlood)
	return false
}

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// Closing reports whether the connection is closing or closed: it takes no
// more messages.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// LastActive returns when the last data message went in either direction.
func (c *Conn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }

func (c *Conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// Send queues a message and never blocks: one stalled client must not stall
// its senders. data must not be modified afterwards; the same slice may be
// queued on many connections. On overflow the connection is closed with 1008
// and ErrQueueFull returned.
func (c *Conn) Send(typ MessageType, data []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if len(c.queue) > 0 && (len(c.queue) >= c.opts.SendQueueMessages || c.queuedBytes+len(data) > c.opts.SendQueueBytes) {
		c.mu.Unlock()
		c.closeNow(StatusPolicyViolation, ReasonSlowConsumer)
		return ErrQueueFull
	}
	c.queue = append(c.queue, outMsg{typ: websocket.MessageType(typ), data: data})
	c.queuedBytes += len(data)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close starts a graceful close: queued messages are written, then the close
// handshake runs with code and reason; a peer that does not answer it is
// dropped after 5s. It does not wait: Serve returns when the connection is
// closed. Only the first Close (or overflow) counts.
func (c *Conn) Close(code StatusCode, reason string) {
	c.beginClose(code, reason, false, true)
}

// closeNow closes without flushing: used when the peer is too slow or dead.
// A write blocked on the peer is freed because the library closes the socket
// when its close frame cannot be written in time.
func (c *Conn) closeNow(code StatusCode, reason string) {
	if c.beginClose(code, reason, false, false) {
		go func() { _ = c.ws.Close(websocket.StatusCode(code), reason) }()
	}
}

// beginClose records the first close and reports whether this call was it.
func (c *Conn) beginClose(code StatusCode, reason string, byPeer, graceful bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.closing = true
	c.graceful = graceful
	c.closeInfo = CloseInfo{Code: code, Reason: reason, ByPeer: byPeer}
	close(c.closeCh)
	return true
}

// Serve runs the connection until it closes, calling onMessage for every
// inbound message in order, on the read goroutine: onMessage must not block
// for long. Both loops are done when Serve returns. Cancelling ctx closes
// the connection with 1001.
func (c *Conn) Serve(ctx context.Context, onMessage func(Message)) CloseInfo {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(ctx)
	}()
	readErr := c.readLoop(onMessage)
	// The reader ended: either the peer left or a close finished. Make sure
	// the writer stops too, then report the first close reason.
	c.beginClose(peerStatus(readErr))
	_ = c.ws.CloseNow()
	<-writerDone
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue, c.queuedBytes = nil, 0
	return c.closeInfo
}

func peerStatus(err error) (StatusCode, string, bool, bool) {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		return StatusMessageTooBig, ReasonTooBig, false, false
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return StatusCode(ce.Code), ce.Reason, true, false
	}
	return StatusAbnormal, "", true, false
}

func (c *Conn) readLoop(onMessage func(Message)) error {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			return err
		}
		if typ == websocket.MessageText && !utf8.Valid(data) {
			// RFC 6455 §8.1: a text message must be UTF-8; the library does not check.
			if c.beginClose(StatusInvalidPayload, ReasonInvalidUTF8, false, false) {
				_ = c.ws.Close(websocket.StatusInvalidFramePayloadData, ReasonInvalidUTF8)
			}
			return errInvalidUTF8
		}
		c.touch()
		c.lastRead.Store(time.Now().UnixNano())
		c.inCallback.Store(true)
		onMessage(Message{Type: MessageType(typ), Data: data})
		c.inCallback.Store(false)
	}
}

func (c *Conn) writeLoop(ctx context.Context) {
	var pingC <-chan time.Time
	if c.opts.PingInterval > 0 {
		t := time.NewTicker(c.opts.PingInterval)
		defer t.Stop()
		pingC = t.C
	}
	limit := time.NewTimer(c.nextLimit())
	defer limit.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case <-c.wake:
			if err := c.flush(); err != nil {
				c.closeNow(StatusAbnormal, "write failed")
				return
			}
		case <-pingC:
			go c.ping()
		case <-limit.C:
			if code, reason, hit := c.limitHit(); hit {
				c.Close(code, reason)
				continue
			}
			limit.Reset(c.nextLimit())
		case <-ctxDone:
			ctxDone = nil
			c.Close(StatusGoingAway, ReasonGoingAway)
		case <-c.closeCh:
			c.mu.Lock()
			graceful, info := c.graceful, c.closeInfo
			c.mu.Unlock()
			if !graceful {
				return // closeNow already runs the handshake
			}
			if c.flush() == nil {
				_ = c.ws.Close(websocket.StatusCode(info.Code), info.Reason)
			}
			return
		}
	}
}

// flush writes everything queued, in order.
func (c *Conn) flush() error {
	c.mu.Lock()
	batch := c.queue
	c.queue, c.queuedBytes = nil, 0
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	// One watchdog for the batch, re-armed per message, instead of a context
	// and a library timer per message: a peer that stops reading is cut off
	// once a write makes no progress for WriteTimeout.
	watchdog := time.AfterFunc(c.opts.WriteTimeout, func() {
		if c.beginClose(StatusPolicyViolation, ReasonWriteTimeout, false, false) {
			_ = c.ws.CloseNow() // frees the blocked write
		}
	})
	defer watchdog.Stop()
	// Frames go out in slices of up to 64 messages: one system call each,
	// with the watchdog re-armed between them.
	for len(batch) > 0 {
		n := min(len(batch), 64)
		watchdog.Reset(c.opts.WriteTimeout)
		if err := c.sock.writeFrames(batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	c.touch()
	return nil
}

// ping drops the peer when a pong does not come in time, unless the peer
// was heard from meanwhile or the pong could not be read: while onMessage
// holds the reader (the gateway applying backpressure), a pong waits behind
// the client's own messages, and the client is not at fault.
func (c *Conn) ping() {
	start := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.PongTimeout)
	defer cancel()
	err := c.ws.Ping(ctx)
	if err == nil || c.inCallback.Load() || c.lastRead.Load() > start {
		return
	}
	if c.beginClose(StatusAbnormal, ReasonPingTimeout, true, false) {
		_ = c.ws.CloseNow()
	}
}

// nextLimit returns how long until the idle or lifetime limit must be checked.
func (c *Conn) nextLimit() time.Duration {
	next := time.Duration(1<<63 - 1)
	now := time.Now()
	if c.opts.IdleTimeout > 0 {
		next = min(next, c.LastActive().Add(c.opts.IdleTimeout).Sub(now))
	}
	if c.opts.MaxLifetime > 0 {
		next = min(next, c.openedAt.Add(c.opts.MaxLifetime).Sub(now))
	}
	return max(next, time.Millisecond)
}

func (c *Conn) limitHit() (StatusCode, string, bool) {
	now := time.Now()
	if c.opts.MaxLifetime > 0 && !now.Before(c.openedAt.Add(c.opts.MaxLifetime)) {
		return StatusGoingAway, ReasonLifetime, true
	}
	if c.opts.IdleTimeout > 0 && !now.Before(c.LastActive().Add(c.opts.IdleTimeout)) {
		return StatusGoingAway, ReasonIdle, true
	}
	return 0, "", false
}
