package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// Errors of the delivery methods: conn's, so that a holder on another node
// answers with the same ones.
var (
	// ErrGone is returned for a connection that does not exist or is closed.
	ErrGone = conn.ErrGone
	// ErrSlowConsumer is returned when a send overflowed the connection's
	// queue; the connection is then closed with 1008.
	ErrSlowConsumer = conn.ErrSlowConsumer
)

// ReasonDeleted is the close reason of DeleteConnection, as API Gateway reports it.
const ReasonDeleted = "Connection Closed Normally"

// ConnInfo describes a live connection for the management API.
type ConnInfo struct {
	ConnID       string
	ConnectedAt  time.Time
	LastActiveAt time.Time
	SourceIP     string
	UserAgent    string
	Principal    string
	User         string
	Topics       []string
	// Node is the node holding the connection; empty on a node alone.
	Node string
}

var (
	_ builtin.Hub         = (*Hub)(nil)
	_ builtin.Nonblocking = (*Hub)(nil)
	_ builtin.Resumer     = (*Hub)(nil)
	_ bus.Handler         = (*Hub)(nil)
)

// Hub fronts the connections of the whole cluster and owns this node's: it
// delivers to one connection, to every connection, or to a topic's
// subscribers. It is three parts:
//
//   - the node-local index (sockets, topic -> local subscribers), read and
//     written without I/O, so a single node's deliveries never wait;
//   - the registry.Directory, which says which node holds which connection;
//   - the bus.Bus (nil for a node alone), which carries calls to the holder
//     of another node's connection and publish/broadcast to the other nodes.
//
// A delivery to a connection of this node never leaves the process. It is
// safe for concurrent use. Lock order: interestMu before mu; a History's
// store lock before mu (its Deliver takes mu); mu before a histSub's.
type Hub struct {
	dir         registry.Directory
	bus         bus.Bus
	node        string
	callTimeout time.Duration
	neverWaits  bool // no bus, and a directory that never waits: no call needs a bound

	mu     sync.RWMutex
	conns  map[string]*client
	topics map[string]map[*client]struct{} // topic -> local subscribers
	subs   map[*client]map[string]struct{} // local subscriber -> its topics
	hsubs  map[string]map[*client]*histSub // topic -> local subscribers that asked for the envelope

	tag     uint16       // this node's tag in the connection IDs it makes
	peersMu sync.RWMutex // guards peers
	// peers maps the tags seen in directory records to their node; "" when
	// two nodes were seen with one tag.
	peers map[uint16]string

	users    registry.Users    // nil when the directory indexes no users
	presence registry.Presence // set on a bus whose directory records topic members
	announce func(topic string) bool

	interestMu sync.Mutex          // serializes declarations of interest on the bus
	declared   map[string]struct{} // topics this node declared on the bus

	hist    History            // nil: no topic keeps history
	histOut prometheus.Counter // messages out of kept topics' deliveries
	metrics *metrics.Metrics
}

// HubOptions configures a hub. Directory is required; the zero value of
// every other field works.
type HubOptions struct {
	// Directory records which node holds which connection.
	Directory registry.Directory
	// Bus connects this node to the others; nil for a node alone, whose
	// deliveries then never leave the process.
	Bus bus.Bus
	// Node names this node on the bus and in the directory's records.
	Node string
	// Metrics counts deliveries; nil counts nowhere.
	Metrics *metrics.Metrics
	// CallTimeout bounds each directory and bus call. Default 5s.
	CallTimeout time.Duration
	// Announce reports whether a connection joining or leaving topic is
	// published to topic's subscribers (see PresenceEvent). Nil announces
	// none.
	Announce func(topic string) bool
	// History keeps the recent publications of the topics it keeps, for
	// subscribers that resume (SubscribeFrom); nil keeps none. StartHub
	// watches it: a kept topic's publications reach this node's
	// subscribers from the store, not from the bus, so on a cluster it must
	// be one every node shares (natshist, redishist), not a node's own (memhist).
	History History
}

// DefaultCallTimeout is HubOptions.CallTimeout's default.
const DefaultCallTimeout = 5 * time.Second

// NewHub returns the hub of a node alone, recording connections in dir and
// counting deliveries in m (nil counts nowhere).
func NewHub(dir registry.Directory, node string, m *metrics.Metrics) *Hub {
	return newHub(HubOptions{Directory: dir, Node: node, Metrics: m})
}

// StartHub returns a hub for o and, when o.Bus is set, joins the bus as
// o.Node with the hub as its handler (bounded by ctx).
func StartHub(ctx context.Context, o HubOptions) (*Hub, error) {
	if o.Directory == nil {
		return nil, errors.New("gateway: hub needs a directory")
	}
	if o.Bus != nil && o.Node == "" {
		return nil, errors.New("gateway: a hub on a bus needs a node name")
	}
	h := newHub(o)
	if o.History != nil {
		if err := o.History.Watch(h.deliverKept); err != nil {
			return nil, fmt.Errorf("watch the topic history: %w", err)
		}
	}
	if o.Bus != nil {
		if err := o.Bus.Run(ctx, o.Node, h); err != nil {
			return nil, fmt.Errorf("join the bus as %s: %w", o.Node, err)
		}
	}
	return h, nil
}

func newHub(o HubOptions) *Hub {
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	users, _ := o.Directory.(registry.Users)
	presence, _ := o.Directory.(registry.Presence)
	if o.Bus == nil {
		presence = nil // a node alone answers from its own index
	}
	var histOut prometheus.Counter
	if o.History != nil {
		histOut = o.Metrics.MessagesOut.WithLabelValues(historySource)
	}
	return &Hub{
		histOut:     histOut,
		users:       users,
		presence:    presence,
		announce:    o.Announce,
		dir:         o.Directory,
		bus:         o.Bus,
		node:        o.Node,
		callTimeout: o.CallTimeout,
		conns:       make(map[string]*client),
		topics:      make(map[string]map[*client]struct{}),
		subs:        make(map[*client]map[string]struct{}),
		hsubs:       make(map[string]map[*client]*histSub),
		hist:        o.History,
		declared:    make(map[string]struct{}),
		metrics:     o.Metrics,
		tag:         apigw.NodeTag(o.Node),
		peers:       make(map[uint16]string),
		neverWaits:  o.Bus == nil && registry.NeverWaits(o.Directory),
	}
}

// newConnID returns the ID of a new connection of this node. On a bus it
// carries the node's tag, so that other nodes find its holder without
// asking the directory (apigw.NewTaggedID); alone, it is all random.
func (h *Hub) newConnID() string {
	if h.bus == nil {
		return apigw.NewID()
	}
	return apigw.NewTaggedID(h.tag)
}

// learn records the holder of a directory record under its tag.
func (h *Hub) learn(rec registry.Record) {
	if rec.Node == h.node {
		return
	}
	tag := apigw.NodeTag(rec.Node)
	h.peersMu.RLock()
	node, seen := h.peers[tag]
	h.peersMu.RUnlock()
	if seen && node == rec.Node || seen && node == "" {
		return
	}
	h.peersMu.Lock()
	defer h.peersMu.Unlock()
	if node, seen := h.peers[tag]; !seen {
		h.peers[tag] = rec.Node
	} else if node != rec.Node {
		h.peers[tag] = "" // ambiguous: ask the directory
	}
}

// guess returns the node that the tag of id names, when exactly one known
// node has that tag and it is not this one.
func (h *Hub) guess(id string) (string, bool) {
	tag, ok := apigw.IDTag(id)
	if !ok || tag == h.tag {
		return "", false
	}
	h.peersMu.RLock()
	node := h.peers[tag]
	h.peersMu.RUnlock()
	return node, node != ""
}

// remote makes an addressed call to the holder of a connection this node
// does not hold open: first to the node its ID's tag names, when known;
// when that node does not answer for it (a tag two nodes share, one not yet
// seen, a node that is stuck), to the holder the directory names.
func (h *Hub) remote(ctx context.Context, id string, call func(ctx context.Context, node string) error) error {
	if h.bus == nil {
		return conn.ErrGone
	}
	guessed, ok := h.guess(id)
	var guessErr error
	if ok {
		cctx, cancel := h.bounded(ctx)
		guessErr = call(cctx, guessed)
		cancel()
		if guessErr == nil || errors.Is(guessErr, conn.ErrSlowConsumer) {
			return guessErr // the holder answered
		}
	}
	rec, err := h.holder(ctx, id)
	if err != nil {
		return err
	}
	if ok && rec.Node == guessed {
		return guessErr // the directory names the node that just failed
	}
	cctx, cancel := h.bounded(ctx)
	defer cancel()
	return call(cctx, rec.Node)
}

// bounded bounds one directory or bus call made for a caller. A node alone
// whose directory never waits needs no bound, and pays for no timer.
func (h *Hub) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.neverWaits {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, h.callTimeout)
}

// detached bounds one directory or bus call that must be made even when the
// caller gave up (a disconnect, a drain): it keeps ctx's values, not its
// cancellation.
func (h *Hub) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.neverWaits {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), h.callTimeout)
}

// sourceKey carries, in a delivery's context, the route whose integration
// sends it, for the messages-out metric.
type sourceKey struct{}

// withSource marks deliveries made under ctx as caused by routeKey.
func withSource(ctx context.Context, routeKey string) context.Context {
	return context.WithValue(ctx, sourceKey{}, routeKey)
}

// sourceOf names what caused a delivery: a route key, or the management API.
func sourceOf(ctx context.Context) string {
	if s, ok := ctx.Value(sourceKey{}).(string); ok {
		return s
	}
	return "(management)"
}

// out returns the messages-out counter of a source; callers resolve it once
// per call, not once per recipient.
func (h *Hub) out(source string) prometheus.Counter {
	return h.metrics.MessagesOut.WithLabelValues(source)
}

// send queues data on c and counts the delivery on out: every message to
// a single client goes through here.
func (h *Hub) send(c *client, typ wsconn.MessageType, data []byte, out prometheus.Counter) error {
	return h.answer(c, false, typ, data, out)
}

// answer is send for the answer to a message of c; onReader says it is
// sent by the reader that read the message, while it handles it, so that
// the reader writes it with the other answers of its read (wsconn's
// ReplyFrame).
func (h *Hub) answer(c *client, onReader bool, typ wsconn.MessageType, data []byte, out prometheus.Counter) error {
	f := wsconn.NewFrame(typ, data)
	var err error
	if onReader {
		err = h.dropped(c.ws.ReplyFrame(f))
	} else {
		err = h.queue(c, f)
	}
	if err == nil {
		out.Inc()
	}
	return err
}

// queue queues f on c, counting a drop; fan-outs encode their frame and
// count their deliveries once per call, not once per recipient.
func (h *Hub) queue(c *client, f wsconn.Frame) error { return h.dropped(c.ws.SendFrame(f)) }

// dropped counts a frame a full send queue refused, and returns err.
func (h *Hub) dropped(err error) error {
	if errors.Is(err, wsconn.ErrQueueFull) {
		h.metrics.Dropped.WithLabelValues(metrics.DropQueueFull).Inc()
	}
	return err
}

// record is c's directory record.
func (h *Hub) record(c *client) registry.Record {
	return registry.Record{
		ConnID:      c.info.ID,
		Node:        h.node,
		ConnectedAt: c.info.ConnectedAt,
		SourceIP:    c.info.SourceIP,
		UserAgent:   c.info.UserAgent,
		Principal:   c.info.Principal,
		User:        c.info.User,
	}
}

// LocalRecords returns the directory records of the connections this node
// holds, so that they can be added again when the directory lost them (a
// lease that lapsed, an engine that restarted empty).
func (h *Hub) LocalRecords() []registry.Record {
	h.mu.RLock()
	defer h.mu.RUnlock()
	recs := make([]registry.Record, 0, len(h.conns))
	for _, c := range h.conns {
		recs = append(recs, h.record(c))
	}
	return recs
}

// Holds reports whether this node holds connID (open or closing).
func (h *Hub) Holds(connID string) bool {
	h.mu.RLock()
	_, ok := h.conns[connID]
	h.mu.RUnlock()
	return ok
}

func (h *Hub) add(ctx context.Context, c *client) error {
	rec := h.record(c)
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	if err := h.dir.Add(ctx, rec); err != nil {
		return fmt.Errorf("register %s: %w", c.info.ID, err)
	}
	h.mu.Lock()
	h.conns[c.info.ID] = c
	h.mu.Unlock()
	return nil
}

// remove forgets a connection of this node: its subscriptions, the
// interest they declared on the bus, and its record.
func (h *Hub) remove(ctx context.Context, id string) error {
	h.mu.Lock()
	c := h.conns[id]
	delete(h.conns, id)
	var emptied, parted []string
	// The topics left matter only to presence: recorded, or announced.
	keepParted := h.presence != nil || h.announce != nil
	for topic := range h.subs[c] {
		if keepParted {
			parted = append(parted, topic)
		}
		if h.dropLocked(c, topic) {
			emptied = append(emptied, topic)
		}
	}
	h.mu.Unlock()
	var errs []error
	// The record first: other nodes must stop sending here at once, however
	// long withdrawing interest takes. Each call has a bound of its own.
	dctx, cancel := h.detached(ctx)
	if err := h.dir.Remove(dctx, id); err != nil {
		errs = append(errs, fmt.Errorf("unregister %s: %w", id, err))
	}
	cancel()
	errs = append(errs, h.part(ctx, id, parted...))
	for _, topic := range parted {
		h.announceLeave(ctx, c, topic)
	}
	for _, topic := range emptied {
		tctx, cancel := h.detached(ctx)
		errs = append(errs, h.syncInterest(tctx, topic))
		cancel()
	}
	return errors.Join(errs...)
}

// dropLocked removes c from topic's subscribers and reports whether topic
// has no local subscriber left.
func (h *Hub) dropLocked(c *client, topic string) bool {
	if h.hist != nil {
		h.dropHistSubLocked(c, topic)
	}
	if ts := h.subs[c]; ts != nil {
		delete(ts, topic)
		if len(ts) == 0 {
			delete(h.subs, c)
		}
	}
	subs, ok := h.topics[topic]
	if !ok {
		return false
	}
	delete(subs, c)
	if len(subs) > 0 {
		return false
	}
	delete(h.topics, topic)
	return true
}

// syncInterest makes this node's interest in topic on the bus match its
// local subscribers: declared while it has some, withdrawn when none.
func (h *Hub) syncInterest(ctx context.Context, topic string) error {
	if h.bus == nil {
		return nil
	}
	h.interestMu.Lock()
	defer h.interestMu.Unlock()
	h.mu.RLock()
	want := len(h.topics[topic]) > 0
	h.mu.RUnlock()
	if _, has := h.declared[topic]; has == want {
		return nil
	}
	if want {
		if err := h.bus.Subscribe(ctx, topic); err != nil {
			return fmt.Errorf("declare interest in %q: %w", topic, err)
		}
		h.declared[topic] = struct{}{}
		return nil
	}
	if err := h.bus.Unsubscribe(ctx, topic); err != nil {
		return fmt.Errorf("withdraw interest in %q: %w", topic, err)
	}
	delete(h.declared, topic)
	return nil
}

// local returns a connection of this node that is open: one that is closing
// is already gone for callers, as on API Gateway.
func (h *Hub) local(id string) (*client, bool) {
	h.mu.RLock()
	c, ok := h.conns[id]
	h.mu.RUnlock()
	if ok && c.ws.Closing() {
		return nil, false
	}
	return c, ok
}

// holder returns the node holding a connection this node does not hold
// open, or conn.ErrGone. A node alone asks no one.
func (h *Hub) holder(ctx context.Context, id string) (registry.Record, error) {
	if h.bus == nil {
		return registry.Record{}, conn.ErrGone
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	rec, err := h.dir.Lookup(ctx, id)
	if err == nil {
		h.learn(rec)
	}
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return registry.Record{}, conn.ErrGone
	case err != nil:
		return registry.Record{}, fmt.Errorf("look up %s: %w", id, err)
	case rec.Node == h.node: // ours, and closing or closed
		return registry.Record{}, conn.ErrGone
	}
	return rec, nil
}

// Nonblocking implements builtin.Nonblocking: a node alone never waits on
// its deliveries or subscriptions; a node on a bus does.
func (h *Hub) Nonblocking() bool { return h.bus == nil }

// Count returns how many connections this node holds.
func (h *Hub) Count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// messageType sends valid UTF-8 as text and anything else as binary.
func messageType(data []byte) wsconn.MessageType {
	if utf8.Valid(data) {
		return wsconn.Text
	}
	return wsconn.Binary
}

// Send delivers data to one connection of the cluster. It returns ErrGone
// for an unknown or closed connection and ErrSlowConsumer when the
// connection's queue overflowed.
func (h *Hub) Send(ctx context.Context, id string, data []byte) error {
	if c, ok := h.local(id); ok {
		return sendErr(h.send(c, messageType(data), data, h.out(sourceOf(ctx))))
	}
	return h.remote(ctx, id, func(ctx context.Context, node string) error {
		return h.bus.Send(ctx, node, id, data)
	})
}

func sendErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wsconn.ErrQueueFull):
		return ErrSlowConsumer
	default:
		return ErrGone
	}
}

// Broadcast implements builtin.Hub: data goes to every open connection of
// this node, encoded once, the same frame shared by all, then to the other
// nodes. It returns how many connections of this node it reached, and an
// error when the bus did not take it for the others.
func (h *Hub) Broadcast(ctx context.Context, data []byte) (int, error) {
	n := h.broadcastLocal(data, h.out(sourceOf(ctx)))
	if h.bus == nil {
		return n, nil
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	if err := h.bus.Broadcast(ctx, data); err != nil {
		return n, fmt.Errorf("broadcast to the other nodes: %w", err)
	}
	return n, nil
}

func (h *Hub) broadcastLocal(data []byte, out prometheus.Counter) int {
	f := wsconn.NewFrame(messageType(data), data)
	n := 0
	h.mu.RLock()
	for _, c := range h.conns {
		if h.queue(c, f) == nil {
			n++
		}
	}
	h.mu.RUnlock()
	out.Add(float64(n))
	return n
}

// Publish implements builtin.Hub: data goes to this node's subscribers of
// topic, encoded once, then to the other nodes that have subscribers. It
// returns how many connections of this node it reached, and an error when
// the bus did not take it for the others.
func (h *Hub) Publish(ctx context.Context, topic string, data []byte) (int, error) {
	if h.hist != nil && h.hist.Keeps(topic) {
		return h.publishKept(ctx, topic, data)
	}
	n := h.publishLocal(topic, data, h.out(sourceOf(ctx)))
	if h.bus == nil {
		return n, nil
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	if err := h.bus.Publish(ctx, topic, data); err != nil {
		return n, fmt.Errorf("publish %q to the other nodes: %w", topic, err)
	}
	return n, nil
}

func (h *Hub) publishLocal(topic string, data []byte, out prometheus.Counter) int {
	n := 0
	h.mu.RLock()
	if subs := h.topics[topic]; len(subs) > 0 {
		f := wsconn.NewFrame(messageType(data), data)
		for c := range subs {
			if h.queue(c, f) == nil {
				n++
			}
		}
	}
	h.mu.RUnlock()
	out.Add(float64(n))
	return n
}

// Subscribe implements builtin.Hub for a connection of this node; the
// topic's first local subscriber declares the node's interest on the bus,
// and no subscription returns before it is declared.
// The cap is checked on the local index, then the topic stored: the
// gateway runs one message of a connection at a time, so one connection's
// subscriptions never race each other.
func (h *Hub) Subscribe(ctx context.Context, connID, topic string, max int) error {
	return h.subscribe(ctx, connID, topic, max, nil)
}

// subscribe is Subscribe; hs, when not nil, makes the subscription receive
// the history envelope (SubscribeFrom), and nil makes it raw again.
func (h *Hub) subscribe(ctx context.Context, connID, topic string, max int, hs *histSub) error {
	h.mu.Lock()
	c, ok := h.conns[connID]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, registry.ErrNotFound)
	}
	ts := h.subs[c]
	_, held := ts[topic]
	if !held && max >= 0 && len(ts) >= max {
		h.mu.Unlock()
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, builtin.ErrTooManySubscriptions)
	}
	if ts == nil {
		ts = make(map[string]struct{})
		h.subs[c] = ts
	}
	ts[topic] = struct{}{}
	subs := h.topics[topic]
	if subs == nil {
		subs = make(map[*client]struct{})
		h.topics[topic] = subs
	}
	subs[c] = struct{}{}
	if h.hist != nil {
		h.setHistSubLocked(c, topic, hs)
	}
	h.mu.Unlock()
	if h.bus == nil {
		if !held {
			h.announceJoin(ctx, c, topic)
		}
		return nil
	}
	// Every subscriber waits until the node's interest is declared, not
	// only the first: until then, other nodes' publications would miss it.
	bctx, cancel := h.bounded(ctx)
	defer cancel()
	if err := h.syncInterest(bctx, topic); err != nil {
		// Without the node's interest, other nodes' publications would be
		// lost to this subscriber: refuse the subscription.
		_ = h.Unsubscribe(ctx, connID, topic)
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, err)
	}
	if err := h.join(bctx, c, topic); err != nil {
		_ = h.Unsubscribe(ctx, connID, topic)
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, err)
	}
	if !held {
		h.announceJoin(ctx, c, topic)
	}
	return nil
}

// Unsubscribe implements builtin.Hub; the topic's last local subscriber
// withdraws the node's interest on the bus.
func (h *Hub) Unsubscribe(ctx context.Context, connID, topic string) error {
	h.mu.Lock()
	c, ok := h.conns[connID]
	_, held := h.subs[c][topic]
	emptied := ok && h.dropLocked(c, topic)
	h.mu.Unlock()
	if held {
		if err := h.part(ctx, connID, topic); err != nil {
			return fmt.Errorf("unsubscribe %s from %q: %w", connID, topic, err)
		}
		h.announceLeave(ctx, c, topic)
	}
	if !emptied || h.bus == nil {
		return nil
	}
	ctx, cancel := h.detached(ctx)
	defer cancel()
	if err := h.syncInterest(ctx, topic); err != nil {
		return fmt.Errorf("unsubscribe %s from %q: %w", connID, topic, err)
	}
	return nil
}

// Conn describes a live connection of the cluster, or returns ErrGone.
func (h *Hub) Conn(ctx context.Context, id string) (ConnInfo, error) {
	if c, ok := h.local(id); ok {
		return h.describe(c), nil
	}
	rec, err := h.holder(ctx, id)
	if err != nil {
		return ConnInfo{}, err
	}
	return h.describeRemote(ctx, rec)
}

func (h *Hub) describeRemote(ctx context.Context, rec registry.Record) (ConnInfo, error) {
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	st, err := h.bus.Describe(ctx, rec.Node, rec.ConnID)
	if err != nil {
		return ConnInfo{}, err
	}
	return ConnInfo{
		ConnID:       rec.ConnID,
		ConnectedAt:  rec.ConnectedAt,
		LastActiveAt: st.LastActiveAt,
		SourceIP:     rec.SourceIP,
		UserAgent:    rec.UserAgent,
		Principal:    rec.Principal,
		User:         rec.User,
		Topics:       st.Topics,
		Node:         rec.Node,
	}, nil
}

// topicsOf returns c's topics, sorted.
func (h *Hub) topicsOf(c *client) []string {
	h.mu.RLock()
	topics := make([]string, 0, len(h.subs[c]))
	for t := range h.subs[c] {
		topics = append(topics, t)
	}
	h.mu.RUnlock()
	slices.Sort(topics)
	return topics
}

// List returns a page of the cluster's live connections in connection ID
// order. A page is short only when it is the last: connections that closed
// since the directory listed them are skipped and the page filled from the
// next records.
func (h *Hub) List(ctx context.Context, cursor string, limit int) ([]ConnInfo, string, error) {
	var out []ConnInfo
	for {
		want := 0
		if limit > 0 {
			want = limit - len(out)
		}
		lctx, cancel := h.bounded(ctx)
		page, err := h.dir.List(lctx, cursor, want)
		cancel()
		if err != nil {
			return nil, "", fmt.Errorf("list: %w", err)
		}
		for _, rec := range page.Records {
			h.learn(rec)
			info, err := h.describeRecord(ctx, rec)
			if errors.Is(err, ErrGone) {
				continue // closed since the listing
			}
			if err != nil {
				return nil, "", err
			}
			out = append(out, info)
		}
		if page.Next == "" || (limit > 0 && len(out) >= limit) {
			if out == nil {
				out = []ConnInfo{}
			}
			return out, page.Next, nil
		}
		cursor = page.Next
	}
}

func (h *Hub) describeRecord(ctx context.Context, rec registry.Record) (ConnInfo, error) {
	if rec.Node == h.node || h.bus == nil {
		c, ok := h.local(rec.ConnID)
		if !ok {
			return ConnInfo{}, ErrGone
		}
		return h.describe(c), nil
	}
	return h.describeRemote(ctx, rec)
}

// Disconnect closes a connection of the cluster normally (1000); $disconnect
// runs on its node once it is closed.
func (h *Hub) Disconnect(ctx context.Context, id string) error {
	if c, ok := h.local(id); ok {
		c.ws.Close(wsconn.StatusNormal, ReasonDeleted)
		return nil
	}
	return h.remote(ctx, id, func(ctx context.Context, node string) error {
		return h.bus.Disconnect(ctx, node, id)
	})
}

// closeAll starts a close of every connection with code and reason.
func (h *Hub) closeAll(code wsconn.StatusCode, reason string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.conns {
		c.ws.Close(code, reason)
	}
}

// describe describes a connection of this node, naming this node as its
// holder when it is on a bus.
func (h *Hub) describe(c *client) ConnInfo {
	info := c.describe(h.topicsOf(c))
	if h.bus != nil {
		info.Node = h.node
	}
	return info
}

func (c *client) describe(topics []string) ConnInfo {
	return ConnInfo{
		ConnID:       c.info.ID,
		ConnectedAt:  c.info.ConnectedAt,
		LastActiveAt: c.ws.LastActive(),
		SourceIP:     c.info.SourceIP,
		UserAgent:    c.info.UserAgent,
		Principal:    c.info.Principal,
		User:         c.info.User,
		Topics:       slices.Clip(topics),
	}
}

// remoteSource labels deliveries other nodes asked for in the
// messages-out metric.
const remoteSource = "(cluster)"

// HandleSend implements bus.Handler.
func (h *Hub) HandleSend(connID string, data []byte) error {
	c, ok := h.local(connID)
	if !ok {
		return conn.ErrGone
	}
	return sendErr(h.send(c, messageType(data), data, h.out(remoteSource)))
}

// HandleDisconnect implements bus.Handler.
func (h *Hub) HandleDisconnect(connID string) error {
	c, ok := h.local(connID)
	if !ok {
		return conn.ErrGone
	}
	c.ws.Close(wsconn.StatusNormal, ReasonDeleted)
	return nil
}

// HandleDescribe implements bus.Handler.
func (h *Hub) HandleDescribe(connID string) (conn.State, error) {
	c, ok := h.local(connID)
	if !ok {
		return conn.State{}, conn.ErrGone
	}
	return conn.State{LastActiveAt: c.ws.LastActive(), Topics: h.topicsOf(c)}, nil
}

// HandlePublish implements bus.Handler.
func (h *Hub) HandlePublish(topic string, data []byte) {
	h.publishLocal(topic, data, h.out(remoteSource))
}

// HandleBroadcast implements bus.Handler.
func (h *Hub) HandleBroadcast(data []byte) {
	h.broadcastLocal(data, h.out(remoteSource))
}
