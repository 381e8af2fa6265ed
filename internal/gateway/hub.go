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

	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// Errors of the delivery methods.
var (
	// ErrGone is returned for a connection that does not exist or is closed.
	ErrGone = errors.New("gateway: connection gone")
	// ErrSlowConsumer is returned when a send overflowed the connection's
	// queue; the connection is then closed with 1008.
	ErrSlowConsumer = errors.New("gateway: connection too slow, closed")
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
	Topics       []string
}

var _ builtin.Hub = (*Hub)(nil)

// Hub holds this node's open connections and delivers to them: to one
// connection, to every connection, or to a topic's subscribers. The registry
// is the directory of connections and subscriptions; the hub is the part that
// owns sockets. It is safe for concurrent use.
type Hub struct {
	reg  registry.Registry
	node string

	mu    sync.RWMutex
	conns map[string]*client

	metrics *metrics.Metrics
}

// NewHub returns a hub for this node, recording connections in reg and
// counting deliveries in m (nil counts nowhere).
func NewHub(reg registry.Registry, node string, m *metrics.Metrics) *Hub {
	if m == nil {
		m = metrics.New(nil)
	}
	return &Hub{reg: reg, node: node, conns: make(map[string]*client), metrics: m}
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
	err := h.queue(c, wsconn.NewFrame(typ, data))
	if err == nil {
		out.Inc()
	}
	return err
}

// queue queues f on c, counting a drop; fan-outs encode their frame and
// count their deliveries once per call, not once per recipient.
func (h *Hub) queue(c *client, f wsconn.Frame) error {
	err := c.ws.SendFrame(f)
	if errors.Is(err, wsconn.ErrQueueFull) {
		h.metrics.Dropped.WithLabelValues(metrics.DropQueueFull).Inc()
	}
	return err
}

func (h *Hub) add(ctx context.Context, c *client) error {
	rec := registry.Record{
		ConnID:      c.info.ID,
		Node:        h.node,
		ConnectedAt: c.info.ConnectedAt,
		SourceIP:    c.info.SourceIP,
		UserAgent:   c.info.UserAgent,
		Principal:   c.info.Principal,
	}
	if err := h.reg.Add(ctx, rec); err != nil {
		return fmt.Errorf("register %s: %w", c.info.ID, err)
	}
	h.mu.Lock()
	h.conns[c.info.ID] = c
	h.mu.Unlock()
	return nil
}

func (h *Hub) remove(ctx context.Context, id string) error {
	h.mu.Lock()
	delete(h.conns, id)
	h.mu.Unlock()
	if err := h.reg.Remove(ctx, id); err != nil {
		return fmt.Errorf("unregister %s: %w", id, err)
	}
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

// Send delivers data to one connection. It returns ErrGone for an unknown or
// closed connection and ErrSlowConsumer when the connection's queue overflowed.
func (h *Hub) Send(ctx context.Context, id string, data []byte) error {
	c, ok := h.local(id)
	if !ok {
		return ErrGone
	}
	return sendErr(h.send(c, messageType(data), data, h.out(sourceOf(ctx))))
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
// this node, encoded once, the same frame shared by all.
func (h *Hub) Broadcast(ctx context.Context, data []byte) (int, error) {
	f, out := wsconn.NewFrame(messageType(data), data), h.out(sourceOf(ctx))
	n := 0
	h.mu.RLock()
	for _, c := range h.conns {
		if h.queue(c, f) == nil {
			n++
		}
	}
	h.mu.RUnlock()
	out.Add(float64(n))
	return n, nil
}

// Publish implements builtin.Hub.
func (h *Hub) Publish(ctx context.Context, topic string, data []byte) (int, error) {
	ids, err := h.reg.Subscribers(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("subscribers of %q: %w", topic, err)
	}
	f, out := wsconn.NewFrame(messageType(data), data), h.out(sourceOf(ctx))
	n := 0
	h.mu.RLock()
	for _, id := range ids {
		if c, ok := h.conns[id]; ok && h.queue(c, f) == nil {
			n++
		}
	}
	h.mu.RUnlock()
	out.Add(float64(n))
	return n, nil
}

// Subscribe implements builtin.Hub. The cap is checked, then the topic
// stored: the gateway runs one message of a connection at a time, so one
// connection's subscriptions never race each other.
func (h *Hub) Subscribe(ctx context.Context, connID, topic string, max int) error {
	if max >= 0 {
		topics, err := h.reg.Topics(ctx, connID)
		if err != nil {
			return fmt.Errorf("topics of %s: %w", connID, err)
		}
		if len(topics) >= max && !slices.Contains(topics, topic) {
			return fmt.Errorf("subscribe %s to %q: %w", connID, topic, builtin.ErrTooManySubscriptions)
		}
	}
	if err := h.reg.Subscribe(ctx, connID, topic); err != nil {
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, err)
	}
	return nil
}

// Unsubscribe implements builtin.Hub.
func (h *Hub) Unsubscribe(ctx context.Context, connID, topic string) error {
	if err := h.reg.Unsubscribe(ctx, connID, topic); err != nil {
		return fmt.Errorf("unsubscribe %s from %q: %w", connID, topic, err)
	}
	return nil
}

// Conn describes a live connection, or returns ErrGone.
func (h *Hub) Conn(ctx context.Context, id string) (ConnInfo, error) {
	c, ok := h.local(id)
	if !ok {
		return ConnInfo{}, ErrGone
	}
	topics, err := h.reg.Topics(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return ConnInfo{}, ErrGone
	}
	if err != nil {
		return ConnInfo{}, fmt.Errorf("topics of %s: %w", id, err)
	}
	return c.describe(topics), nil
}

// List returns a page of live connections in connection ID order.
func (h *Hub) List(ctx context.Context, cursor string, limit int) ([]ConnInfo, string, error) {
	page, err := h.reg.List(ctx, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	out := make([]ConnInfo, 0, len(page.Records))
	for _, rec := range page.Records {
		info, err := h.Conn(ctx, rec.ConnID)
		if errors.Is(err, ErrGone) {
			continue // closed since the listing
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, info)
	}
	return out, page.Next, nil
}

// Disconnect closes a connection normally (1000); $disconnect runs once it is closed.
func (h *Hub) Disconnect(_ context.Context, id string) error {
	c, ok := h.local(id)
	if !ok {
		return ErrGone
	}
	c.ws.Close(wsconn.StatusNormal, ReasonDeleted)
	return nil
}

// closeAll starts a close of every connection with code and reason.
func (h *Hub) closeAll(code wsconn.StatusCode, reason string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.conns {
		c.ws.Close(code, reason)
	}
}

func (c *client) describe(topics []string) ConnInfo {
	return ConnInfo{
		ConnID:       c.info.ID,
		ConnectedAt:  c.info.ConnectedAt,
		LastActiveAt: c.ws.LastActive(),
		SourceIP:     c.info.SourceIP,
		UserAgent:    c.info.UserAgent,
		Principal:    c.info.Principal,
		Topics:       slices.Clip(topics),
	}
}
