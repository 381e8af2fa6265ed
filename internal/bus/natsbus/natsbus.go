// Package natsbus is a bus.Bus over core NATS: addressed calls go to a
// subject per node as request/reply, publish goes once to a subject per
// topic that only interested nodes subscribe to, and broadcast to one
// subject every node subscribes to. Delivery is at most once, as core NATS
// is: a node cut off from the server misses what is published meanwhile.
//
// Subjects, under Options.Prefix (default "switchboard"):
//
//	<prefix>.node.<node>   addressed calls; header Sb-Op: send, disconnect, describe, ping
//	<prefix>.topic.<topic> publish to a topic
//	<prefix>.all           broadcast
//
// Node names and topics are arbitrary strings, so they are encoded
// (base64url without padding, after a fixed letter so the empty string
// is a valid token) and can never inject wildcards or extra tokens.
// A node does not handle its own publish and broadcast (header Sb-From
// names the sender): the caller delivers locally itself.
package natsbus

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
)

// Headers and error names on the wire.
const (
	hdrOp   = "Sb-Op"
	hdrConn = "Sb-Conn"
	hdrFrom = "Sb-From"
	hdrErr  = "Sb-Err"

	opSend       = "send"
	opDisconnect = "disconnect"
	opDescribe   = "describe"
	opPing       = "ping"

	errNameGone = "gone"
	errNameSlow = "slow"
)

// ErrNotRunning is returned by Subscribe and the health probe before Run
// and after Close.
var ErrNotRunning = errors.New("natsbus: not running")

// Options configure a Bus. The zero value works.
type Options struct {
	// Prefix is the first subject token, so that clusters can share a NATS
	// engine. Default "switchboard". Must be a valid subject token
	// sequence without wildcards.
	Prefix string
	// Timeout bounds a call whose context carries no deadline. Default 5s.
	Timeout time.Duration
	// QueueLen is how many publishes and broadcasts may wait for this
	// node's handler; one goroutine hands them over in the order they
	// arrived. Beyond it nats.go drops them and reports a slow consumer
	// on the connection's error handler. Default 8192.
	QueueLen int
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 8192
	}
	return o
}

// Bus is a bus.Bus over a NATS connection, which the caller owns: Close
// leaves the bus but does not close the connection. The connection's
// reconnect and re-subscription are nats.go's; connect it with Connect, or
// with a reconnect buffer of -1 so nothing is buffered silently while it is
// disconnected.
type Bus struct {
	nc   *nats.Conn
	opts Options

	dropped atomic.Uint64 // publishes and broadcasts refused while disconnected

	mu         sync.Mutex
	node       string
	h          bus.Handler
	running    bool
	delivering bool // deliver runs; Close waits for done
	closed     bool
	subs       []*nats.Subscription          // node and broadcast
	topics     map[string]*nats.Subscription // by topic
	inflight   sync.WaitGroup                // addressed calls being handled
	fanout     chan *nats.Msg                // publish and broadcast, in arrival order
	stop       chan struct{}                 // closed by Close: ends deliver
	done       chan struct{}                 // closed when deliver returned
}

var (
	_ bus.Bus      = (*Bus)(nil)
	_ bus.Healther = (*Bus)(nil)
)

// New returns a Bus over nc.
func New(nc *nats.Conn, opts Options) *Bus {
	o := opts.withDefaults()
	return &Bus{
		nc: nc, opts: o, topics: map[string]*nats.Subscription{},
		fanout: make(chan *nats.Msg, o.QueueLen), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// ConnectOptions configure Connect. The zero value connects without
// credentials.
type ConnectOptions struct {
	// Name is the client name the server shows. Default "switchboard".
	Name string
	// User and Password, Token, or CredsFile (a NATS .creds file):
	// credentials to present; at most one kind.
	User, Password, Token, CredsFile string
	// ConnectTimeout bounds the first connection. Default 5s.
	ConnectTimeout time.Duration
	// TLS, when set, is used for the connection (a tls:// URL needs no
	// more than the system roots).
	TLS *tls.Config
}

// Connect connects to the NATS servers in url (comma separated) for a bus
// or a directory. It retries forever once connected, and sets the reconnect
// buffer to -1: while disconnected a publish fails at once (reported to the
// caller and counted) instead of being buffered and sent late or lost.
func Connect(url string, co ConnectOptions) (*nats.Conn, error) {
	if co.Name == "" {
		co.Name = "switchboard"
	}
	if co.ConnectTimeout <= 0 {
		co.ConnectTimeout = 5 * time.Second
	}
	kinds := 0
	for _, set := range []bool{co.User != "" || co.Password != "", co.Token != "", co.CredsFile != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return nil, errors.New("natsbus: connect: set one of user/password, token or creds file")
	}
	no := []nats.Option{
		nats.Name(co.Name),
		nats.Timeout(co.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1),
	}
	switch {
	case co.User != "" || co.Password != "":
		no = append(no, nats.UserInfo(co.User, co.Password))
	case co.Token != "":
		no = append(no, nats.Token(co.Token))
	case co.CredsFile != "":
		no = append(no, nats.UserCredentials(co.CredsFile))
	}
	if co.TLS != nil {
		no = append(no, nats.Secure(co.TLS))
	}
	nc, err := nats.Connect(url, no...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	return nc, nil
}

// validPrefix accepts dot-separated, non-empty tokens without wildcards.
func validPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return false
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// encode turns an arbitrary string into one safe subject token.
func encode(s string) string { return "x" + base64.RawURLEncoding.EncodeToString([]byte(s)) }

func (b *Bus) nodeSubject(node string) string   { return b.opts.Prefix + ".node." + encode(node) }
func (b *Bus) topicSubject(topic string) string { return b.opts.Prefix + ".topic." + encode(topic) }
func (b *Bus) allSubject() string               { return b.opts.Prefix + ".all" }

// Run subscribes to this node's subject and the broadcast subject and
// returns once the server has them; ctx bounds that wait. The node serves
// until Close, as membus does.
func (b *Bus) Run(ctx context.Context, node string, h bus.Handler) error {
	if h == nil || node == "" {
		return errors.New("natsbus: run needs a node name and a handler")
	}
	if !validPrefix(b.opts.Prefix) {
		return fmt.Errorf("natsbus: run: prefix %q: want dot-separated tokens of letters, digits, '-' and '_'", b.opts.Prefix)
	}
	b.mu.Lock()
	if b.running || b.closed {
		b.mu.Unlock()
		return errors.New("natsbus: run: already running or closed")
	}
	b.node, b.h, b.running = node, h, true
	b.mu.Unlock()

	ns, err := b.nc.Subscribe(b.nodeSubject(node), b.onCall)
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("natsbus: run: %w", err)
	}
	as, err := b.nc.ChanSubscribe(b.allSubject(), b.fanout)
	if err != nil {
		_ = ns.Unsubscribe()
		_ = b.Close()
		return fmt.Errorf("natsbus: run: %w", err)
	}
	b.mu.Lock()
	b.subs = []*nats.Subscription{ns, as}
	b.delivering = true
	b.mu.Unlock()
	go b.deliver(h)
	fctx, cancel := b.bound(ctx)
	defer cancel()
	if err := b.nc.FlushWithContext(fctx); err != nil {
		_ = b.Close()
		return fmt.Errorf("natsbus: run: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// bound gives ctx the default timeout when it has no deadline.
func (b *Bus) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, b.opts.Timeout)
}

// enter marks a handler call as running; false once the bus is closed.
func (b *Bus) enter() (bus.Handler, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || !b.running {
		return nil, false
	}
	b.inflight.Add(1)
	return b.h, true
}

func (b *Bus) onCall(m *nats.Msg) {
	h, ok := b.enter()
	if !ok {
		// A call that arrived as the node left: it holds nothing now.
		if m.Reply != "" {
			r := nats.NewMsg("")
			r.Header.Set(hdrErr, errNameGone)
			_ = m.RespondMsg(r)
		}
		return
	}
	defer b.inflight.Done()
	reply := nats.NewMsg("")
	id := m.Header.Get(hdrConn)
	var err error
	switch op := m.Header.Get(hdrOp); op {
	case opSend:
		err = h.HandleSend(id, m.Data)
	case opDisconnect:
		err = h.HandleDisconnect(id)
	case opDescribe:
		var st conn.State
		if st, err = h.HandleDescribe(id); err == nil {
			reply.Data, err = json.Marshal(st)
		}
	case opPing:
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	switch {
	case err == nil:
	case errors.Is(err, conn.ErrGone):
		reply.Header.Set(hdrErr, errNameGone)
	case errors.Is(err, conn.ErrSlowConsumer):
		reply.Header.Set(hdrErr, errNameSlow)
	default:
		reply.Header.Set(hdrErr, err.Error())
	}
	if m.Reply != "" {
		_ = m.RespondMsg(reply) // the caller times out if this fails
	}
}

func (b *Bus) fromSelf(m *nats.Msg) bool {
	return m.Header.Get(hdrFrom) == b.node
}

// deliver hands publishes and broadcasts to h one at a time, in the order
// the server sent them, skipping this node's own.
func (b *Bus) deliver(h bus.Handler) {
	defer close(b.done)
	for {
		select {
		case <-b.stop:
			return
		case m := <-b.fanout:
			if b.fromSelf(m) {
				continue
			}
			if topic, ok := b.topicOf(m.Subject); ok {
				h.HandlePublish(topic, m.Data)
			} else {
				h.HandleBroadcast(m.Data)
			}
		}
	}
}

// topicOf decodes the topic of a publish subject.
func (b *Bus) topicOf(subject string) (string, bool) {
	pre := b.opts.Prefix + ".topic.x"
	if len(subject) < len(pre) || subject[:len(pre)] != pre {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(subject[len(pre):])
	if err != nil {
		return "", false
	}
	return string(raw), true
}

// call sends an addressed request to node and maps its answer.
func (b *Bus) call(ctx context.Context, op, node, connID string, data []byte) ([]byte, error) {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	m := nats.NewMsg(b.nodeSubject(node))
	m.Header.Set(hdrOp, op)
	m.Header.Set(hdrConn, connID)
	m.Data = data
	r, err := b.nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, conn.ErrGone
	case err != nil:
		return nil, fmt.Errorf("natsbus: %s %s on node %q: %w: %w", op, connID, node, bus.ErrUnavailable, err)
	}
	switch e := r.Header.Get(hdrErr); e {
	case "":
		return r.Data, nil
	case errNameGone:
		return nil, conn.ErrGone
	case errNameSlow:
		return nil, conn.ErrSlowConsumer
	default:
		return nil, fmt.Errorf("natsbus: %s %s on node %q: %s", op, connID, node, e)
	}
}

// Send asks node to deliver data to connID.
func (b *Bus) Send(ctx context.Context, node, connID string, data []byte) error {
	_, err := b.call(ctx, opSend, node, connID, data)
	return err
}

// Disconnect asks node to close connID.
func (b *Bus) Disconnect(ctx context.Context, node, connID string) error {
	_, err := b.call(ctx, opDisconnect, node, connID, nil)
	return err
}

// Describe asks node for connID's state.
func (b *Bus) Describe(ctx context.Context, node, connID string) (conn.State, error) {
	data, err := b.call(ctx, opDescribe, node, connID, nil)
	if err != nil {
		return conn.State{}, err
	}
	var st conn.State
	if err := json.Unmarshal(data, &st); err != nil {
		return conn.State{}, fmt.Errorf("natsbus: describe %s on node %q: bad answer: %w", connID, node, err)
	}
	return st, nil
}

// Subscribe declares this node's interest in topic and returns once the
// server has it. After a reconnect nats.go declares it again by itself.
func (b *Bus) Subscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if !b.running || b.closed {
		b.mu.Unlock()
		return ErrNotRunning
	}
	if _, ok := b.topics[topic]; ok {
		b.mu.Unlock()
		return nil
	}
	sub, err := b.nc.ChanSubscribe(b.topicSubject(topic), b.fanout)
	if err != nil {
		b.mu.Unlock()
		return fmt.Errorf("natsbus: subscribe: %w", err)
	}
	b.topics[topic] = sub
	b.mu.Unlock()
	ctx, cancel := b.bound(ctx)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil {
		// The subscription stays: nats.go declares it once reconnected.
		return fmt.Errorf("natsbus: subscribe: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// Unsubscribe withdraws this node's interest in topic.
func (b *Bus) Unsubscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	sub, ok := b.topics[topic]
	delete(b.topics, topic)
	b.mu.Unlock()
	if !ok {
		return nil
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("natsbus: unsubscribe: %w", err)
	}
	return nil
}

// publish sends one message from this node, refusing (and counting) when
// the connection is not up rather than buffering it.
func (b *Bus) publish(ctx context.Context, subject string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		b.dropped.Add(1)
		return fmt.Errorf("natsbus: publish: %w: %s", bus.ErrUnavailable, b.nc.Status())
	}
	m := nats.NewMsg(subject)
	b.mu.Lock()
	m.Header.Set(hdrFrom, b.node)
	b.mu.Unlock()
	m.Data = data
	if err := b.nc.PublishMsg(m); err != nil {
		b.dropped.Add(1)
		return fmt.Errorf("natsbus: publish: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// Publish hands data to every other node subscribed to topic, once each.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	return b.publish(ctx, b.topicSubject(topic), data)
}

// Broadcast hands data to every other node, once each.
func (b *Bus) Broadcast(ctx context.Context, data []byte) error {
	return b.publish(ctx, b.allSubject(), data)
}

// Dropped reports how many publishes and broadcasts were refused because
// the connection was down; each was also an error to its caller.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Missed reports how many publishes and broadcasts reached this node but
// were dropped because Options.QueueLen of them already waited for the
// handler (nats.go also reports each as a slow consumer on the
// connection's error handler). It counts the subscriptions this node holds
// now, so a withdrawn topic's drops leave the sum.
func (b *Bus) Missed() uint64 {
	b.mu.Lock()
	subs := append([]*nats.Subscription(nil), b.subs...)
	for _, s := range b.topics {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var n uint64
	for _, s := range subs {
		if d, err := s.Dropped(); err == nil && d > 0 {
			n += uint64(d)
		}
	}
	return n
}

// Health is nil while the connection is up and a request to this node's
// own subject comes back through the server: that proves the server still
// delivers to this node's subscriptions, not just that a socket is open.
func (b *Bus) Health(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("natsbus: %w: %s", bus.ErrUnavailable, b.nc.Status())
	}
	b.mu.Lock()
	node, running := b.node, b.running && !b.closed
	b.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	if _, err := b.call(ctx, opPing, node, "", nil); err != nil {
		if errors.Is(err, conn.ErrGone) {
			return fmt.Errorf("natsbus: own subscription not served: %w", bus.ErrUnavailable)
		}
		return err
	}
	return nil
}

// Close leaves the bus: it drops this node's subscriptions and returns once
// no Handler call is running. It does not close the NATS connection.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	for _, s := range b.topics {
		subs = append(subs, s)
	}
	b.subs, b.topics = nil, map[string]*nats.Subscription{}
	delivering := b.delivering
	b.mu.Unlock()
	// Drain, not Unsubscribe: a call the server routed here before it
	// saw the withdrawal still gets its answer (gone) instead of timing out.
	for _, s := range subs {
		_ = s.Drain()
	}
	close(b.stop)
	if delivering {
		<-b.done
	}
	b.inflight.Wait()
	return nil
}
