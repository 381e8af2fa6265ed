// Package redisqueue keeps a cluster's queues in one Redis server: a
// queue.Store that every node of the cluster serves alike, whose messages
// outlive the node that took them (and the server's restarts, as far as
// its persistence keeps them).
//
// Keys, under Options.Prefix (default "switchboard:"), with <q> the queue's
// name as it is (names are letters, digits, - and _):
//
//	queue:<q>         hash, the queue's attributes as last declared by any
//	                  node (vis, delay, ret, wait in ns; maxbytes, dlq,
//	                  maxrc, maxmsgs), created (ms, its first declaration)
//	                  and seq, the last message key given
//	queue:<q>:msgs    hash, message key -> its body and message attributes,
//	                  encoded here (the scripts copy them, never read them)
//	queue:<q>:state   hash, message key -> JSON {i: message ID, s: sent (ms),
//	                  f: first received (ms, 0: never), n: receives,
//	                  t: the latest receive's token, d: dead-letter source}
//	queue:<q>:due     sorted set, message key by when it is receivable (ms)
//	queue:<q>:recv    sorted set, the keys of the messages received at least
//	                  once, with the same scores: the in-flight count
//	queue:<q>:sent    sorted set, message key by when it was sent (ms):
//	                  retention, and Peek's order
//	queues:changed    pub/sub channel: a queue's name, when a message of it
//	                  may have become receivable
//
// A message key is the queue's sequence number when the message arrived,
// 12 hex digits: keys sort in arrival order, so messages due in the same
// millisecond are received in the order they came. A receipt handle names
// the queue, the key and the receive's token, base64url-encoded.
//
// Every change is one Lua script, atomic, that reads the time from the
// server (TIME), so nodes whose clocks differ agree on visibility, delay and
// retention. Exact, as SQS has it and memqueue does: a message is received
// by one receive at a time, until its visibility timeout ends; a stale
// handle deletes nothing and cannot change a visibility (ErrNotInFlight); a
// message received maxReceiveCount times moves to the dead-letter queue
// when it comes due again, in the same script, or stays while that is
// full; a send is all or none; Info's counts are exact. Approximate: a
// script drops at most a thousand messages past their retention at once (a
// receive never returns one, but Info may count one until later calls
// dropped it), and a Redrive moves a large dead-letter queue in batches,
// each atomic, so messages that arrive meanwhile may stay.
//
// Declare is a node's: the node serves the queues its configuration
// declares, and answers ErrNotFound for others, while their messages stay
// in the server for the nodes that declare them (as during a rolling
// deploy). The attributes are the server's, the same on every node: the
// last Declare of any node sets them. A node that finds a queue's
// attributes gone (the server restarted without its data) writes its own
// declarations again.
//
// A long poll runs the receive script, and when it finds nothing waits for
// a notification on queues:changed (published by Send, a visibility made
// shorter, a move to a dead-letter queue, Redrive) or for the next
// message's due time, at most Options.Recheck, so a lost notification only
// delays a receive.
//
// The store needs one standalone server (or a failover client): its
// scripts compute their keys, which Redis Cluster refuses.
package redisqueue

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// Reasons Options.Left is told.
const (
	reasonExpired    = "expired"
	reasonDeadLetter = "dead_letter"
)

var _ queue.Store = (*Store)(nil)

// redriveBatch is how many messages one redrive script reads.
const redriveBatch = 500

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Prefix starts every key and the channel, so several clusters can
	// share one server. Empty means "switchboard:".
	Prefix string
	// Left is told of each message that leaves a queue without being
	// deleted, by the node whose call removed it: reason "expired" (its
	// retention ended) or "dead_letter" (moved after maxReceiveCount
	// receives). It must not block. Nil: no one is told.
	Left func(queue, reason string)
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Recheck is the longest a long poll waits without a notification
	// before it looks at the queue again. Zero means 1s.
	Recheck time.Duration
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard:"
	}
	if o.Left == nil {
		o.Left = func(string, string) {}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Recheck <= 0 {
		o.Recheck = time.Second
	}
	return o
}

// Store is a queue.Store over Redis, safe for concurrent use. It does not
// own the client: the caller closes it, after Close.
//
// declaring is taken before mu.
type Store struct {
	rdb  redis.UniversalClient
	o    Options
	skew atomic.Int64 // ms added to the server's clock, for tests

	ps        *redis.PubSub
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	subscribed atomic.Bool

	// declaring is held by whoever writes the served queues' attributes
	// (Declare, and a call that finds them lost) until served is what it
	// wrote: the server keeps the last writer's, and so does the node.
	declaring sync.Mutex

	mu      sync.Mutex
	served  map[string]queue.Attributes // the queues this node declared, with defaults
	watches map[string]*watch           // by queue, while receives wait on it
	waiters int                         // receives waiting in a long poll
}

// watch is how the receives waiting on one queue learn of a notification.
type watch struct {
	changed chan struct{} // closed, and replaced, on a notification
	refs    int
}

// New returns a store on rdb and subscribes to its notifications; Close
// ends the subscription. New does not wait for the server: a store whose
// server is down fails its calls until it is back.
func New(rdb redis.UniversalClient, o Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisqueue: no Redis client")
	}
	o = o.withDefaults()
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{rdb: rdb, o: o, stop: stop, done: make(chan struct{}), watches: map[string]*watch{}}
	// The PubSub remembers the channel even when the server is down, and
	// subscribes again after every reconnect.
	s.ps = rdb.Subscribe(ctx, s.channel())
	go s.listen(ctx)
	return s, nil
}

func (s *Store) channel() string { return s.o.Prefix + "queues:changed" }

// listen wakes the receives waiting on the queues named on the channel,
// until ctx ends.
func (s *Store) listen(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		msg, err := s.ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Idle: a ping finds a connection that died silently,
				// which the next read replaces.
				_ = s.ps.Ping(ctx)
				continue
			}
			if s.subscribed.Swap(false) {
				s.o.Logger.Debug("redisqueue: notifications interrupted; subscribing again", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // retry pacing
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.subscribed.Store(true)
				s.notifyAll() // what was published while unsubscribed is lost
			}
		case *redis.Message:
			s.notify(m.Payload)
		}
	}
}

// Close ends the subscription to notifications; long polls still running
// look at their queue every Options.Recheck. The keys stay in the server.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		_ = s.ps.Close() // ends a read in progress
		<-s.done
	})
	return nil
}

// watch registers a waiting receive's interest in name; release ends it.
func (s *Store) watch(name string) (changed <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watches[name]
	if w == nil {
		w = &watch{changed: make(chan struct{})}
		s.watches[name] = w
	}
	w.refs++
	return w.changed, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.refs--; w.refs == 0 && s.watches[name] == w {
			delete(s.watches, name)
		}
	}
}

func (s *Store) notify(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watches[name]; w != nil {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

func (s *Store) notifyAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watches {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// WaitersForTest reports how many receives wait in a long poll.
func (s *Store) WaitersForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

// SubscribedForTest reports whether the store receives notifications, so
// that a test publishes once they reach it.
func (s *Store) SubscribedForTest() bool { return s.subscribed.Load() }

// run runs a script with the prefix and the clock's shift before args.
func (s *Store) run(ctx context.Context, sc *redis.Script, args ...any) ([]any, error) {
	args = append([]any{s.o.Prefix, s.skew.Load()}, args...)
	return sc.Run(ctx, s.rdb, nil, args...).Slice()
}

// left tells Options.Left of what a script dropped.
func (s *Store) left(name, reason string, n int64) {
	for range n {
		s.o.Left(name, reason)
	}
}

// nanos is a duration as the attributes hash keeps it.
func nanos(d time.Duration) string { return strconv.FormatInt(int64(d), 10) }

// Declare implements queue.Store: this node serves the queues of decls
// from now on, and the server keeps their attributes for every node (the
// last Declare of any node sets them). A queue left out keeps its
// messages in the server, for the nodes that still declare it and for a
// later Declare here. Declares run one at a time.
func (s *Store) Declare(ctx context.Context, decls []queue.Declaration) error {
	if err := queue.Check(decls); err != nil {
		return err
	}
	s.declaring.Lock()
	defer s.declaring.Unlock()
	served := make(map[string]queue.Attributes, len(decls))
	for _, d := range decls {
		served[d.Name] = d.Attributes.WithDefaults()
	}
	if err := s.write(ctx, served); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.served
	s.served = served
	s.mu.Unlock()
	for name := range old {
		if _, ok := served[name]; !ok {
			s.notify(name) // its waiting receives find it gone
		}
	}
	return nil
}

// write stores the attributes of served in the server.
func (s *Store) write(ctx context.Context, served map[string]queue.Attributes) error {
	args := []any{len(served)}
	for name, a := range served {
		args = append(args, name, nanos(a.VisibilityTimeout), nanos(a.Delay), nanos(a.Retention), a.MaxMessageBytes,
			a.DeadLetter, a.MaxReceiveCount, a.MaxMessages, nanos(a.ReceiveWait))
	}
	if _, err := s.run(ctx, declareScript, args...); err != nil {
		return fmt.Errorf("redisqueue: declare: %w", err)
	}
	return nil
}

// serves reports ErrNotFound unless this node serves queue name.
func (s *Store) serves(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.served[name]; !ok {
		return fmt.Errorf("%w: %s", queue.ErrNotFound, name)
	}
	return nil
}

// call runs a script on the served queue name (ARGV[3]) and reports what
// it dropped past retention. When the server has lost the queue's
// attributes (it restarted without its data), it writes those this node
// declared again, and runs the script once more.
func (s *Store) call(ctx context.Context, sc *redis.Script, op, name string, args ...any) (reply, error) {
	if err := s.serves(name); err != nil {
		return nil, err
	}
	args = append([]any{name}, args...)
	for try := 0; ; try++ {
		res, err := s.run(ctx, sc, args...)
		if err != nil {
			return nil, fmt.Errorf("redisqueue: %s %s: %w", op, name, err)
		}
		r := reply(res)
		if r.str(0) != "lost" {
			s.left(name, reasonExpired, r.int(1))
			return r, nil
		}
		if try > 0 {
			return nil, fmt.Errorf("redisqueue: %s %s: the server lost the queue's attributes", op, name)
		}
		s.o.Logger.Warn("redisqueue: the server lost the queues' attributes (a restart without its data?); declaring this node's again", "queue", name)
		if err := s.declareAgain(ctx); err != nil {
			return nil, err
		}
	}
}

// declareAgain writes the attributes of the queues this node serves, as
// its last Declare did, once no Declare runs.
func (s *Store) declareAgain(ctx context.Context) error {
	s.declaring.Lock()
	defer s.declaring.Unlock()
	s.mu.Lock()
	served := s.served
	s.mu.Unlock()
	return s.write(ctx, served)
}

// Send implements queue.Store, all or none.
func (s *Store) Send(ctx context.Context, name string, msgs []queue.Outgoing) ([]queue.Sent, error) {
	args := []any{len(msgs)}
	out := make([]queue.Sent, len(msgs))
	for i, m := range msgs {
		delay := int64(-1)
		if m.Delay != nil {
			if err := queue.CheckDelay(*m.Delay); err != nil {
				return nil, err
			}
			delay = int64(*m.Delay)
		}
		out[i] = queue.Sent{ID: apigw.NewUUID()}
		args = append(args, out[i].ID, encodeBody(m.Body, m.Attributes), m.Size(), delay)
	}
	r, err := s.call(ctx, sendScript, "send to", name, args...)
	if err != nil {
		return nil, err
	}
	switch r.str(0) {
	case "ok":
		return out, nil
	case "toolarge":
		return nil, fmt.Errorf("%w: a message of %d bytes is over the queue's %d", queue.ErrInvalid, r.int(2), r.int(3))
	case "full":
		return nil, fmt.Errorf("%w: %s holds %d messages", queue.ErrFull, name, r.int(2))
	}
	return nil, r.unexpected("send to " + name)
}

// Receive implements queue.Store.
func (s *Store) Receive(ctx context.Context, name string, opts queue.ReceiveOptions) ([]queue.Message, error) {
	max := opts.Max
	if max == 0 {
		max = 1
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	vis := int64(-1)
	if v := opts.Visibility; v != nil {
		vis = ceilMillis(*v)
	}
	start := time.Now()
	var deadline time.Time
	for {
		// Watched before the script runs: a notification published after
		// it looked is not missed.
		changed, release := s.watch(name)
		msgs, next, wait, err := s.take(ctx, name, max, vis)
		if err != nil || len(msgs) > 0 {
			release()
			return msgs, err
		}
		if deadline.IsZero() {
			if !opts.QueueWait {
				wait = opts.Wait
			}
			deadline = start.Add(min(wait, queue.MaxWait))
		}
		sleep := min(time.Until(deadline), s.o.Recheck)
		if next >= 0 {
			sleep = min(sleep, next)
		}
		if sleep <= 0 {
			release()
			return nil, nil
		}
		s.mu.Lock()
		s.waiters++
		s.mu.Unlock()
		timer := time.NewTimer(sleep)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		release()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// take runs one receive: the messages, how long until the next one is due
// (negative: none is), and the queue's ReceiveWait.
func (s *Store) take(ctx context.Context, name string, max int, vis int64) ([]queue.Message, time.Duration, time.Duration, error) {
	token := newToken()
	r, err := s.call(ctx, receiveScript, "receive from", name, max, vis, token)
	if err != nil {
		return nil, 0, 0, err
	}
	if r.str(0) != "ok" {
		return nil, 0, 0, r.unexpected("receive from " + name)
	}
	s.left(name, reasonDeadLetter, r.int(2))
	next := time.Duration(-1)
	if n := r.int(3); n >= 0 {
		next = time.Duration(n) * time.Millisecond
	}
	wait := time.Duration(r.int(4))
	msgs, err := s.messages(name, r[5:], token)
	return msgs, next, wait, err
}

// messages decodes the groups of seven a receive or a peek returns; with
// no token, they carry no receipt handle.
func (s *Store) messages(name string, r reply, token string) ([]queue.Message, error) {
	var out []queue.Message
	for ; len(r) >= 7; r = r[7:] {
		body, attrs, err := decodeBody(r.str(2))
		if err != nil {
			return out, fmt.Errorf("redisqueue: queue %s: message %s: %w", name, r.str(1), err)
		}
		m := queue.Message{ID: r.str(1), Body: body, Attributes: attrs, SentAt: time.UnixMilli(r.int(3)),
			ReceiveCount: int(r.int(5)), DeadLetterSource: r.str(6)}
		if f := r.int(4); f != 0 {
			m.FirstReceivedAt = time.UnixMilli(f)
		}
		if token != "" {
			m.ReceiptHandle = handle(name, r.str(0), token)
		}
		out = append(out, m)
	}
	return out, nil
}

// Delete implements queue.Store. A stale handle deletes nothing, as in SQS.
func (s *Store) Delete(ctx context.Context, name, receipt string) error {
	if err := s.serves(name); err != nil {
		return err
	}
	k, token, err := parseHandle(name, receipt)
	if err != nil {
		return err
	}
	r, err := s.call(ctx, deleteScript, "delete from", name, k, token)
	if err != nil {
		return err
	}
	if r.str(0) != "ok" {
		return r.unexpected("delete from " + name)
	}
	return nil
}

// ChangeVisibility implements queue.Store. A stale handle answers
// ErrNotInFlight, as in SQS.
func (s *Store) ChangeVisibility(ctx context.Context, name, receipt string, timeout time.Duration) error {
	if err := s.serves(name); err != nil {
		return err
	}
	if err := queue.CheckVisibility(timeout); err != nil {
		return err
	}
	k, token, err := parseHandle(name, receipt)
	if err != nil {
		return err
	}
	r, err := s.call(ctx, visibilityScript, "change visibility in", name, k, token, int64(timeout))
	if err != nil {
		return err
	}
	switch r.str(0) {
	case "ok":
		return nil
	case "notinflight":
		return fmt.Errorf("%w: %s", queue.ErrNotInFlight, receipt)
	}
	return r.unexpected("change visibility in " + name)
}

// Info implements queue.Store: the attributes in force on every node, and
// the queues this node serves whose dead-letter queue it is.
func (s *Store) Info(ctx context.Context, name string) (queue.Info, error) {
	r, err := s.call(ctx, infoScript, "info of", name)
	if err != nil {
		return queue.Info{}, err
	}
	if r.str(0) != "ok" || len(r) < 14 {
		return queue.Info{}, r.unexpected("info of " + name)
	}
	in := queue.Info{
		Name: name,
		Attributes: queue.Attributes{
			VisibilityTimeout: time.Duration(r.int(2)),
			Delay:             time.Duration(r.int(3)),
			Retention:         time.Duration(r.int(4)),
			MaxMessageBytes:   int(r.int(5)),
			DeadLetter:        r.str(6),
			MaxReceiveCount:   int(r.int(7)),
			MaxMessages:       int(r.int(8)),
			ReceiveWait:       time.Duration(r.int(9)),
		},
		CreatedAt: time.UnixMilli(r.int(10)),
		Visible:   int(r.int(11)),
		InFlight:  int(r.int(12)),
		Delayed:   int(r.int(13)),
	}
	in.Sources = s.sources(name)
	return in, nil
}

// sources returns the queues this node serves whose dead-letter queue is
// dlq, sorted.
func (s *Store) sources(dlq string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, a := range s.served {
		if a.DeadLetter == dlq {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Queues implements queue.Store: the queues this node serves.
func (s *Store) Queues(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.served)), nil
}

// Peek implements queue.Store: the messages the earliest sent first.
func (s *Store) Peek(ctx context.Context, name string, max int) ([]queue.Message, error) {
	r, err := s.call(ctx, peekScript, "peek at", name, max)
	if err != nil {
		return nil, err
	}
	if r.str(0) != "ok" {
		return nil, r.unexpected("peek at " + name)
	}
	return s.messages(name, r[2:], "")
}

// Redrive implements queue.Store, in batches of a few hundred messages,
// each moved atomically. A message whose source queue this node does not
// serve, or which is full, stays in dlq.
func (s *Store) Redrive(ctx context.Context, dlq string) (int, error) {
	if err := s.serves(dlq); err != nil {
		return 0, err
	}
	s.mu.Lock()
	served := slices.Collect(maps.Keys(s.served))
	s.mu.Unlock()
	if len(s.sources(dlq)) == 0 {
		return 0, fmt.Errorf("%w: no queue names %s as its dead-letter queue", queue.ErrNoDeadLetter, dlq)
	}
	moved, from := 0, int64(0)
	for {
		args := []any{from, redriveBatch}
		for _, n := range served {
			args = append(args, n)
		}
		r, err := s.call(ctx, redriveScript, "redrive", dlq, args...)
		if err != nil {
			return moved, err
		}
		if r.str(0) != "ok" {
			return moved, r.unexpected("redrive " + dlq)
		}
		moved += int(r.int(2))
		from = r.int(3)
		if r.int(4) == 1 {
			return moved, nil
		}
	}
}

// reply is a script's answer.
type reply []any

func (r reply) str(i int) string {
	if i >= len(r) {
		return ""
	}
	switch v := r[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

func (r reply) int(i int) int64 {
	if i >= len(r) {
		return 0
	}
	switch v := r[i].(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

func (r reply) unexpected(op string) error {
	return fmt.Errorf("redisqueue: %s: unexpected answer %q", op, r.str(0))
}

// ceilMillis is d in whole milliseconds, rounded up: a timeout never ends
// sooner than asked.
func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// handle makes a receipt handle: the queue, the message's key and the
// receive's token, base64-encoded, as opaque to clients as SQS's own.
func handle(q, k, token string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(q + "\n" + k + "\n" + token))
}

// parseHandle returns the key and token of a handle this store gave for
// queue q; ErrReceiptHandle for any other.
func parseHandle(q, h string) (k, token string, err error) {
	bad := fmt.Errorf("%w: %q", queue.ErrReceiptHandle, h)
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", "", bad
	}
	parts := strings.Split(string(raw), "\n")
	if len(parts) != 3 || parts[0] != q || !isHex(parts[1], 12) || !isHex(parts[2], 24) {
		return "", "", bad
	}
	return parts[1], parts[2], nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
