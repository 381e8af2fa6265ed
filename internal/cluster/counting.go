package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// Operation labels of metrics.Cluster.CallFailures.
const (
	opAdd         = "directory_add"
	opRemove      = "directory_remove"
	opLookup      = "directory_lookup"
	opList        = "directory_list"
	opCount       = "directory_count"
	opSend        = "bus_send"
	opDisconnect  = "bus_disconnect"
	opDescribe    = "bus_describe"
	opSubscribe   = "bus_subscribe"
	opUnsubscribe = "bus_unsubscribe"
	opPublish     = "bus_publish"
	opBroadcast   = "bus_broadcast"
)

// countingDirectory counts the calls that failed to reach the engine;
// ErrNotFound is an answer, not a failure.
type countingDirectory struct {
	registry.Directory
	m *metrics.Cluster
}

func (d *countingDirectory) count(op string, err error) error {
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		d.m.CallFailures.WithLabelValues(op).Inc()
	}
	return err
}

func (d *countingDirectory) Add(ctx context.Context, rec registry.Record) error {
	return d.count(opAdd, d.Directory.Add(ctx, rec))
}

func (d *countingDirectory) Remove(ctx context.Context, connID string) error {
	return d.count(opRemove, d.Directory.Remove(ctx, connID))
}

func (d *countingDirectory) Lookup(ctx context.Context, connID string) (registry.Record, error) {
	rec, err := d.Directory.Lookup(ctx, connID)
	return rec, d.count(opLookup, err)
}

func (d *countingDirectory) List(ctx context.Context, cursor string, limit int) (registry.Page, error) {
	p, err := d.Directory.List(ctx, cursor, limit)
	return p, d.count(opList, err)
}

func (d *countingDirectory) Count(ctx context.Context) (int, error) {
	n, err := d.Directory.Count(ctx)
	return n, d.count(opCount, err)
}

// countingBus counts the calls that failed to reach the engine or the
// holder (a holder's answer, gone or slow, is not a failure), and reports
// each publish and broadcast the bus did not take: a metric and a log
// line at most every logEvery, with how many went unlogged.
type countingBus struct {
	bus.Bus
	m   *metrics.Cluster
	log *slog.Logger

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

// logEvery is the least time between two log lines about undelivered
// publishes and broadcasts.
const logEvery = 10 * time.Second

func (b *countingBus) count(op string, err error) error {
	if err != nil && !errors.Is(err, conn.ErrGone) && !errors.Is(err, conn.ErrSlowConsumer) {
		b.m.CallFailures.WithLabelValues(op).Inc()
	}
	return err
}

func (b *countingBus) Send(ctx context.Context, node, connID string, data []byte) error {
	return b.count(opSend, b.Bus.Send(ctx, node, connID, data))
}

func (b *countingBus) Disconnect(ctx context.Context, node, connID string) error {
	return b.count(opDisconnect, b.Bus.Disconnect(ctx, node, connID))
}

func (b *countingBus) Describe(ctx context.Context, node, connID string) (conn.State, error) {
	st, err := b.Bus.Describe(ctx, node, connID)
	return st, b.count(opDescribe, err)
}

func (b *countingBus) Subscribe(ctx context.Context, topic string) error {
	return b.count(opSubscribe, b.Bus.Subscribe(ctx, topic))
}

func (b *countingBus) Unsubscribe(ctx context.Context, topic string) error {
	return b.count(opUnsubscribe, b.Bus.Unsubscribe(ctx, topic))
}

func (b *countingBus) Publish(ctx context.Context, topic string, data []byte) error {
	err := b.Bus.Publish(ctx, topic, data)
	if err != nil {
		b.undelivered(opPublish, metrics.UndeliveredPublish, err)
	}
	return err
}

func (b *countingBus) Broadcast(ctx context.Context, data []byte) error {
	err := b.Bus.Broadcast(ctx, data)
	if err != nil {
		b.undelivered(opBroadcast, metrics.UndeliveredBroadcast, err)
	}
	return err
}

func (b *countingBus) undelivered(op, what string, err error) {
	b.m.CallFailures.WithLabelValues(op).Inc()
	b.m.Undelivered.WithLabelValues(what).Inc()
	b.mu.Lock()
	now := time.Now()
	if now.Sub(b.lastLog) < logEvery {
		b.suppressed++
		b.mu.Unlock()
		return
	}
	suppressed := b.suppressed
	b.lastLog, b.suppressed = now, 0
	b.mu.Unlock()
	args := []any{"op", what, "err", err}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	b.log.Warn("cluster: not delivered to the other nodes; the caller got an error", args...)
}
