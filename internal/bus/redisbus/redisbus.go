// Package redisbus is the cluster bus over Redis pub/sub: addressed calls to
// the node that holds a connection, and publish/broadcast to the nodes that
// want them. It implements bus.Bus and bus.Healther.
//
// Channels, under Options.Prefix (default "switchboard:"), with node IDs and
// topics base64url-encoded so that any string is safe in a channel name:
//
//	node:<node>    requests to a node, and its own health pings
//	reply:<node>   answers to the requests a node made
//	topic:<topic>  publications, subscribed by the nodes with local subscribers
//	broadcast      broadcasts, subscribed by every node
//
// An addressed call publishes a request with an ID to the holder's node
// channel; PUBLISH answers how many subscribers got it, so 0 means no node
// serves that ID (conn.ErrGone). The holder answers on the caller's reply
// channel with the error by name (conn.ErrGone, conn.ErrSlowConsumer); no
// answer before the deadline is an error wrapping bus.ErrUnavailable.
// Redis has no "no echo", so a node drops its own publications and
// broadcasts by the sender named in each message.
//
// Delivery is at most once: a node disconnected from Redis misses what is
// published meanwhile. What this node could not hand to Redis comes back to
// the caller as an error wrapping bus.ErrUnavailable and is counted in
// Stats. The go-redis PubSub reconnects and subscribes again to every
// channel (node, replies, broadcast, topics) on its own. A node pings
// itself through its own node channel every Options.HealthInterval, so
// Health fails when the subscription silently stopped delivering, not only
// when the connection dropped.
package redisbus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
)

// Options configures a Bus. The zero value is ready to use.
type Options struct {
	// Prefix starts every channel name, so several clusters can share one
	// server. Empty means "switchboard:".
	Prefix string
	// CallTimeout bounds every call that reaches Redis or waits for another
	// node, on top of the caller's context. Zero means 5s.
	CallTimeout time.Duration
	// HealthInterval is how often the node pings itself through its own
	// channel. Zero means 1s.
	HealthInterval time.Duration
	// HealthGrace is how long without a ping coming back before Health
	// fails. Zero means 3 × HealthInterval.
	HealthGrace time.Duration
	// MaxInflight is how many requests from other nodes are served at once;
	// more wait in Redis's output buffer. Zero means 256.
	MaxInflight int
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard:"
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = time.Second
	}
	if o.HealthGrace == 0 {
		o.HealthGrace = 3 * o.HealthInterval
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 256
	}
	return o
}

// Stats counts what the bus could not do.
type Stats struct {
	// Failed counts calls (Publish, Broadcast, Send, Disconnect, Describe)
	// that could not be handed to Redis; each also returned an error.
	Failed uint64
	// Malformed counts messages received that could not be decoded.
	Malformed uint64
}

// Bus is a bus.Bus over one Redis server. It does not own the client: the
// caller closes it after Close. Safe for concurrent use.
type Bus struct {
	rdb  *redis.Client
	opts Options

	seq       atomic.Uint64
	failed    atomic.Uint64
	malformed atomic.Uint64
	lastOK    atomic.Int64 // unix nanoseconds of the last ping that came back

	// mu guards the fields below.
	mu      sync.Mutex
	node    string
	h       bus.Handler
	ps      *redis.PubSub
	topics  map[string]struct{}
	pending map[uint64]chan envelope
	lastErr error
	stop    context.CancelFunc
	closed  bool

	wg   sync.WaitGroup // the loops and request handlers
	sem  chan struct{}
	done chan struct{} // closed by Close: calls waiting for an answer give up
}

var (
	_ bus.Bus      = (*Bus)(nil)
	_ bus.Healther = (*Bus)(nil)
)

// New returns a Bus over rdb, one standalone server (Redis Cluster and
// Sentinel are refused, see redisurl); Run joins it to the cluster.
func New(rdb *redis.Client, opts Options) *Bus {
	o := opts.withDefaults()
	return &Bus{
		rdb:     rdb,
		opts:    o,
		topics:  map[string]struct{}{},
		pending: map[uint64]chan envelope{},
		sem:     make(chan struct{}, o.MaxInflight),
		done:    make(chan struct{}),
	}
}

var enc = base64.RawURLEncoding

func (b *Bus) nodeChan(node string) string {
	return b.opts.Prefix + "node:" + enc.EncodeToString([]byte(node))
}
func (b *Bus) replyChan(node string) string {
	return b.opts.Prefix + "reply:" + enc.EncodeToString([]byte(node))
}
func (b *Bus) topicChan(topic string) string {
	return b.opts.Prefix + "topic:" + enc.EncodeToString([]byte(topic))
}
func (b *Bus) broadcastChan() string { return b.opts.Prefix + "broadcast" }

// Run joins the bus as node and serves h until Close is called; ctx bounds
// the joining only. It returns nil once the node's own channel delivers (a
// ping went round), or the error that kept it from joining before ctx
// ended, after leaving again.
func (b *Bus) Run(ctx context.Context, node string, h bus.Handler) error {
	if node == "" || h == nil {
		return errors.New("redisbus: run: needs a node ID and a handler")
	}
	b.mu.Lock()
	if b.closed || b.ps != nil {
		b.mu.Unlock()
		return errors.New("redisbus: run: already running or closed")
	}
	chans := []string{b.nodeChan(node), b.replyChan(node), b.broadcastChan()}
	for t := range b.topics {
		chans = append(chans, b.topicChan(t))
	}
	b.node, b.h = node, h
	// No channels yet, so no I/O under the lock; from here on Subscribe
	// adds its topic to ps itself.
	b.ps = b.rdb.Subscribe(context.Background())
	ps := b.ps
	runCtx, stop := context.WithCancel(context.Background())
	b.stop = stop
	b.mu.Unlock()
	// The PubSub remembers the channels even when this fails, subscribes on
	// its next read, and again after every reconnect.
	_ = ps.Subscribe(ctx, chans...)

	b.wg.Add(2)
	go func() { defer b.wg.Done(); b.readLoop(runCtx, ps) }()
	go func() { defer b.wg.Done(); b.healthLoop(runCtx) }()

	// Joined once a ping through the node's own channel comes back.
	// Each try has a bound of its own: a ping published before the
	// subscription took effect reaches no one and never comes back.
	for {
		pctx, cancel := context.WithTimeout(ctx, b.opts.HealthInterval)
		err := b.ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			_ = b.Close()
			return fmt.Errorf("redisbus: join as %s: %w (%v)", node, bus.ErrUnavailable, err)
		case <-time.After(100 * time.Millisecond): // retry pacing, not synchronisation
		}
	}
}

// readLoop receives until ctx ends, dispatching each message.
func (b *Bus) readLoop(ctx context.Context, ps *redis.PubSub) {
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, b.opts.HealthInterval)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			b.setErr(err) // the PubSub reconnects on the next read
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // retry pacing
			}
			continue
		}
		if m, ok := msg.(*redis.Message); ok {
			b.dispatch(ctx, m)
		}
	}
}

func (b *Bus) dispatch(ctx context.Context, m *redis.Message) {
	e, err := decode([]byte(m.Payload))
	if err != nil {
		b.malformed.Add(1)
		return
	}
	b.mu.Lock()
	me, h := b.node, b.h
	b.mu.Unlock()
	switch e.kind {
	case kindPublish:
		if e.sender != me {
			h.HandlePublish(e.a, e.b)
		}
	case kindBroadcast:
		if e.sender != me {
			h.HandleBroadcast(e.b)
		}
	case kindReply, kindPing:
		b.mu.Lock()
		ch := b.pending[e.id]
		b.mu.Unlock()
		if ch != nil {
			select {
			case ch <- e:
			default:
			}
		}
	case kindRequest:
		select {
		case b.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() { <-b.sem }()
			b.serve(h, e)
		}()
	default:
		b.malformed.Add(1)
	}
}

// serve runs one request against h and answers on the caller's reply
// channel. The answer goes out even while the bus closes: Close waits for it.
func (b *Bus) serve(h bus.Handler, e envelope) {
	var err error
	var state []byte
	switch e.op {
	case opSend:
		err = h.HandleSend(e.a, e.b)
	case opDisconnect:
		err = h.HandleDisconnect(e.a)
	case opDescribe:
		var st conn.State
		if st, err = h.HandleDescribe(e.a); err == nil {
			state, err = json.Marshal(st)
		}
	default:
		err = fmt.Errorf("unknown operation %v", e.op)
	}
	b.mu.Lock()
	me := b.node
	b.mu.Unlock()
	r := envelope{kind: kindReply, id: e.id, sender: me, a: errName(err), b: state}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.CallTimeout)
	defer cancel()
	if err := b.rdb.Publish(ctx, b.replyChan(e.sender), r.encode()).Err(); err != nil {
		b.failed.Add(1) // the caller times out with ErrUnavailable
	}
}

// errName is how an error crosses the wire; errFromName reverses it.
func errName(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, conn.ErrGone):
		return "gone"
	case errors.Is(err, conn.ErrSlowConsumer):
		return "slow"
	}
	return "error:" + err.Error()
}

func errFromName(node, name string) error {
	switch name {
	case "":
		return nil
	case "gone":
		return conn.ErrGone
	case "slow":
		return conn.ErrSlowConsumer
	}
	if len(name) > 6 && name[:6] == "error:" {
		name = name[6:]
	}
	return fmt.Errorf("redisbus: node %s: %s", node, name)
}

// healthLoop pings the node's own channel every HealthInterval.
func (b *Bus) healthLoop(ctx context.Context) {
	t := time.NewTicker(b.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, b.opts.HealthInterval)
		if err := b.ping(pctx); err != nil && ctx.Err() == nil {
			b.setErr(err)
		}
		cancel()
	}
}

// ping publishes a ping to the node's own channel and waits for it.
func (b *Bus) ping(ctx context.Context) error {
	b.mu.Lock()
	me := b.node
	b.mu.Unlock()
	id, ch := b.register()
	defer b.unregister(id)
	n, err := b.rdb.Publish(ctx, b.nodeChan(me), envelope{kind: kindPing, id: id, sender: me}.encode()).Result()
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if n == 0 {
		return errors.New("ping: the node's own channel has no subscriber yet")
	}
	select {
	case <-ch:
		b.lastOK.Store(time.Now().UnixNano())
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ping through own channel: no delivery: %w", ctx.Err())
	}
}

func (b *Bus) setErr(err error) {
	b.mu.Lock()
	b.lastErr = err
	b.mu.Unlock()
}

func (b *Bus) register() (uint64, chan envelope) {
	id := b.seq.Add(1)
	ch := make(chan envelope, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	return id, ch
}

func (b *Bus) unregister(id uint64) {
	b.mu.Lock()
	delete(b.pending, id)
	b.mu.Unlock()
}

// Health reports nil while a ping through the node's own channel came back
// within HealthGrace; otherwise an error wrapping bus.ErrUnavailable with
// the last failure. It does no I/O.
func (b *Bus) Health(context.Context) error {
	b.mu.Lock()
	running, closed, lastErr := b.ps != nil, b.closed, b.lastErr
	b.mu.Unlock()
	if closed || !running {
		return fmt.Errorf("%w: not running", bus.ErrUnavailable)
	}
	last := b.lastOK.Load()
	if since := time.Since(time.Unix(0, last)); last == 0 || since > b.opts.HealthGrace {
		return fmt.Errorf("%w: no delivery through own channel for %v (last error: %v)", bus.ErrUnavailable, since.Round(time.Millisecond), lastErr)
	}
	return nil
}

// Stats reports the counters.
func (b *Bus) Stats() Stats {
	return Stats{Failed: b.failed.Load(), Malformed: b.malformed.Load()}
}

func (b *Bus) self() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.ps == nil {
		return "", fmt.Errorf("%w: not running", bus.ErrUnavailable)
	}
	return b.node, nil
}

// call sends a request to node and waits for its answer.
func (b *Bus) call(ctx context.Context, node string, o op, connID string, data []byte) (envelope, error) {
	if err := ctx.Err(); err != nil {
		return envelope{}, fmt.Errorf("redisbus: %s %s on node %s: %w", o, connID, node, err)
	}
	me, err := b.self()
	if err != nil {
		return envelope{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	id, ch := b.register()
	defer b.unregister(id)
	req := envelope{kind: kindRequest, op: o, id: id, sender: me, a: connID, b: data}
	n, err := b.rdb.Publish(ctx, b.nodeChan(node), req.encode()).Result()
	if err != nil {
		b.failed.Add(1)
		return envelope{}, fmt.Errorf("redisbus: %s %s on node %s: %w (%v)", o, connID, node, bus.ErrUnavailable, err)
	}
	if n == 0 {
		return envelope{}, fmt.Errorf("redisbus: node %s is not on the bus: %w", node, conn.ErrGone)
	}
	select {
	case r := <-ch:
		return r, errFromName(node, r.a)
	case <-ctx.Done():
		return envelope{}, fmt.Errorf("redisbus: %s %s on node %s: no answer: %w (%v)", o, connID, node, bus.ErrUnavailable, ctx.Err())
	case <-b.done:
		return envelope{}, fmt.Errorf("redisbus: %s %s on node %s: %w (bus closed)", o, connID, node, bus.ErrUnavailable)
	}
}

// Send asks node to deliver data to connID.
func (b *Bus) Send(ctx context.Context, node, connID string, data []byte) error {
	_, err := b.call(ctx, node, opSend, connID, data)
	return err
}

// Disconnect asks node to close connID.
func (b *Bus) Disconnect(ctx context.Context, node, connID string) error {
	_, err := b.call(ctx, node, opDisconnect, connID, nil)
	return err
}

// Describe asks node for connID's state.
func (b *Bus) Describe(ctx context.Context, node, connID string) (conn.State, error) {
	r, err := b.call(ctx, node, opDescribe, connID, nil)
	if err != nil {
		return conn.State{}, err
	}
	var st conn.State
	if err := json.Unmarshal(r.b, &st); err != nil {
		return conn.State{}, fmt.Errorf("redisbus: describe %s on node %s: bad answer: %w", connID, node, err)
	}
	return st, nil
}

// Subscribe declares this node's interest in topic. The interest is kept
// even when Redis cannot be reached (the error wraps bus.ErrUnavailable)
// and declared again on every reconnect.
func (b *Bus) Subscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisbus: subscribe %q: %w", topic, err)
	}
	b.mu.Lock()
	b.topics[topic] = struct{}{}
	ps := b.ps
	b.mu.Unlock()
	if ps == nil {
		return nil // Run subscribes
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	if err := ps.Subscribe(ctx, b.topicChan(topic)); err != nil {
		return fmt.Errorf("redisbus: subscribe %q: %w (%v); declared again on reconnect", topic, bus.ErrUnavailable, err)
	}
	return nil
}

// Unsubscribe withdraws this node's interest in topic.
func (b *Bus) Unsubscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisbus: unsubscribe %q: %w", topic, err)
	}
	b.mu.Lock()
	delete(b.topics, topic)
	ps := b.ps
	b.mu.Unlock()
	if ps == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	if err := ps.Unsubscribe(ctx, b.topicChan(topic)); err != nil {
		return fmt.Errorf("redisbus: unsubscribe %q: %w (%v)", topic, bus.ErrUnavailable, err)
	}
	return nil
}

// Publish hands data to every other node subscribed to topic.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	return b.publish(ctx, b.topicChan(topic), envelope{kind: kindPublish, a: topic, b: data}, "publish "+topic)
}

// Broadcast hands data to every other node.
func (b *Bus) Broadcast(ctx context.Context, data []byte) error {
	return b.publish(ctx, b.broadcastChan(), envelope{kind: kindBroadcast, b: data}, "broadcast")
}

func (b *Bus) publish(ctx context.Context, ch string, e envelope, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisbus: %s: %w", what, err)
	}
	me, err := b.self()
	if err != nil {
		return err
	}
	e.sender = me
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	if err := b.rdb.Publish(ctx, ch, e.encode()).Err(); err != nil {
		b.failed.Add(1)
		return fmt.Errorf("redisbus: %s: %w (%v)", what, bus.ErrUnavailable, err)
	}
	return nil
}

// Close leaves the bus and returns once no Handler call is running.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.closed = true
	ps, stop := b.ps, b.stop
	b.mu.Unlock()
	close(b.done)
	if stop != nil {
		stop()
	}
	var err error
	if ps != nil {
		err = ps.Close()
	}
	b.wg.Wait()
	return err
}
