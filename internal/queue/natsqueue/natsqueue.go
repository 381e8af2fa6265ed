// Package natsqueue keeps queues in NATS JetStream: a queue.Store whose
// messages survive a restart (a single node's embedded server with a store
// directory) and that every node of a cluster serves alike. It works with
// servers from 2.9 on: it uses no message scheduling.
//
// Each queue is a work-queue stream, <Prefix>_queue_<name> on the subject
// <prefix>.queue.<name>, on file storage, with MaxAge = the retention and
// MaxMsgs = MaxMessages (DiscardNew, so a full queue refuses a send), read
// through one durable pull consumer whose AckWait is the visibility
// timeout. A receive is a fetch, its ReceiveCount the delivery count the
// server keeps; a receipt handle is the delivery's acknowledgement
// subject, signed (HMAC-SHA256) with a key the engine keeps in the bucket
// <Prefix>_queues, so that any node can Delete (an acknowledgement,
// answered by the server) or ChangeVisibility (a negative acknowledgement
// with a delay: the server keeps the message pending and delivers it again
// after the delay), and none acts on a handle it was not given. A
// message is kept as its body, with its ID, send time, attributes and
// dead-letter source in headers; it is published with Nats-Msg-Id, so a
// retried publish is stored once.
//
// A queue's consumer lets 8192 pulls wait at once (its MaxWaiting), from
// all nodes together; each node lets Options.LongPolls (512) long polls of
// a queue wait at the server, and the others wait their turn on the node,
// so that a receive never fails for the number of receives waiting. A
// consumer made before keeps its MaxWaiting, which the server cannot
// change (512 by its default): each node's bound is lowered to it, and a
// pull that several nodes together take past it is asked again, after a
// pause (a long poll of 10s or more, which the server drops silently, once
// its heartbeats are missed, 10s later).
//
// A delayed message (the queue's delay or its own) waits in a second
// work-queue stream per queue, <Prefix>_qdelay_<name>, that a mover on
// every node serving the queue drains: a message not yet due is
// acknowledged negatively with its remaining delay, a due one published to
// the queue's stream and acknowledged. A delay thus never counts as a
// receive.
//
// What is exact: visibility timeouts, delays and receive counts (kept by
// the server); a message received MaxReceiveCount times moves to the
// dead-letter queue on the next receive that gets it; messages survive a
// restart of the server, and so do receive counts when it shuts down
// cleanly. What is approximate:
//   - A server killed at once may forget its consumers' latest state: a
//     message received (or handed back) just before comes back after its
//     queue's visibility timeout at the latest, and counts fewer receives;
//     a delayed message comes due up to 5s late. None is lost.
//   - Info's counts come from the streams' and consumer's state: a message
//     whose visibility timeout ended but that no receive has taken since
//     counts as in flight, a message being moved may count twice or not at
//     all for a moment.
//   - FirstReceivedAt is the time of the receive that returns it: the
//     server keeps no first delivery time.
//   - A stale receipt handle (of a message received again since) still
//     deletes the message, or changes its visibility: the server
//     identifies a delivery by the message's sequence.
//   - A batch send that would overfill the queue fails with ErrFull once
//     its first messages are stored; they are removed again, but a receive
//     may see them meanwhile. Delayed messages are bounded apart, by
//     MaxMessages too, until they move to the queue.
//   - A send whose acknowledgements do not come (a stream's leader dying
//     as it stores them) fails after CallTimeout, twice; messages of it
//     that the stream did store stay, and a caller that sends again has
//     them twice.
//   - A move to the dead-letter queue whose acknowledgement failed is made
//     again at the message's next delivery, a visibility timeout later;
//     the dead-letter queue stores it once when that falls within its
//     stream's duplicate window (the longest visibility timeout of the
//     queues declared here that name it, and a minute; from 2 minutes to
//     1 hour), so a source whose visibility timeout is over 59 minutes
//     may put a second copy in it.
//   - A message moved (delayed to due, to the dead-letter queue, redriven)
//     starts its retention again; Peek shows neither delayed messages nor
//     receive counts.
//   - A receive whose context ends while the server hands it a message
//     leaves that message hidden for its visibility timeout, its receive
//     counted.
//   - The largest message is what the server's max_payload carries, less
//     its headers: a nats-server's default (1 MB) refuses a queue's 1 MiB
//     message at Send with ErrInvalid unless max_payload is raised; the
//     embedded server (natsembed) carries it.
//
// Every node declares the queues of its own configuration, and the last to
// declare a queue sets what the engine keeps of it: its streams' limits
// (MaxMessages, retention, MaxMessageBytes, the duplicate window,
// Replicas) and its consumer's AckWait (the visibility timeout) and
// MaxAckPending. Nodes whose configurations differ overwrite each other's
// at each Declare (a start, a reload); a queue's other attributes (delay,
// ReceiveWait, dead-letter queue, MaxReceiveCount) apply to the sends and
// receives each node serves.
//
// A queue no longer declared is no longer served here, but its streams and
// messages stay: another node may still declare it, and a later
// declaration serves them again. The expiry of a message at the end of its
// retention is the server's and is not reported to Options.Left.
package natsqueue

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/natsjs"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// Headers of a kept message.
const (
	headerID     = "Switchboard-Id"     // the message's ID
	headerSent   = "Switchboard-Sent"   // when it was first sent, RFC 3339
	headerAttrs  = "Switchboard-Attrs"  // its attributes: base64 of their JSON
	headerSource = "Switchboard-Source" // the queue a dead letter came from
	headerDue    = "Switchboard-Due"    // when a delayed message is due, RFC 3339
)

// Consumers' durable names.
const (
	receivers = "receivers" // of a queue's stream
	movers    = "movers"    // of a queue's delay stream
)

// moverAckWait is how long a delayed message a mover took is left to it.
const moverAckWait = 5 * time.Second

// maxWaiting is how many pulls a queue's consumer lets wait at once, from
// all nodes (MaxWaiting; the server's default is 512): room for 16 nodes
// with LongPolls pulls each.
const maxWaiting = 8192

// retryFull is how long a message that cannot move (its target queue full)
// waits before it is tried again.
const retryFull = time.Second

var _ queue.Store = (*Store)(nil)

// Options configures a Store. The zero value works.
type Options struct {
	// Prefix is the first subject token and the streams' name prefix, so
	// that clusters can share a NATS: letters, digits, - and _. Empty
	// means "switchboard".
	Prefix string
	// Replicas is each stream's replica count. Zero means 1.
	Replicas int
	// Left is told of each message this store moves to a dead-letter
	// queue, with reason "dead_letter". It must not block. Nil: no one is
	// told.
	Left func(queue, reason string)
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
	// LongPolls bounds the receives of one queue that this store lets wait
	// at the server at once; more wait their turn here, until one of those
	// ends. It is lowered to the queue's consumer's MaxWaiting. Zero means
	// 512.
	LongPolls int
	// CallTimeout bounds each call the store makes to JetStream, within
	// the caller's context: a request, a publish's acknowledgement, an
	// acknowledgement of a delivery, each call of the store's own
	// background work. A long poll waits for its message as long as the
	// receive asked instead. Zero means 5s.
	CallTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Left == nil {
		o.Left = func(string, string) {}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.LongPolls <= 0 {
		o.LongPolls = 512
	}
	return o
}

// Store keeps queues in JetStream. Safe for concurrent use; Close stops
// its movers. The NATS connection is the caller's.
//
// declaring is taken before mu.
type Store struct {
	js jetstream.JetStream
	// pub publishes on js's connection, its acknowledgements awaited for
	// CallTimeout at most. Close leaves its reply subscription to end with
	// the connection: cleaning a publisher up may strand the client's
	// goroutine that watches the connection (it can read the watch after
	// the clean-up unset it).
	pub  jetstream.JetStream
	nc   *nats.Conn
	opts Options
	// key signs receipt handles, the same on every node of the engine:
	// read by the first Declare that serves a queue (under declaring,
	// before mu publishes the queues that use it), never changed after.
	key []byte

	ctx  context.Context // ended by Close: the movers' lifetime
	stop context.CancelFunc

	declaring sync.Mutex // one Declare at a time

	mu       sync.Mutex
	queues   map[string]*served // the declared queues, by name
	moving   map[string]jetstream.ConsumeContext
	stopped  []jetstream.ConsumeContext // movers stopped, maybe not yet done; Close waits for them
	starting sync.WaitGroup             // a Declare starting movers; Add under mu while not closed
	waiters  int                        // receives waiting in a long poll
	closed   bool
}

// served is a declared queue and its streams.
type served struct {
	name         string
	attrs        queue.Attributes // with defaults
	streamName   string
	subject      string
	delaySubject string
	stream       jetstream.Stream
	delayStream  jetstream.Stream
	consumer     jetstream.Consumer // receivers
	mover        jetstream.Consumer // movers
	polls        chan struct{}      // a token for each long poll waiting at the server
}

// New returns a store that serves no queue until Declare. It makes no
// stream or bucket: an engine whose nodes declare no queue holds nothing
// for them, and a cluster starting up waits for no replicated bucket it
// does not need.
func New(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	o = o.withDefaults()
	if err := queue.CheckName(o.Prefix); err != nil {
		return nil, fmt.Errorf("natsqueue: prefix %q: want 1 to 80 letters, digits, - and _", o.Prefix)
	}
	actx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	_, err := js.AccountInfo(actx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("natsqueue: JetStream: %w", err)
	}
	// A publish is sent to its stream's subject, whatever js's API prefix
	// or domain. Without a timeout, a lost acknowledgement would be
	// awaited, and count as pending, until the connection drops.
	pub, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(o.CallTimeout))
	if err != nil {
		return nil, fmt.Errorf("natsqueue: JetStream: %w", err)
	}
	sctx, stop := context.WithCancel(context.Background())
	return &Store{js: js, pub: pub, nc: js.Conn(), opts: o, ctx: sctx, stop: stop,
		queues: map[string]*served{}, moving: map[string]jetstream.ConsumeContext{}}, nil
}

// receiptKeyName is the key in <Prefix>_queues of the key that signs
// receipt handles: 32 random bytes, put once.
const receiptKeyName = "receipt-key"

// receiptKey reads the key that signs receipt handles from the bucket
// <Prefix>_queues, putting it first when no store has: a create that
// fails when the key is there, so that stores starting at once all read
// the one that was put first, every node accepts the handles of every
// other, and of itself before a restart. A replicated bucket waits for
// its peers: receiptKey tries again until ctx ends.
func receiptKey(ctx context.Context, js jetstream.JetStream, o Options) ([]byte, error) {
	bucket := o.Prefix + "_queues"
	attempt := func() ([]byte, error) {
		cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
		defer cancel()
		kv, err := js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "switchboard queues: the key that signs receipt handles",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
		})
		if err != nil {
			return nil, err
		}
		fresh := make([]byte, sha256.Size)
		_, _ = rand.Read(fresh) // never fails
		if _, err := kv.Create(cctx, receiptKeyName, fresh); err != nil &&
			!errors.Is(err, jetstream.ErrKeyExists) && !natsjs.WrongLast(err) {
			return nil, err
		}
		e, err := kv.Get(cctx, receiptKeyName)
		if err != nil {
			return nil, err
		}
		if len(e.Value()) != sha256.Size {
			return nil, fmt.Errorf("%s holds %d bytes, want %d", receiptKeyName, len(e.Value()), sha256.Size)
		}
		return e.Value(), nil
	}
	for {
		key, err := attempt()
		if err == nil {
			return key, nil
		}
		if pauseFor(ctx, 250*time.Millisecond); ctx.Err() != nil {
			return nil, fmt.Errorf("natsqueue: bucket %s: %w", bucket, err)
		}
	}
}

// Close stops the store's movers and waits for them: those serving, those
// stopped before (by a Declare that dropped their queue, or replaced) and
// those a Declare starts meanwhile. The streams and their messages stay.
// Calls after Close fail.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, cc := range s.moving {
		s.stopped = append(s.stopped, cc)
	}
	s.moving = nil
	s.mu.Unlock()
	s.stop()
	s.starting.Wait() // a mover started after Close is stopped at once
	s.mu.Lock()
	stopped := s.stopped
	s.stopped = nil
	s.mu.Unlock()
	for _, cc := range stopped {
		cc.Stop()
	}
	for _, cc := range stopped {
		<-cc.Closed() // after its handler's last message
	}
	return nil
}

// retire records cc, stopped or about to be, for Close to wait for, and
// forgets those done. s.mu is held.
func (s *Store) retire(cc jetstream.ConsumeContext) {
	s.stopped = slices.DeleteFunc(s.stopped, func(c jetstream.ConsumeContext) bool {
		select {
		case <-c.Closed():
			return true
		default:
			return false
		}
	})
	s.stopped = append(s.stopped, cc)
}

func (s *Store) names(name string) (stream, subject, delayStream, delaySubject string) {
	p := s.opts.Prefix
	return p + "_queue_" + name, p + ".queue." + name, p + "_qdelay_" + name, p + ".qdelay." + name
}

// Declare implements queue.Store. It creates or updates each queue's
// streams and consumers (and, with the first queue, reads or puts the key
// that signs receipt handles: see receiptKey), and starts a mover for each
// queue's delayed messages; a queue no longer declared keeps its streams
// and messages, for the nodes that still declare it.
func (s *Store) Declare(ctx context.Context, decls []queue.Declaration) error {
	if err := queue.Check(decls); err != nil {
		return err
	}
	s.declaring.Lock()
	defer s.declaring.Unlock()
	// The queues' streams, and the receipt key's bucket with the first
	// queue, are made at once: a replicated stream waits for its peers, and
	// one after another would add those waits up.
	var key []byte
	var keyErr error
	var wg sync.WaitGroup
	if len(decls) > 0 && s.key == nil {
		wg.Go(func() { key, keyErr = receiptKey(ctx, s.js, s.opts) })
	}
	made := make([]*served, len(decls))
	errs := make([]error, len(decls))
	redelivery := map[string]time.Duration{} // by dead-letter queue: its sources' longest visibility timeout
	for _, d := range decls {
		if dl := d.Attributes.DeadLetter; dl != "" {
			redelivery[dl] = max(redelivery[dl], d.Attributes.WithDefaults().VisibilityTimeout)
		}
	}
	for i, d := range decls {
		a := d.Attributes.WithDefaults()
		wg.Go(func() { made[i], errs[i] = s.ensure(ctx, d.Name, a, duplicateWindow(a.Retention, redelivery[d.Name])) })
	}
	wg.Wait()
	if err := errors.Join(append(errs, keyErr)...); err != nil {
		return err
	}
	if key != nil {
		s.key = key // before mu publishes the queues that use it
	}
	next := map[string]*served{}
	for i, d := range decls {
		next[d.Name] = made[i]
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("natsqueue: declare: %w", net.ErrClosed)
	}
	for name, q := range next {
		// The receives waiting here keep their turns.
		if old, ok := s.queues[name]; ok && cap(old.polls) == cap(q.polls) {
			q.polls = old.polls
		}
	}
	s.queues = next
	var stop []jetstream.ConsumeContext
	for name, cc := range s.moving {
		if _, ok := next[name]; !ok {
			stop = append(stop, cc)
			s.retire(cc)
			delete(s.moving, name)
		}
	}
	var start []*served
	for name, q := range next {
		cc, ok := s.moving[name]
		if ok {
			select {
			case <-cc.Closed(): // ended by an error (its consumer deleted): start again
				ok = false
			default:
			}
		}
		if !ok {
			start = append(start, q)
		}
	}
	s.starting.Add(1)
	defer s.starting.Done()
	s.mu.Unlock()
	for _, cc := range stop {
		cc.Stop()
	}
	for _, q := range start {
		if err := s.startMover(q); err != nil {
			return err
		}
	}
	return nil
}

// Bounds of a queue's stream's duplicate window: how long it remembers
// the message IDs published to it.
const (
	minDuplicates = 2 * time.Minute
	maxDuplicates = time.Hour
)

// duplicateWindow is the duplicate window of a queue's stream. A queue
// named as a dead-letter queue remembers the IDs of the messages moved to
// it for as long as a source may deliver one of them again after a move
// whose acknowledgement failed (redelivery, its longest visibility
// timeout; zero for a queue that is no dead-letter queue), and a minute
// more: at least minDuplicates, at most maxDuplicates (the server keeps
// every ID of the window in memory) and the queue's retention.
func duplicateWindow(retention, redelivery time.Duration) time.Duration {
	w := minDuplicates
	if redelivery > 0 {
		w = max(w, min(redelivery+time.Minute, maxDuplicates))
	}
	return min(w, retention)
}

// ensure creates or updates the streams and consumers of queue name,
// whose stream remembers message IDs for duplicates.
func (s *Store) ensure(ctx context.Context, name string, a queue.Attributes, duplicates time.Duration) (*served, error) {
	streamName, subject, delayName, delaySubject := s.names(name)
	q := &served{name: name, attrs: a, streamName: streamName, subject: subject, delaySubject: delaySubject}
	cfg := jetstream.StreamConfig{
		Name:        streamName,
		Description: "switchboard queue " + name,
		Subjects:    []string{subject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.Replicas,
		MaxAge:      a.Retention,
		MaxMsgs:     int64(a.MaxMessages),
		Discard:     jetstream.DiscardNew,
		// The body, the attributes (grown by their encoding) and the headers.
		MaxMsgSize: int32(2*a.MaxMessageBytes + 16<<10),
		Duplicates: duplicates,
	}
	var err error
	if q.stream, err = s.ensureStream(ctx, cfg); err != nil {
		return nil, err
	}
	cfg.Name, cfg.Description, cfg.Subjects = delayName, "switchboard queue "+name+": delayed messages", []string{delaySubject}
	cfg.Duplicates = duplicateWindow(a.Retention, 0) // a move is retried within moverAckWait
	if q.delayStream, err = s.ensureStream(ctx, cfg); err != nil {
		return nil, err
	}
	if q.consumer, err = s.ensureConsumer(ctx, streamName, jetstream.ConsumerConfig{
		Durable:       receivers,
		Description:   "switchboard receives of queue " + name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       a.VisibilityTimeout,
		MaxDeliver:    -1,
		MaxAckPending: a.MaxMessages,
		MaxWaiting:    maxWaiting,
	}); err != nil {
		return nil, fmt.Errorf("natsqueue: queue %s: consumer: %w", name, err)
	}
	q.polls = make(chan struct{}, max(1, min(s.opts.LongPolls, q.consumer.CachedInfo().Config.MaxWaiting)))
	mctx, cancel := s.call(ctx)
	defer cancel()
	q.mover, err = s.js.CreateOrUpdateConsumer(mctx, delayName, jetstream.ConsumerConfig{
		Durable:     movers,
		Description: "switchboard movers of queue " + name + "'s delayed messages",
		AckPolicy:   jetstream.AckExplicitPolicy,
		// A message whose mover is gone (or whose handing back a server
		// killed at once forgot) is delivered again after this.
		AckWait:    moverAckWait,
		MaxDeliver: -1,
		// Every delayed message is pending, handed back until it is due.
		MaxAckPending: a.MaxMessages,
	})
	if err != nil {
		return nil, fmt.Errorf("natsqueue: queue %s: delay consumer: %w", name, err)
	}
	return q, nil
}

// ensureConsumer creates the consumer of cfg on stream, or updates it. A
// consumer made before keeps its MaxWaiting, which the server does not let
// change (one made by an earlier version of this store has the server's
// default, 512).
func (s *Store) ensureConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cctx, cancel := s.call(ctx)
	c, err := s.js.Consumer(cctx, stream, cfg.Durable)
	cancel()
	switch {
	case err == nil:
		cfg.MaxWaiting = c.CachedInfo().Config.MaxWaiting
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, err
	}
	cctx, cancel = s.call(ctx)
	defer cancel()
	return s.js.CreateOrUpdateConsumer(cctx, stream, cfg)
}

// ensureStream creates the stream of cfg, or updates its limits. Every
// node runs this at start, at once: most find the stream made and leave
// it be.
func (s *Store) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	stream := func() (jetstream.Stream, error) {
		cctx, cancel := s.call(ctx)
		defer cancel()
		return s.js.Stream(cctx, cfg.Name)
	}
	st, err := stream()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cctx, cancel := s.call(ctx)
		st, err = natsjs.CreateStream(cctx, s.js, cfg) // or another node's
		cancel()
	}
	if err == nil {
		have := st.CachedInfo().Config
		if have.MaxAge != cfg.MaxAge || have.MaxMsgs != cfg.MaxMsgs || have.MaxMsgSize != cfg.MaxMsgSize ||
			have.Duplicates != cfg.Duplicates || have.Replicas != cfg.Replicas {
			cctx, cancel := s.call(ctx)
			st, err = s.js.UpdateStream(cctx, cfg)
			cancel()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsqueue: stream %s: %w", cfg.Name, err)
	}
	return st, nil
}

// call bounds one call to JetStream within ctx.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.CallTimeout)
}

func (s *Store) queue(name string) (*served, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("natsqueue: %w", net.ErrClosed)
	}
	q, ok := s.queues[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, name)
	}
	return q, nil
}

// Send implements queue.Store. The messages are published at once and
// their acknowledgements awaited together, each for CallTimeout, then once
// more for a message published again with its message ID (which the
// stream stores once). A send whose acknowledgements do not come fails
// with an error wrapping context.DeadlineExceeded, however long ctx
// lasts: the caller may send again, and the messages of the first send
// that the stream did store are then there twice.
func (s *Store) Send(ctx context.Context, name string, msgs []queue.Outgoing) ([]queue.Sent, error) {
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]queue.Sent, len(msgs))
	nms := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		if n := m.Size(); n > q.attrs.MaxMessageBytes {
			return nil, fmt.Errorf("%w: a message of %d bytes is over the queue's %d", queue.ErrInvalid, n, q.attrs.MaxMessageBytes)
		}
		delay := q.attrs.Delay
		if m.Delay != nil {
			delay = *m.Delay
		}
		if err := queue.CheckDelay(delay); err != nil {
			return nil, err
		}
		id := apigw.NewUUID()
		nm := newMsg(q.subject, id, id, m.Body, m.Attributes, now, "")
		if delay > 0 {
			nm.Subject = q.delaySubject
			nm.Header.Set(headerDue, now.Add(delay).UTC().Format(time.RFC3339Nano))
		}
		if size := len(nm.Data) + headerSize(nm.Header); size > int(s.nc.MaxPayload()) {
			return nil, fmt.Errorf("%w: a message of %d bytes with its headers is over the NATS server's max_payload of %d", queue.ErrInvalid, size, s.nc.MaxPayload())
		}
		nms[i], out[i] = nm, queue.Sent{ID: id}
	}
	acks := make([]*jetstream.PubAck, len(nms))
	errs := make([]error, len(nms))
	futures := make([]jetstream.PubAckFuture, 0, len(nms))
	for _, nm := range nms { // in order, so that a batch is stored in its order
		f, err := s.pub.PublishMsgAsync(nm)
		if err != nil {
			errs[len(futures)] = err
			break
		}
		futures = append(futures, f)
	}
	// Each acknowledgement comes, or fails, within CallTimeout (the
	// publisher's own bound); one that did not come is asked for again.
	var again sync.WaitGroup
	for i, f := range futures {
		select {
		case acks[i] = <-f.Ok():
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
				again.Go(func() { acks[i], errs[i] = s.publish(ctx, nms[i]) })
			} else {
				errs[i] = err
			}
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	again.Wait()
	var firstErr error
	var stored []*nats.Msg // published, to remove when the batch fails
	var seqs []uint64
	for i, err := range errs {
		switch {
		case err == nil:
			stored, seqs = append(stored, nms[i]), append(seqs, acks[i].Sequence)
		case firstErr == nil || errors.Is(publishErr(err), queue.ErrFull) && !errors.Is(publishErr(firstErr), queue.ErrFull):
			firstErr = err
		}
	}
	if firstErr == nil {
		return out, nil
	}
	// All or none, as far as a stream allows: what was stored goes.
	for i, nm := range stored {
		st := q.stream
		if nm.Subject == q.delaySubject {
			st = q.delayStream
		}
		dctx, cancel := s.call(context.Background())
		if err := st.DeleteMsg(dctx, seqs[i]); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			s.opts.Logger.Warn("natsqueue: a message of a failed batch was not removed", "queue", name, "err", err)
		}
		cancel()
	}
	return nil, fmt.Errorf("send to %s: %w", name, publishErr(firstErr))
}

// publish stores nm in its stream and returns the stream's
// acknowledgement. One that does not come within CallTimeout (the
// stream's leader died as it stored nm, or before) is an error wrapping
// context.DeadlineExceeded: nm may or may not be stored, and publishing it
// again with its message ID stores it once.
func (s *Store) publish(ctx context.Context, nm *nats.Msg) (*jetstream.PubAck, error) {
	pctx, cancel := s.call(ctx)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, nm)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("no acknowledgement from the stream within %v: %w", s.opts.CallTimeout, err)
	}
	return ack, err
}

// publishErr maps a stream's refusal to the queue's errors.
func publishErr(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch {
		case strings.Contains(apiErr.Description, "maximum messages"):
			return fmt.Errorf("%w: %w", queue.ErrFull, err)
		case apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum,
			strings.Contains(apiErr.Description, "message size exceeds"):
			return fmt.Errorf("%w: %w", queue.ErrInvalid, err)
		}
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: %w", queue.ErrInvalid, err)
	}
	return err
}

// newMsg makes the NATS message of a queue's message.
func newMsg(subject, id, dedup, body string, attrs map[string]queue.MessageAttribute, sent time.Time, source string) *nats.Msg {
	nm := nats.NewMsg(subject)
	nm.Data = []byte(body)
	nm.Header.Set(jetstream.MsgIDHeader, dedup)
	nm.Header.Set(headerID, id)
	nm.Header.Set(headerSent, sent.UTC().Format(time.RFC3339Nano))
	if len(attrs) > 0 {
		b, _ := json.Marshal(attrs) // a map of strings and bytes always marshals
		nm.Header.Set(headerAttrs, base64.StdEncoding.EncodeToString(b))
	}
	if source != "" {
		nm.Header.Set(headerSource, source)
	}
	return nm
}

func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// kept is a message as a stream keeps it.
type kept struct {
	id, body, source string
	attrs            map[string]queue.MessageAttribute
	sent             time.Time
}

func decode(h nats.Header, data []byte) kept {
	k := kept{id: h.Get(headerID), body: string(data), source: h.Get(headerSource)}
	k.sent, _ = time.Parse(time.RFC3339Nano, h.Get(headerSent))
	if a := h.Get(headerAttrs); a != "" {
		if b, err := base64.StdEncoding.DecodeString(a); err == nil {
			_ = json.Unmarshal(b, &k.attrs) // published by this package; a foreign one has none
		}
	}
	return k
}

func (k kept) message() queue.Message {
	return queue.Message{ID: k.id, Body: k.body, Attributes: maps.Clone(k.attrs), SentAt: k.sent, DeadLetterSource: k.source}
}

// Receive implements queue.Store. It takes what the consumer has at once;
// with a wait and nothing there it waits for one message, then takes what
// else is there.
func (s *Store) Receive(ctx context.Context, name string, opts queue.ReceiveOptions) ([]queue.Message, error) {
	max := opts.Max
	if max == 0 {
		max = 1
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	wait := opts.Wait
	if opts.QueueWait {
		wait = q.attrs.ReceiveWait
	}
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := s.fetch(ctx, q, max, time.Time{}, opts.Visibility)
		if err != nil && transient(err) && time.Until(deadline) > failoverPause {
			// The queue's stream or consumer is choosing a new leader (a
			// server of the engine died or left): ask again while the
			// receive may wait.
			pauseFor(ctx, failoverPause)
			continue
		}
		if err != nil || len(out) > 0 {
			return out, err
		}
		switch left := time.Until(deadline); {
		case left <= 0:
			return nil, nil
		case left < 50*time.Millisecond:
			// Too short to ask the server: wait it out, then look once more.
			pauseFor(ctx, left)
			continue
		}
		s.waiting(1)
		if !q.turn(ctx, deadline) {
			s.waiting(-1)
			continue // the loop's first fetch looks once more, or answers ctx's end
		}
		out, err = s.fetch(ctx, q, 1, deadline, opts.Visibility)
		<-q.polls
		s.waiting(-1)
		if err != nil && transient(err) {
			// The loop's first fetch asks again, or answers the error.
			if time.Until(deadline) > failoverPause {
				pauseFor(ctx, failoverPause)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			if max > 1 {
				more, err := s.fetch(ctx, q, max-1, time.Time{}, opts.Visibility)
				if err != nil {
					s.opts.Logger.Warn("natsqueue: receive after a long poll", "queue", name, "err", err)
				}
				out = append(out, more...)
			}
			return out, nil
		}
	}
}

// turn waits until a long poll of q may wait at the server, and reports
// whether it may before deadline and ctx's end.
func (q *served) turn(ctx context.Context, deadline time.Time) bool {
	select {
	case q.polls <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case q.polls <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// failoverPause paces a receive's requests while its stream has no leader.
const failoverPause = 100 * time.Millisecond

// transient reports an error a pull (or a publish) gets while a stream or
// its consumer chooses a leader: no server answers for it (no responders,
// or no answer in time), or a pull waiting at a leader is ended because
// the leader changed or its server shuts down (409 Leadership Change, 409
// Server Shutdown). So is a pull refused because the consumer holds its
// MaxWaiting of pulls (409 Exceeded MaxWaiting), from several nodes.
func transient(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrConsumerLeadershipChanged) ||
		errors.Is(err, jetstream.ErrServerShutdown) ||
		strings.Contains(err.Error(), "Exceeded MaxWaiting") // the client has no error of its own for it
}

// pauseFor waits for d, or until ctx ends.
func pauseFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *Store) waiting(n int) {
	s.mu.Lock()
	s.waiters += n
	s.mu.Unlock()
}

// WaitersForTest reports how many receives wait in a long poll, at the
// server or for their turn, so that a test sends or cancels once a
// receive waits rather than racing it.
func (s *Store) WaitersForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

// fetch takes up to max messages of q: those there now when until is
// zero, else the first to come before until. It returns them as received,
// moving the dead letters among them.
func (s *Store) fetch(ctx context.Context, q *served, max int, until time.Time, vis *time.Duration) ([]queue.Message, error) {
	var batch jetstream.MessageBatch
	var err error
	if until.IsZero() {
		batch, err = q.consumer.FetchNoWait(max)
	} else {
		wctx, cancel := context.WithDeadline(ctx, until)
		defer cancel()
		batch, err = q.consumer.Fetch(max, jetstream.FetchContext(wctx))
		if dl, _ := wctx.Deadline(); errors.Is(err, jetstream.ErrInvalidOption) && !time.Now().Before(dl) {
			// The wait ended before the client asked: no message came.
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.name, err)
	}
	var out []queue.Message
	for m := range batch.Messages() {
		if msg, ok := s.take(ctx, q, m, vis); ok {
			out = append(out, msg)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, jetstream.ErrNoHeartbeat) && !errors.Is(err, context.Canceled) {
		if len(out) > 0 {
			return out, nil // the error ended the batch after these
		}
		return nil, fmt.Errorf("receive from %s: %w", q.name, err)
	}
	return out, nil
}

// take turns a delivery into a received message, or moves it to the
// dead-letter queue when it has had its receives (ok false then).
func (s *Store) take(ctx context.Context, q *served, m jetstream.Msg, vis *time.Duration) (queue.Message, bool) {
	md, err := m.Metadata()
	if err != nil {
		s.opts.Logger.Warn("natsqueue: a delivery without metadata", "queue", q.name, "err", err)
		return queue.Message{}, false
	}
	if q.attrs.DeadLetter != "" && md.NumDelivered > uint64(q.attrs.MaxReceiveCount) {
		s.deadLetter(ctx, q, m, md)
		return queue.Message{}, false
	}
	msg := decode(m.Headers(), m.Data()).message()
	msg.ReceiptHandle = s.receipt(m.Reply())
	msg.ReceiveCount = int(md.NumDelivered)
	msg.FirstReceivedAt = time.Now()
	if vis != nil && *vis != q.attrs.VisibilityTimeout {
		if err := s.nak(ctx, m.Reply(), *vis); err != nil {
			s.opts.Logger.Warn("natsqueue: a receive's visibility timeout not set", "queue", q.name, "err", err)
		}
	}
	return msg, true
}

// deadLetter moves m, received MaxReceiveCount times, to q's dead-letter
// queue. A message that cannot move (the dead-letter queue full) stays
// where it is, and is tried again a moment later.
func (s *Store) deadLetter(ctx context.Context, q *served, m jetstream.Msg, md *jetstream.MsgMetadata) {
	s.mu.Lock()
	dlq := s.queues[q.attrs.DeadLetter]
	s.mu.Unlock()
	k := decode(m.Headers(), m.Data())
	err := errors.New("its dead-letter queue is not declared")
	if dlq != nil {
		nm := newMsg(dlq.subject, k.id, k.id+":dead:"+strconv.FormatUint(md.Sequence.Stream, 10), k.body, k.attrs, k.sent, q.name)
		_, err = s.publish(ctx, nm)
	}
	if err != nil {
		s.opts.Logger.Warn("natsqueue: a message did not move to its dead-letter queue", "queue", q.name, "deadLetter", q.attrs.DeadLetter, "err", publishErr(err))
		_ = s.nak(ctx, m.Reply(), retryFull)
		return
	}
	if err := s.ack(ctx, m.Reply()); err != nil {
		// Delivered again, it moves again; the dead-letter queue stores it
		// once (within its duplicate window: see duplicateWindow).
		s.opts.Logger.Warn("natsqueue: a dead letter stays in its queue", "queue", q.name, "err", err)
		return
	}
	s.opts.Left(q.name, "dead_letter")
}

// ack acknowledges the delivery of reply, and waits for the server to
// take it.
func (s *Store) ack(ctx context.Context, reply string) error {
	return s.request(ctx, reply, []byte("+ACK"))
}

// nak makes the delivery of reply due again after delay (at once: zero).
// The server keeps it pending meanwhile.
func (s *Store) nak(ctx context.Context, reply string, delay time.Duration) error {
	body := []byte("-NAK")
	if delay > 0 {
		body = fmt.Appendf(body, ` {"delay": %d}`, delay.Nanoseconds())
	}
	return s.request(ctx, reply, body)
}

func (s *Store) request(ctx context.Context, subject string, body []byte) error {
	rctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.nc.RequestWithContext(rctx, subject, body)
	return err
}

// receipt is the receipt handle of the delivery whose acknowledgement
// subject is reply: the subject after its MAC (HMAC-SHA256 under the
// engine's receipt key), in URL-safe base64.
func (s *Store) receipt(reply string) string {
	return base64.RawURLEncoding.EncodeToString(append(s.mac(reply), reply...))
}

func (s *Store) mac(subject string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(subject))
	return m.Sum(nil)
}

// handle checks that receipt is a receipt handle this engine's stores
// issued for q (its MAC verifies, its subject is an acknowledgement
// subject of q's consumer), and returns the subject with the message's
// stream sequence.
func (s *Store) handle(q *served, receipt string) (string, uint64, error) {
	bad := fmt.Errorf("%w: %q", queue.ErrReceiptHandle, receipt)
	raw, err := base64.RawURLEncoding.DecodeString(receipt)
	if err != nil || len(raw) <= sha256.Size {
		return "", 0, bad
	}
	subject := string(raw[sha256.Size:])
	if !hmac.Equal(raw[:sha256.Size], s.mac(subject)) {
		return "", 0, bad
	}
	t := strings.Split(subject, ".")
	// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<time>.<pending>,
	// or with a domain and an account hash after ACK (and a last token).
	var stream, consumer string
	var nums []string
	switch {
	case len(t) == 9:
		stream, consumer, nums = t[2], t[3], t[4:9]
	case len(t) == 11 || len(t) == 12:
		stream, consumer, nums = t[4], t[5], t[6:11]
	default:
		return "", 0, bad
	}
	if t[0] != "$JS" || t[1] != "ACK" || stream != q.streamName || consumer != receivers {
		return "", 0, bad
	}
	for _, tok := range t {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return "", 0, bad
		}
	}
	for _, n := range nums {
		if _, err := strconv.ParseUint(n, 10, 64); err != nil {
			return "", 0, bad
		}
	}
	seq, _ := strconv.ParseUint(nums[1], 10, 64)
	return subject, seq, nil
}

// Delete implements queue.Store: an acknowledgement of the receive, which
// the server answers, from any node.
func (s *Store) Delete(ctx context.Context, name, receipt string) error {
	q, err := s.queue(name)
	if err != nil {
		return err
	}
	subject, _, err := s.handle(q, receipt)
	if err != nil {
		return err
	}
	if err := s.ack(ctx, subject); err != nil {
		return fmt.Errorf("delete from %s: %w", name, err)
	}
	return nil
}

// ChangeVisibility implements queue.Store: a negative acknowledgement with
// the new timeout as its delay.
func (s *Store) ChangeVisibility(ctx context.Context, name, receipt string, timeout time.Duration) error {
	if err := queue.CheckVisibility(timeout); err != nil {
		return err
	}
	q, err := s.queue(name)
	if err != nil {
		return err
	}
	subject, seq, err := s.handle(q, receipt)
	if err != nil {
		return err
	}
	// A work-queue stream keeps only what is not yet deleted.
	gctx, cancel := s.call(ctx)
	_, err = q.stream.GetMsg(gctx, seq)
	cancel()
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w: %s", queue.ErrNotInFlight, receipt)
	} else if err != nil {
		return fmt.Errorf("change visibility in %s: %w", name, err)
	}
	if err := s.nak(ctx, subject, timeout); err != nil {
		return fmt.Errorf("change visibility in %s: %w", name, err)
	}
	return nil
}

// Info implements queue.Store: the counts come from the streams' and the
// consumer's state.
func (s *Store) Info(ctx context.Context, name string) (queue.Info, error) {
	q, err := s.queue(name)
	if err != nil {
		return queue.Info{}, err
	}
	cctx, cancel := s.call(ctx)
	st, err := q.stream.Info(cctx)
	cancel()
	if err != nil {
		return queue.Info{}, fmt.Errorf("info of %s: %w", name, err)
	}
	cctx, cancel = s.call(ctx)
	ci, err := q.consumer.Info(cctx)
	cancel()
	if err != nil {
		return queue.Info{}, fmt.Errorf("info of %s: %w", name, err)
	}
	cctx, cancel = s.call(ctx)
	dt, err := q.delayStream.Info(cctx)
	cancel()
	if err != nil {
		return queue.Info{}, fmt.Errorf("info of %s: %w", name, err)
	}
	in := queue.Info{Name: name, Attributes: q.attrs, CreatedAt: st.Created, Delayed: int(dt.State.Msgs)}
	in.InFlight = min(ci.NumAckPending, int(st.State.Msgs))
	in.Visible = int(st.State.Msgs) - in.InFlight
	s.mu.Lock()
	for n, o := range s.queues {
		if o.attrs.DeadLetter == name {
			in.Sources = append(in.Sources, n)
		}
	}
	s.mu.Unlock()
	slices.Sort(in.Sources)
	return in, nil
}

// Queues implements queue.Store.
func (s *Store) Queues(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.queues)), nil
}

// each calls f with q's stored messages, oldest first, until f returns
// false; the messages stored after the call began are not visited.
func (s *Store) each(ctx context.Context, q *served, f func(*jetstream.RawStreamMsg) bool) error {
	cctx, cancel := s.call(ctx)
	info, err := q.stream.Info(cctx)
	cancel()
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	for seq := info.State.FirstSeq; seq > 0 && seq <= last; {
		cctx, cancel := s.call(ctx)
		m, err := q.stream.GetMsg(cctx, seq, jetstream.WithGetMsgSubject(q.subject))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.Sequence > last || !f(m) {
			return nil
		}
		seq = m.Sequence + 1
	}
	return nil
}

// Peek implements queue.Store: it reads the stream, which keeps the
// messages not yet deleted, without the delayed ones or receive counts.
func (s *Store) Peek(ctx context.Context, name string, max int) ([]queue.Message, error) {
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	var out []queue.Message
	if max <= 0 {
		return out, nil
	}
	err = s.each(ctx, q, func(m *jetstream.RawStreamMsg) bool {
		out = append(out, decode(m.Header, m.Data).message())
		return len(out) < max
	})
	if err != nil {
		return nil, fmt.Errorf("peek at %s: %w", name, err)
	}
	return out, nil
}

// Redrive implements queue.Store. Each message of dlq is published to the
// queue it came from, then deleted from dlq; one whose queue is not
// declared here, or full, stays.
func (s *Store) Redrive(ctx context.Context, name string) (int, error) {
	dlq, err := s.queue(name)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	isDLQ := false
	for _, q := range s.queues {
		isDLQ = isDLQ || q.attrs.DeadLetter == name
	}
	s.mu.Unlock()
	if !isDLQ {
		return 0, fmt.Errorf("%w: no queue names %s as its dead-letter queue", queue.ErrNoDeadLetter, name)
	}
	moved := 0
	var moveErr error
	err = s.each(ctx, dlq, func(m *jetstream.RawStreamMsg) bool {
		k := decode(m.Header, m.Data)
		s.mu.Lock()
		src := s.queues[k.source]
		s.mu.Unlock()
		if src == nil {
			return true
		}
		nm := newMsg(src.subject, k.id, k.id+":redrive:"+strconv.FormatUint(m.Sequence, 10), k.body, k.attrs, k.sent, "")
		if _, err := s.publish(ctx, nm); err != nil {
			if err = publishErr(err); !errors.Is(err, queue.ErrFull) {
				moveErr = err
				return false
			}
			return true
		}
		cctx, cancel := s.call(ctx)
		err := dlq.stream.DeleteMsg(cctx, m.Sequence)
		cancel()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) { // another node moved it first
				moveErr = err
				return false
			}
			return true
		}
		moved++
		return true
	})
	if err == nil {
		err = moveErr
	}
	if err != nil {
		return moved, fmt.Errorf("redrive %s: %w", name, err)
	}
	return moved, nil
}

// startMover drains q's delayed messages into q while q is declared here.
func (s *Store) startMover(q *served) error {
	name, subject := q.name, q.subject
	cc, err := q.mover.Consume(func(m jetstream.Msg) { s.move(name, subject, m) },
		jetstream.PullMaxMessages(64),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.opts.Logger.Debug("natsqueue: delayed messages", "queue", name, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("natsqueue: queue %s: delayed messages: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cc.Stop()
		s.retire(cc)
		return nil
	}
	if old, ok := s.moving[name]; ok {
		old.Stop()
		s.retire(old)
	}
	s.moving[name] = cc
	return nil
}

// move publishes a delayed message to its queue's subject when it is due,
// or hands it back to the server until it is.
func (s *Store) move(name, subject string, m jetstream.Msg) {
	due, err := time.Parse(time.RFC3339Nano, m.Headers().Get(headerDue))
	if wait := time.Until(due); err == nil && wait > 0 {
		if err := m.NakWithDelay(wait); err != nil {
			s.opts.Logger.Debug("natsqueue: a delayed message", "queue", name, "err", err)
		}
		return
	}
	nm := nats.NewMsg(subject)
	nm.Data = m.Data()
	for k, v := range m.Headers() {
		if k != headerDue && !strings.HasPrefix(k, "Nats-") {
			nm.Header[k] = v
		}
	}
	nm.Header.Set(jetstream.MsgIDHeader, m.Headers().Get(jetstream.MsgIDHeader))
	ctx, cancel := s.call(s.ctx)
	_, err = s.js.PublishMsg(ctx, nm)
	cancel()
	if err != nil {
		if !errors.Is(publishErr(err), queue.ErrFull) && s.ctx.Err() == nil {
			s.opts.Logger.Warn("natsqueue: a due message did not move to its queue", "queue", name, "err", err)
		}
		_ = m.NakWithDelay(retryFull)
		return
	}
	ctx, cancel = s.call(s.ctx)
	defer cancel()
	if err := m.DoubleAck(ctx); err != nil && s.ctx.Err() == nil {
		// Delivered again, it moves again; the queue stores it once.
		s.opts.Logger.Debug("natsqueue: a moved message stays delayed", "queue", name, "err", err)
	}
}
