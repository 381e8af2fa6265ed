package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSource reads a Redis stream through a consumer group shared by
// every node, each node a consumer of the group named after it. Entries
// left pending longer than MinIdle (their node stopped, or their publish
// failed) are claimed by a node with XAUTOCLAIM and delivered again.
type RedisSource struct {
	// Client is the Redis connection. Required.
	Client redis.UniversalClient
	// Stream is the stream's key. Required.
	Stream string
	// Group names the consumer group, created (with the stream) when
	// missing, reading from the stream's first entry. Empty means
	// "switchboard-" and the consumer's name.
	Group string
	// Field is the entry's field that holds the event. Empty means "data".
	Field string
	// MinIdle is how long an entry stays pending before another delivery
	// claims it: the delay of a Redis stream's retries. Zero means 30s.
	MinIdle time.Duration
	// DeadLetter is the stream dead letters are added to, with the
	// event in the field "data" and the reason in "reason". Empty means
	// the stream's key and ":dead".
	DeadLetter string
	// Close, when set, is called by the consumer's Close (a connection of
	// the consumer's own).
	Close func() error
}

// DefaultMinIdle is RedisSource.MinIdle's default.
const DefaultMinIdle = 30 * time.Second

type redisSource struct {
	o Options
	s RedisSource
}

func startRedis(ctx context.Context, o Options) (source, claims, error) {
	s := *o.Redis
	if s.Client == nil || s.Stream == "" {
		return nil, nil, fmt.Errorf("%w: consumer %s: redis needs a connection and a stream key", ErrConfig, o.Name)
	}
	if s.Group == "" {
		s.Group = "switchboard-" + o.Name
	}
	if s.Field == "" {
		s.Field = "data"
	}
	if s.MinIdle == 0 {
		s.MinIdle = DefaultMinIdle
	}
	if s.DeadLetter == "" {
		s.DeadLetter = s.Stream + ":dead"
	}
	fail := func(err error) (source, claims, error) {
		if s.Close != nil {
			_ = s.Close()
		}
		return nil, nil, err
	}
	if s.DeadLetter == s.Stream {
		return fail(fmt.Errorf("%w: consumer %s: the dead-letter stream is the stream it reads", ErrConfig, o.Name))
	}
	cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	err := s.Client.XGroupCreateMkStream(cctx, s.Stream, s.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fail(fmt.Errorf("consumer %s: group %s on %s: %w", o.Name, s.Group, s.Stream, err))
	}
	return &redisSource{o: o, s: s}, &redisClaims{rdb: s.Client, prefix: "switchboard:idem:" + o.Name + ":", node: o.Node, window: o.Window}, nil
}

func (r *redisSource) kind() string     { return "redis" }
func (r *redisSource) describe() string { return r.s.Stream + " group " + r.s.Group }

func (r *redisSource) close() error {
	if r.s.Close != nil {
		return r.s.Close()
	}
	return nil
}

func (r *redisSource) lag(ctx context.Context) (int64, error) {
	groups, err := r.s.Client.XInfoGroups(ctx, r.s.Stream).Result()
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		if g.Name == r.s.Group {
			return max(g.Lag, 0) + g.Pending, nil
		}
	}
	return 0, fmt.Errorf("group %s not found", r.s.Group)
}

// run reads new entries, and every MinIdle/2 (at most every second)
// claims those left pending: each claim scans the group's whole pending
// list, on every node.
func (r *redisSource) run(ctx context.Context, handle func(context.Context, delivery)) {
	every := max(r.s.MinIdle/2, time.Second)
	// A read blocks a second at most: Close waits for it, and the claims
	// come between reads.
	const block = time.Second
	var lastClaim time.Time
	for ctx.Err() == nil {
		if time.Since(lastClaim) >= every {
			lastClaim = time.Now()
			if err := r.reclaim(ctx, handle); err != nil && ctx.Err() == nil {
				r.o.Logger.Warn("consumer: pending entries not claimed; trying again", "consumer", r.o.Name, "err", err)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, block+r.o.CallTimeout)
		streams, err := r.s.Client.XReadGroup(rctx, &redis.XReadGroupArgs{Group: r.s.Group, Consumer: r.o.Node,
			Streams: []string{r.s.Stream, ">"}, Count: int64(r.o.Batch), Block: block}).Result()
		cancel()
		if err != nil {
			if errors.Is(err, redis.Nil) || ctx.Err() != nil {
				continue
			}
			r.o.Logger.Warn("consumer: cannot read the stream; trying again", "consumer", r.o.Name, "err", err)
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// The stream or group was deleted: create them again.
				cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
				_ = r.s.Client.XGroupCreateMkStream(cctx, r.s.Stream, r.s.Group, "0").Err()
				cancel()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second): // retry pacing
			}
			continue
		}
		for _, st := range streams {
			for _, m := range st.Messages {
				handle(ctx, r.delivery(m, 1))
			}
		}
	}
}

// reclaim claims the entries pending longer than MinIdle, of any consumer
// of the group, and delivers them again.
func (r *redisSource) reclaim(ctx context.Context, handle func(context.Context, delivery)) error {
	start := "0-0"
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
		msgs, next, err := r.s.Client.XAutoClaim(cctx, &redis.XAutoClaimArgs{Stream: r.s.Stream, Group: r.s.Group,
			MinIdle: r.s.MinIdle, Start: start, Count: int64(r.o.Batch), Consumer: r.o.Node}).Result()
		cancel()
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			counts, err := r.deliveries(ctx, msgs)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				handle(ctx, r.delivery(m, max(counts[m.ID], 1)))
			}
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
	return nil
}

// deliveries reads how many times each of msgs, just claimed, was
// delivered: one XPENDING per entry, in one pipeline, since one over their
// range would also page through this node's other pending entries there.
func (r *redisSource) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int, error) {
	cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	defer cancel()
	cmds := make([]*redis.XPendingExtCmd, len(msgs))
	_, err := r.s.Client.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, m := range msgs {
			cmds[i] = p.XPendingExt(cctx, &redis.XPendingExtArgs{Stream: r.s.Stream, Group: r.s.Group,
				Start: m.ID, End: m.ID, Count: 1, Consumer: r.o.Node})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(msgs))
	for _, c := range cmds {
		for _, p := range c.Val() {
			counts[p.ID] = int(p.RetryCount)
		}
	}
	return counts, nil
}

func (r *redisSource) delivery(m redis.XMessage, attempt int) delivery {
	d := delivery{id: m.ID, attempt: attempt}
	switch v := m.Values[r.s.Field].(type) {
	case string:
		d.data = []byte(v)
	case nil:
		d.invalid = fmt.Errorf("the entry has no field %s", r.s.Field)
	default:
		d.data = fmt.Append(nil, v)
	}
	d.ack = func(ctx context.Context) error { return r.s.Client.XAck(ctx, r.s.Stream, r.s.Group, m.ID).Err() }
	// A failed entry stays pending: it is claimed again after MinIdle.
	d.retry = func(context.Context, time.Duration) error { return nil }
	d.progress = func() {
		// Claiming it again (to this consumer) resets its idle time.
		ctx, cancel := context.WithTimeout(context.Background(), r.o.CallTimeout)
		defer cancel()
		_ = r.s.Client.XClaimJustID(ctx, &redis.XClaimArgs{Stream: r.s.Stream, Group: r.s.Group, Consumer: r.o.Node, Messages: []string{m.ID}}).Err()
	}
	d.deadLetter = func(ctx context.Context, reason string) error {
		values := map[string]any{"data": string(d.data), "reason": reason, "id": m.ID, "stream": r.s.Stream,
			"consumer": r.o.Name, "deliveries": attempt}
		if d.invalid != nil {
			values["entry"] = fmt.Sprint(m.Values)
		}
		if err := r.s.Client.XAdd(ctx, &redis.XAddArgs{Stream: r.s.DeadLetter, Values: values}).Err(); err != nil {
			return fmt.Errorf("add to %s: %w", r.s.DeadLetter, err)
		}
		return r.s.Client.XAck(ctx, r.s.Stream, r.s.Group, m.ID).Err()
	}
	return d
}

// redisClaims keeps idempotency keys as Redis keys: SET NX with the lease
// while a delivery holds one, then "done" for the window.
type redisClaims struct {
	rdb    redis.UniversalClient
	prefix string
	node   string
	window time.Duration
}

func (k *redisClaims) claim(ctx context.Context, key string, lease time.Duration) (claimState, error) {
	rk := k.prefix + key
	ok, err := k.rdb.SetNX(ctx, rk, "busy "+k.node, lease).Result()
	if err != nil {
		return 0, err
	}
	if ok {
		return claimTaken, nil
	}
	v, err := k.rdb.Get(ctx, rk).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return k.claim(ctx, key, lease) // expired or released meanwhile
	case err != nil:
		return 0, err
	case v == "done":
		return claimDone, nil
	}
	return claimBusy, nil
}

func (k *redisClaims) done(ctx context.Context, key string) error {
	return k.rdb.Set(ctx, k.prefix+key, "done", k.window).Err()
}

// releaseScript deletes a key only while it is still held, not published.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func (k *redisClaims) release(ctx context.Context, key string) error {
	return releaseScript.Run(ctx, k.rdb, []string{k.prefix + key}, "busy "+k.node).Err()
}
