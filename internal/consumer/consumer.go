// Package consumer owns the consumers that read events from a bus (NATS
// JetStream subjects or Redis Streams) and publish each to a topic's
// subscribers across the cluster, with no function in between. A consumer
// takes an event at least once from its source, maps it to a topic and a
// message by a path or a template (eventbridge.Template), and publishes it
// through the hub. An idempotency key claimed in the engine, shared by every
// node, keeps a redelivered event from reaching a subscriber twice within a
// window; a failed publish is retried with backoff a bounded number of
// times, then the event goes to a dead-letter subject or stream and is
// acknowledged, as is an event that cannot be mapped.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
)

// Defaults of Options.
const (
	// DefaultWindow is how long an event's idempotency key is kept once
	// it was published: a redelivery within it is not published again.
	DefaultWindow = 5 * time.Minute
	// DefaultMaxDeliver bounds the deliveries of one event, the first
	// included; the last failure sends the event to the dead letters.
	DefaultMaxDeliver = 5
	// DefaultPublishTimeout bounds one publish to the topic's subscribers.
	DefaultPublishTimeout = 10 * time.Second
	// DefaultCallTimeout bounds each other call to the engine.
	DefaultCallTimeout = 5 * time.Second
	// DefaultLagInterval is how often the lag (pending events) is read.
	DefaultLagInterval = 5 * time.Second
	// DefaultBatch is how many events a consumer fetches at a time.
	DefaultBatch = 100
)

// DefaultBackoff is the delay before each retry of a failed event, the
// last one repeated.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// Dead-letter reasons, as the dead letters and the metrics name them.
const (
	ReasonMapping  = "mapping"  // the topic, data or key could not be taken from the event
	ReasonAttempts = "attempts" // every delivery allowed failed
)

// ErrConfig is wrapped by Start's errors for options it cannot use.
var ErrConfig = errors.New("consumer: invalid options")

// Publisher is what a consumer publishes through: Hub.Publish reaches the
// topic's subscribers across the cluster.
type Publisher = eventbridge.Publisher

// Options configures one consumer. Name, Topic, Hub and exactly one of
// NATS and Redis are required; the zero value of every other field works.
type Options struct {
	// Name names the consumer in metrics, logs, dead letters and the
	// engine's records (idempotency keys, the durable consumer or group's
	// default name): letters, digits, "-" and "_".
	Name string
	// NATS reads a JetStream stream; Redis, a Redis stream.
	NATS  *NATSSource
	Redis *RedisSource

	// Topic maps an event to the topic it is published to; Data to the
	// message (nil: the whole event); Key to its idempotency key (nil: the
	// message's ID in its source: the stream sequence, the entry ID).
	Topic, Data, Key *eventbridge.Template
	// Window is how long a published event's key is kept: a redelivery
	// within it is acknowledged without a second publish. Zero means
	// DefaultWindow.
	Window time.Duration
	// MaxDeliver bounds the deliveries of one event. Zero means
	// DefaultMaxDeliver.
	MaxDeliver int
	// Backoff is the delay before each retry, the last one repeated. Nil
	// means DefaultBackoff. A Redis stream retries after RedisSource.MinIdle.
	Backoff []time.Duration
	// PublishTimeout bounds one publish; an event's key is held for twice
	// that while it is published. Zero means DefaultPublishTimeout.
	PublishTimeout time.Duration
	// CallTimeout bounds each other call to the engine. Zero means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// Batch is how many events are fetched at a time. Zero means DefaultBatch.
	Batch int
	// LagInterval is how often the lag is read. Zero means DefaultLagInterval.
	LagInterval time.Duration

	// Hub publishes to the topic's subscribers.
	Hub Publisher
	// Node names this node: a Redis stream's consumer name, and the holder
	// of a claimed key. Empty means "switchboard".
	Node string
	// Metrics counts the consumer's work; nil counts nothing.
	Metrics *metrics.Consumers
	// Logger receives dead letters and failures. Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.LagInterval == 0 {
		o.LagInterval = DefaultLagInterval
	}
	if o.Node == "" {
		o.Node = "switchboard"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) check() error {
	switch {
	case !ValidName(o.Name):
		return fmt.Errorf("%w: name %q: use letters, digits, - and _", ErrConfig, o.Name)
	case (o.NATS == nil) == (o.Redis == nil):
		return fmt.Errorf("%w: consumer %s: set exactly one of nats and redis", ErrConfig, o.Name)
	case o.Topic == nil:
		return fmt.Errorf("%w: consumer %s: no topic", ErrConfig, o.Name)
	case o.Hub == nil:
		return fmt.Errorf("%w: consumer %s: no hub", ErrConfig, o.Name)
	case o.Window < 0 || o.MaxDeliver < 0 || o.PublishTimeout < 0 || o.CallTimeout < 0 || o.Batch < 0:
		return fmt.Errorf("%w: consumer %s: negative window, maxDeliver, timeout or batch", ErrConfig, o.Name)
	}
	for _, d := range o.Backoff {
		if d < 0 {
			return fmt.Errorf("%w: consumer %s: negative backoff", ErrConfig, o.Name)
		}
	}
	return nil
}

// ValidName reports whether name can name a consumer: one or more
// letters, digits, "-" and "_", which JetStream accepts in a durable
// consumer's and a bucket's name.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// delivery is one delivery of an event by a source.
type delivery struct {
	id      string // the message's ID in its source
	data    []byte // the event
	attempt int    // 1 for the first delivery
	invalid error  // why the source could not read an event from the message, if so
	// ack acknowledges the event: it is not delivered again.
	ack func(ctx context.Context) error
	// retry hands the event back, to be delivered again after delay.
	retry func(ctx context.Context, delay time.Duration) error
	// progress tells the source the event is still being worked on.
	progress func()
	// deadLetter puts the event on the dead letters with reason, then
	// acknowledges it.
	deadLetter func(ctx context.Context, reason string) error
}

// source is where a consumer's events come from.
type source interface {
	// run delivers events to handle until ctx ends.
	run(ctx context.Context, handle func(ctx context.Context, d delivery))
	// lag reports the events not yet acknowledged: not yet delivered, or
	// delivered and pending.
	lag(ctx context.Context) (int64, error)
	// kind names the source: "nats" or "redis".
	kind() string
	// describe names what is read, for the dashboard.
	describe() string
	close() error
}

// claims holds the idempotency keys in the engine, shared by every node.
type claims interface {
	// claim takes key for lease, unless it is held (claimBusy) or its event
	// was published (claimDone).
	claim(ctx context.Context, key string, lease time.Duration) (claimState, error)
	// done marks key's event published, for the window.
	done(ctx context.Context, key string) error
	// release gives key up after a failed publish.
	release(ctx context.Context, key string) error
}

type claimState int

const (
	claimTaken claimState = iota // this node holds the key: publish
	claimBusy                    // another delivery holds it: wait
	claimDone                    // published within the window: skip
)

// Stats are a consumer's counts since it started, for the dashboard.
type Stats struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`   // nats or redis
	Source      string `json:"source"` // the stream and what of it is read
	Lag         int64  `json:"lag"`    // events not yet acknowledged, as last read; -1 unknown
	Consumed    uint64 `json:"consumed"`
	Duplicates  uint64 `json:"duplicates"`
	Retries     uint64 `json:"retries"`
	DeadLetters uint64 `json:"deadLetters"`
}

// Consumer reads one source and publishes its events. Start it; Close
// stops it and waits for the event in progress.
type Consumer struct {
	opts   Options
	src    source
	claims claims
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// m counts in Prometheus; the atomics, for Stats, whether or not
	// Options.Metrics is set.
	m                                       *metrics.ConsumerCounters
	lagV                                    atomic.Int64
	consumed, duplicates, retries, deadLtrs atomic.Uint64

	// beforeAck, when set (tests), runs after a publish and before the
	// acknowledgement; an error leaves the event unacknowledged.
	beforeAck func(d delivery) error
}

// Start prepares o's source (the durable consumer, the group, the
// dead-letter stream) and its idempotency keys; Run then consumes until
// Close. ctx bounds the preparation. On error, the source's Close (a
// connection of the consumer's own) has been called.
func Start(ctx context.Context, o Options) (*Consumer, error) {
	if err := o.check(); err != nil {
		// A connection of the consumer's own is closed, as on any failure.
		if o.NATS != nil && o.NATS.Close != nil {
			o.NATS.Close()
		}
		if o.Redis != nil && o.Redis.Close != nil {
			_ = o.Redis.Close()
		}
		return nil, err
	}
	o = o.withDefaults()
	c := &Consumer{opts: o, log: o.Logger.With("consumer", o.Name), m: o.Metrics.For(o.Name, ReasonMapping, ReasonAttempts)}
	c.lagV.Store(-1)
	var err error
	if o.NATS != nil {
		c.src, c.claims, err = startNATS(ctx, o)
	} else {
		c.src, c.claims, err = startRedis(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Run consumes in the background until Close.
func (c *Consumer) Run() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() { c.src.run(ctx, c.handle) })
	c.wg.Go(func() { c.lagLoop(ctx) })
}

// Close stops consuming, waits for the event in progress (bounded by the
// publish and call timeouts), and closes what the source opened.
func (c *Consumer) Close() error {
	var err error
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		err = c.src.close()
	})
	return err
}

// Name is the consumer's name.
func (c *Consumer) Name() string { return c.opts.Name }

// Stats reports the consumer's counts.
func (c *Consumer) Stats() Stats {
	return Stats{Name: c.opts.Name, Kind: c.src.kind(), Source: c.src.describe(), Lag: c.lagV.Load(),
		Consumed: c.consumed.Load(), Duplicates: c.duplicates.Load(), Retries: c.retries.Load(), DeadLetters: c.deadLtrs.Load()}
}

func (c *Consumer) lagLoop(ctx context.Context) {
	read := func() {
		lctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		n, err := c.src.lag(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("consumer: lag not read", "err", err)
			}
			return
		}
		c.m.SetLag(n) // the gauge first: whoever saw Stats' lag finds it there too
		c.lagV.Store(n)
	}
	read()
	t := time.NewTicker(c.opts.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			read()
		}
	}
}

// backoff is the delay before the retry that follows attempt.
func (c *Consumer) backoff(attempt int) time.Duration {
	b := c.opts.Backoff
	if len(b) == 0 {
		return 0
	}
	return b[min(attempt, len(b))-1]
}

// handle publishes one delivery at most once per window, and
// acknowledges, retries or dead-letters it. It returns when the source
// has been told which.
func (c *Consumer) handle(ctx context.Context, d delivery) {
	if d.attempt > c.opts.MaxDeliver {
		// Delivered again after its last attempt (the node that made it
		// stopped before it could dead-letter it).
		c.deadLetter(ctx, d, ReasonAttempts, fmt.Sprintf("delivered %d times, more than maxDeliver %d", d.attempt, c.opts.MaxDeliver))
		return
	}
	topic, data, key, err := c.mapEvent(d)
	if err != nil {
		c.deadLetter(ctx, d, ReasonMapping, err.Error())
		return
	}
	if d.attempt > 1 {
		c.m.Redeliver()
	}
	lease := 2 * c.opts.PublishTimeout
	deadline := time.Now().Add(lease + c.opts.CallTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		st, err := c.claims.claim(cctx, key, lease)
		cancel()
		if err != nil {
			c.fail(ctx, d, fmt.Errorf("claim the idempotency key: %w", err))
			return
		}
		switch st {
		case claimDone:
			c.duplicates.Add(1)
			c.m.Duplicate()
			c.ack(ctx, d)
			return
		case claimBusy:
			// Another delivery of the same event is being published: wait
			// for its outcome, at most until its lease ends.
			if time.Now().After(deadline) {
				c.fail(ctx, d, errors.New("the idempotency key stayed held past its lease"))
				return
			}
			d.progress()
			select {
			case <-ctx.Done():
				return // unacknowledged: delivered again
			case <-time.After(100 * time.Millisecond): // poll pacing while another node publishes
			}
			continue
		}
		break
	}
	pctx, cancel := context.WithTimeout(ctx, c.opts.PublishTimeout)
	_, err = c.opts.Hub.Publish(pctx, topic, data)
	cancel()
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
		if rerr := c.claims.release(rctx, key); rerr != nil {
			c.log.Warn("consumer: idempotency key not released; a retry waits for its lease to end", "id", d.id, "err", rerr)
		}
		cancel()
		c.fail(ctx, d, fmt.Errorf("publish to %s: %w", topic, err))
		return
	}
	c.consumed.Add(1)
	c.m.Consume()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
	err = c.claims.done(dctx, key)
	cancel()
	if err != nil {
		// The event reached its subscribers; a redelivery may publish it again.
		c.log.Warn("consumer: idempotency key not marked published", "id", d.id, "err", err)
	}
	if c.beforeAck != nil {
		if err := c.beforeAck(d); err != nil {
			return
		}
	}
	c.ack(ctx, d)
}

// mapEvent takes the topic, the message and the idempotency key from d.
func (c *Consumer) mapEvent(d delivery) (topic string, data []byte, key string, err error) {
	if d.invalid != nil {
		return "", nil, "", d.invalid
	}
	if topic, err = c.opts.Topic.Render(d.data); err != nil {
		return "", nil, "", fmt.Errorf("topic: %v", err)
	}
	if strings.TrimSpace(topic) == "" {
		return "", nil, "", errors.New("topic: empty")
	}
	data = d.data
	if c.opts.Data != nil {
		s, err := c.opts.Data.Render(d.data)
		if err != nil {
			return "", nil, "", fmt.Errorf("data: %v", err)
		}
		data = []byte(s)
	}
	key = d.id
	if c.opts.Key != nil {
		if key, err = c.opts.Key.Render(d.data); err != nil {
			return "", nil, "", fmt.Errorf("key: %v", err)
		}
	}
	return topic, data, key, nil
}

func (c *Consumer) ack(ctx context.Context, d delivery) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
	defer cancel()
	if err := d.ack(actx); err != nil {
		// Delivered again later; the idempotency key keeps it from a second publish.
		c.log.Warn("consumer: event not acknowledged", "id", d.id, "err", err)
	}
}

// fail retries d after its backoff, or dead-letters it after its last attempt.
func (c *Consumer) fail(ctx context.Context, d delivery, err error) {
	if ctx.Err() != nil {
		return // stopping: unacknowledged, delivered again
	}
	if d.attempt >= c.opts.MaxDeliver {
		c.deadLetter(ctx, d, ReasonAttempts, err.Error())
		return
	}
	c.retries.Add(1)
	c.m.Retry()
	c.log.Debug("consumer: event retried", "id", d.id, "attempt", d.attempt, "err", err)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
	defer cancel()
	if rerr := d.retry(rctx, c.backoff(d.attempt)); rerr != nil {
		c.log.Warn("consumer: retry not scheduled; the event comes back after its ack wait", "id", d.id, "err", rerr)
	}
}

func (c *Consumer) deadLetter(ctx context.Context, d delivery, reason, detail string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
	defer cancel()
	if err := d.deadLetter(dctx, reason+": "+detail); err != nil {
		// Not acknowledged: delivered again, and dead-lettered then.
		c.log.Warn("consumer: dead letter not written; the event stays pending", "id", d.id, "err", err)
		return
	}
	c.deadLtrs.Add(1)
	c.m.DeadLetter(reason)
	c.log.Warn("consumer: event dead-lettered", "id", d.id, "attempts", d.attempt, "reason", reason, "detail", detail)
}
