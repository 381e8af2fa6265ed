// Package natshist keeps topic history in NATS JetStream, for a cluster:
// every node appends to and reads from the same streams, so a client that
// resumes on another node than the one it left finds what it missed.
//
// One stream per rule, because a stream's limits apply to all its
// subjects alike: <Prefix>_hist_<h> (h a hash of the rule's pattern), with
// one subject per topic, <prefix>.hist.<h>.x<base64url(topic)>, keeping
// MaxMsgsPerSubject = the rule's size and MaxAge = its TTL, on file
// storage so that a restarted NATS server keeps it.
//
// A publication's offset is its stream sequence. Each carries the offset
// of the topic's previous one in a header, made atomic with
// Nats-Expected-Last-Subject-Sequence (retried when another node appended
// first), so a resume tells "nothing lost between" from "trimmed". The
// epoch is derived from the stream's creation time: a restarted gateway
// finds the same stream and keeps its epoch; a stream created again (an
// engine that lost its store) gives a new one, and sequences that start
// again belong to it.
//
// Each node reads every publication of every stream in order, with one
// ordered consumer per stream, and hands it to the watcher: the publishing
// node's subscribers are reached that way too, never inside Append.
package natshist

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/natsjs"
)

// Headers of a kept publication.
const (
	// HeaderPrev is the offset of the topic's previous publication, zero
	// when the stream knew none.
	HeaderPrev = "Switchboard-Prev"
	// headerToken lets the appending node find its own publication among
	// those its consumer delivers.
	headerToken = "Switchboard-Token"
)

// attemptTimeout bounds one attempt to publish, within the caller's bound:
// an attempt whose answer was lost (a stream leader lost) is tried again.
const attemptTimeout = 2 * time.Second

// DefaultCheckInterval is Options.CheckInterval's default.
const DefaultCheckInterval = 2 * time.Second

// Options configures a Store. Rules is what it keeps; the zero value of
// every other field works.
type Options struct {
	// Rules choose the topics that keep history; the first that matches a
	// topic sets its size and TTL.
	Rules []history.Rule
	// Prefix is the first subject token and the streams' name prefix, so
	// that clusters can share a NATS. Empty means "switchboard".
	Prefix string
	// Replicas is each stream's replica count. Zero means 1.
	Replicas int
	// CheckInterval is how often each stream is checked for having been
	// created again (an engine that lost its store), which starts a new
	// epoch. Zero means DefaultCheckInterval.
	CheckInterval time.Duration
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Store keeps topic history in JetStream. Safe for concurrent use; Close
// stops its consumers. The NATS connection is the caller's.
type Store struct {
	js      jetstream.JetStream
	opts    Options
	streams []*kept // one per rule, in the rules' order

	mu      sync.Mutex
	waiters map[string]chan int // by token: Appends waiting for their delivery here
	last    map[string]uint64   // topic -> its last offset as last seen, a cache

	deliver history.Deliver // set by Watch, under mu
	watch   context.Context // Watch's, ended by Close; under mu

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// kept is the stream of one rule.
type kept struct {
	rule    history.Rule
	name    string // stream name
	subject string // subject prefix, ending in "."

	checking sync.Mutex // held by recheck, one at a time; taken before mu

	mu       sync.Mutex
	stream   jetstream.Stream
	epoch    string
	created  time.Time
	consumer jetstream.ConsumeContext // nil until Watch
}

var _ history.Store = (*Store)(nil)

// maxCached bounds the topics whose last offset the store remembers; past
// it the cache starts again, and a miss costs one read of the stream.
const maxCached = 10000

// New creates or updates the streams of o.Rules, bounded by ctx, and
// returns a store on them, or an error naming a bad rule or the stream
// that could not be made.
func New(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	o = o.withDefaults()
	s := &Store{js: js, opts: o, waiters: make(map[string]chan int), last: make(map[string]uint64)}
	for _, r := range o.Rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		k := newKept(o, r.WithDefaults())
		if err := s.ensure(ctx, k); err != nil {
			return nil, err
		}
		s.streams = append(s.streams, k)
	}
	return s, nil
}

// newKept names the stream of r.
func newKept(o Options, r history.Rule) *kept {
	h := fnv.New32a()
	h.Write([]byte(r.Topics))
	id := fmt.Sprintf("%08x", h.Sum32())
	return &kept{rule: r, name: o.Prefix + "_hist_" + id, subject: o.Prefix + ".hist." + id + "."}
}

// ensure creates k's stream, or updates its limits, and reads its epoch.
func (s *Store) ensure(ctx context.Context, k *kept) error {
	cfg := jetstream.StreamConfig{
		Name:              k.name,
		Subjects:          []string{k.subject + "*"},
		MaxMsgsPerSubject: int64(k.rule.Size),
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          s.opts.Replicas,
		Description:       "switchboard topic history of " + k.rule.Topics,
	}
	if k.rule.TTL > 0 {
		cfg.MaxAge = k.rule.TTL
	}
	// Every node runs this at start, at once: most find the stream made
	// and leave it be; an update only when a limit changed.
	st, err := s.js.Stream(ctx, k.name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = natsjs.CreateStream(ctx, s.js, cfg) // or another node's
	case err == nil:
		if have := st.CachedInfo().Config; have.MaxMsgsPerSubject != cfg.MaxMsgsPerSubject || have.MaxAge != cfg.MaxAge {
			st, err = s.js.UpdateStream(ctx, cfg)
		}
	}
	if err != nil {
		return fmt.Errorf("natshist: stream %s for %q: %w", k.name, k.rule.Topics, err)
	}
	// The creation time as the stream keeps it, which recheck compares:
	// not a create's answer, which a server may give a node whose create
	// met the same stream made a moment before by another.
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("natshist: stream %s for %q: %w", k.name, k.rule.Topics, err)
	}
	created := info.Created
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stream, k.created, k.epoch = st, created, epochOf(k.name, created)
	return nil
}

// epochOf names one incarnation of a stream: its name and creation time.
func epochOf(name string, created time.Time) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte(strconv.FormatInt(created.UnixNano(), 10)))
	return fmt.Sprintf("%016x", h.Sum64())
}

func (k *kept) current() (jetstream.Stream, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stream, k.epoch
}

func (s *Store) rule(topic string) *kept {
	for _, k := range s.streams {
		if history.Match(k.rule.Topics, topic) {
			return k
		}
	}
	return nil
}

// Keeps implements history.Store.
func (s *Store) Keeps(topic string) bool { return s.rule(topic) != nil }

func (k *kept) subjectOf(topic string) string {
	return k.subject + "x" + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

func (k *kept) topicOf(subject string) (string, bool) {
	enc, ok := strings.CutPrefix(subject, k.subject+"x")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	return string(b), err == nil
}

// Watch implements history.Store: one ordered consumer per stream, from
// the publications made after it starts.
func (s *Store) Watch(deliver history.Deliver) error {
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.mu.Lock()
	s.deliver, s.watch = deliver, ctx
	s.mu.Unlock()
	for _, k := range s.streams {
		if err := s.consume(ctx, k, deliver, jetstream.DeliverNewPolicy); err != nil {
			stop()
			return err
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.check(ctx, k, deliver) }()
	}
	return nil
}

// consume (re)starts k's consumer with policy.
func (s *Store) consume(ctx context.Context, k *kept, deliver history.Deliver, policy jetstream.DeliverPolicy) error {
	k.mu.Lock()
	st, epoch, old := k.stream, k.epoch, k.consumer
	k.consumer = nil
	k.mu.Unlock()
	if old != nil {
		old.Stop() // before the new one starts: never two delivering
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := st.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
	if err != nil {
		return fmt.Errorf("natshist: consumer of %s: %w", k.name, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) { s.handle(k, epoch, m, deliver) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil {
				s.opts.Logger.Debug("natshist: consumer", "stream", k.name, "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("natshist: consume %s: %w", k.name, err)
	}
	k.mu.Lock()
	k.consumer = cc
	k.mu.Unlock()
	return nil
}

// handle delivers one publication and wakes the Append that made it here.
func (s *Store) handle(k *kept, epoch string, m jetstream.Msg, deliver history.Deliver) {
	md, err := m.Metadata()
	if err != nil {
		return // not a stream message: nothing to deliver
	}
	topic, ok := k.topicOf(m.Subject())
	if !ok {
		s.opts.Logger.Warn("natshist: a message on a subject that names no topic", "subject", m.Subject())
		return
	}
	prev, _ := strconv.ParseUint(m.Headers().Get(HeaderPrev), 10, 64)
	e := history.Entry{Epoch: epoch, Offset: md.Sequence.Stream, Prev: prev, Data: m.Data()}
	n := deliver(topic, e)
	token := m.Headers().Get(headerToken)
	s.mu.Lock()
	if _, cached := s.last[topic]; cached && s.last[topic] < e.Offset {
		s.last[topic] = e.Offset
	}
	w := s.waiters[token]
	delete(s.waiters, token)
	s.mu.Unlock()
	if w != nil {
		w <- n // buffered
	}
}

// check looks at k's stream every CheckInterval; when it was created
// again (the engine lost its store), it takes the new epoch and reads the
// new stream from its start.
func (s *Store) check(ctx context.Context, k *kept, deliver history.Deliver) {
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.recheck(ctx, k); err != nil && ctx.Err() == nil {
			s.opts.Logger.Debug("natshist: check of the stream failed; the next one tries again", "stream", k.name, "err", err)
		}
	}
}

// recheck takes k's stream again when it was deleted or created again
// since k last took it: a new epoch, read from its start. Since calls it
// too, when a position shows the stream is not the one k knows.
func (s *Store) recheck(ctx context.Context, k *kept) error {
	k.checking.Lock()
	defer k.checking.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.opts.CheckInterval)
	defer cancel()
	k.mu.Lock()
	st, known := k.stream, k.created
	k.mu.Unlock()
	info, err := st.Info(cctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Lost: make it again, a new epoch.
	case err != nil:
		return err
	case info.Created.Equal(known):
		return nil
	}
	if err := s.ensure(cctx, k); err != nil {
		return err
	}
	s.mu.Lock()
	clear(s.last)
	s.mu.Unlock()
	s.opts.Logger.Warn("natshist: the history stream was created again: a new epoch", "stream", k.name)
	s.mu.Lock()
	deliver, wctx := s.deliver, s.watch
	s.mu.Unlock()
	if deliver == nil {
		return nil // not watched: nothing to read
	}
	return s.consume(wctx, k, deliver, jetstream.DeliverAllPolicy)
}

// Append implements history.Store. The topic's previous offset is taken
// from the cache or the stream, and the engine refuses the publication if
// another was appended since; it is then read again and the append retried.
// Once kept, it waits for this node's delivery within ctx; when ctx ends
// first, the publication is kept all the same, and Append returns 0, nil.
func (s *Store) Append(ctx context.Context, topic string, data []byte) (int, error) {
	k := s.rule(topic)
	if k == nil {
		return 0, fmt.Errorf("append to %q: %w", topic, history.ErrNoHistory)
	}
	subject := k.subjectOf(topic)
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	token := hex.EncodeToString(b[:])
	w := make(chan int, 1)
	s.mu.Lock()
	s.waiters[token] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, token)
		s.mu.Unlock()
	}()
	for {
		prev, err := s.prev(ctx, k, topic, subject)
		if err != nil {
			return 0, fmt.Errorf("append to %q: %w", topic, err)
		}
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set(HeaderPrev, strconv.FormatUint(prev, 10))
		m.Header.Set(headerToken, token)
		// The token is the message ID too: a publication tried again
		// after its answer was lost is not kept twice.
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := s.js.PublishMsg(actx, m, jetstream.WithExpectLastSequencePerSubject(prev),
			jetstream.WithMsgID(token), jetstream.WithRetryAttempts(100)) // no responders: a stream electing its leader
		cancel()
		if natsjs.WrongLast(err) {
			s.forget(topic)
			continue
		}
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			s.forget(topic) // no answer: kept or not, the retry tells
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("append to %q: %w", topic, err)
		}
		s.mu.Lock()
		if len(s.last) >= maxCached {
			clear(s.last)
		}
		if s.last[topic] < ack.Sequence {
			s.last[topic] = ack.Sequence
		}
		s.mu.Unlock()
		select {
		case n := <-w:
			return n, nil
		case <-ctx.Done():
			// Kept: every node delivers it once its consumer catches up
			// (one recovering from a lost server, say); none was reached
			// here yet.
			return 0, nil
		}
	}
}

func (s *Store) forget(topic string) {
	s.mu.Lock()
	delete(s.last, topic)
	s.mu.Unlock()
}

// prev is the topic's last offset: cached, or read from the stream.
func (s *Store) prev(ctx context.Context, k *kept, topic, subject string) (uint64, error) {
	s.mu.Lock()
	last, ok := s.last[topic]
	s.mu.Unlock()
	if ok {
		return last, nil
	}
	st, _ := k.current()
	m, err := st.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read the last offset: %w", err)
	}
	return m.Sequence, nil
}

// Since implements history.Store: it reads the topic's last offset, then
// each publication kept after from, up to it. A from in the epoch the
// store knows is first checked against the stream: one created again
// since the last check is taken at once, and from gets GapEpoch.
func (s *Store) Since(ctx context.Context, topic string, from *history.Position) (history.Backlog, error) {
	k := s.rule(topic)
	if k == nil {
		return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, history.ErrNoHistory)
	}
	subject := k.subjectOf(topic)
	st, epoch := k.current()
	gone := false // from is of this epoch, but not of the stream there is now
	if from != nil && from.Epoch == epoch {
		var err error
		if gone, err = k.gone(ctx, st, from.Offset); err != nil {
			return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, err)
		}
		if gone {
			// Created again since the last check: take the new stream
			// now rather than read it as a continuation of the old.
			if err := s.recheck(ctx, k); err != nil {
				return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, err)
			}
			st, epoch = k.current()
		}
	}
	now := history.Position{Epoch: epoch}
	last, err := st.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, err)
	default:
		now.Offset = last.Sequence
	}
	if from == nil {
		return history.Backlog{Now: now}, nil
	}
	after, gap := uint64(0), history.Gap("")
	if from.Epoch != epoch || gone {
		gap = history.GapEpoch
	} else {
		after = from.Offset
	}
	var entries []history.Entry
	for seq := after + 1; seq <= now.Offset; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // expired meanwhile
		}
		if err != nil {
			return history.Backlog{}, fmt.Errorf("history of %q from %d: %w", topic, seq, err)
		}
		if m.Sequence > now.Offset {
			break
		}
		prev, _ := strconv.ParseUint(m.Header.Get(HeaderPrev), 10, 64)
		entries = append(entries, history.Entry{Epoch: epoch, Offset: m.Sequence, Prev: prev, Data: m.Data})
		seq = m.Sequence + 1
	}
	if gap == "" {
		var first *history.Entry
		if len(entries) > 0 {
			first = &entries[0]
		}
		last := now.Offset
		if first == nil && last == 0 {
			// Nothing of the topic is kept: the stream's last sequence
			// bounds the offset the topic had.
			info, err := st.Info(ctx)
			if err != nil {
				return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, err)
			}
			last = info.State.LastSeq
		}
		gap = history.GapAfter(after, first, last)
	}
	return history.Backlog{Entries: entries, Gap: gap, Now: now}, nil
}

// gone reports whether st, k's stream, is not the stream a position at
// offset was read from: deleted, created again after k took it, or
// holding fewer sequences than offset (offsets never go back).
func (k *kept) gone(ctx context.Context, st jetstream.Stream, offset uint64) (bool, error) {
	k.mu.Lock()
	known := k.created
	k.mu.Unlock()
	info, err := st.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	return !info.Created.Equal(known) || info.State.LastSeq < offset, nil
}

// Close stops the consumers. The streams stay in the engine.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	for _, k := range s.streams {
		k.mu.Lock()
		if k.consumer != nil {
			k.consumer.Stop()
			k.consumer = nil
		}
		k.mu.Unlock()
	}
	return nil
}
