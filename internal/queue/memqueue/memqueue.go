// Package memqueue keeps a node's queues in its memory: a queue.Store whose
// messages are lost when the process ends. Receives scan a queue's messages
// in the order they were sent, so a queue is bounded by its MaxMessages.
package memqueue

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

var _ queue.Store = (*Store)(nil)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Now is the store's clock. Nil means time.Now.
	Now func() time.Time
	// Left is told of each message that leaves a queue without being
	// deleted: reason "expired" (its retention ended) or "dead_letter"
	// (moved after maxReceiveCount receives). It is called with the
	// store's lock held and must not block. Nil: no one is told.
	Left func(queue, reason string)
}

// Store is an in-memory queue.Store, safe for concurrent use. One mutex
// guards every queue: a call holds it only to scan or change messages,
// never while it waits.
type Store struct {
	now  func() time.Time
	left func(queue, reason string)

	mu      sync.Mutex
	queues  map[string]*memQueue
	waiters int // receives waiting in a long poll
}

type memQueue struct {
	name      string
	attrs     queue.Attributes // with defaults
	created   time.Time
	msgs      []*message          // in the order they arrived; deleted ones until compacted
	byID      map[string]*message // the messages not deleted, for receipt handles
	live      int                 // messages not deleted
	expiredAt time.Time           // when expire last scanned msgs
	// changed is closed, and replaced, when a message may have become
	// receivable other than by its clock (sent, made visible, moved in) or
	// the queue is dropped.
	changed chan struct{}
}

type message struct {
	id        string
	body      string
	attrs     map[string]queue.MessageAttribute
	sentAt    time.Time
	firstRecv time.Time
	visibleAt time.Time
	receives  int
	token     string // the receipt handle's part that names the latest receive
	source    string // the queue it was dead-lettered from
	deleted   bool
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Left == nil {
		opts.Left = func(string, string) {}
	}
	return &Store{now: opts.Now, left: opts.Left, queues: map[string]*memQueue{}}
}

// Declare implements queue.Store. The queues no longer declared are
// dropped with their messages: they live in this node's memory only.
func (s *Store) Declare(ctx context.Context, decls []queue.Declaration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := queue.Check(decls); err != nil {
		return err
	}
	names := map[string]queue.Attributes{}
	for _, d := range decls {
		names[d.Name] = d.Attributes.WithDefaults()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for n, q := range s.queues {
		if _, ok := names[n]; !ok {
			delete(s.queues, n)
			close(q.changed) // wakes its waiting receives, which find it gone
		}
	}
	for n, a := range names {
		if q, ok := s.queues[n]; ok {
			q.attrs = a
			continue
		}
		s.queues[n] = &memQueue{name: n, attrs: a, created: now, byID: map[string]*message{}, changed: make(chan struct{})}
	}
	return nil
}

func (s *Store) queue(name string) (*memQueue, error) {
	q, ok := s.queues[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, name)
	}
	return q, nil
}

func (q *memQueue) notify() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Send implements queue.Store.
func (s *Store) Send(ctx context.Context, name string, msgs []queue.Outgoing) ([]queue.Sent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if n := m.Size(); n > q.attrs.MaxMessageBytes {
			return nil, fmt.Errorf("%w: a message of %d bytes is over the queue's %d", queue.ErrInvalid, n, q.attrs.MaxMessageBytes)
		}
		if m.Delay != nil {
			if err := queue.CheckDelay(*m.Delay); err != nil {
				return nil, err
			}
		}
	}
	now := s.now()
	s.expire(q, now)
	if q.live+len(msgs) > q.attrs.MaxMessages {
		return nil, fmt.Errorf("%w: %s holds %d messages", queue.ErrFull, name, q.live)
	}
	out := make([]queue.Sent, len(msgs))
	for i, m := range msgs {
		delay := q.attrs.Delay
		if m.Delay != nil {
			delay = *m.Delay
		}
		msg := &message{id: apigw.NewUUID(), body: m.Body, attrs: maps.Clone(m.Attributes), sentAt: now, visibleAt: now.Add(delay)}
		q.add(msg)
		out[i] = queue.Sent{ID: msg.id}
	}
	q.notify()
	return out, nil
}

// expire drops the messages past q's retention. Called with s.mu held.
func (s *Store) expire(q *memQueue, now time.Time) {
	// A scan of every message, at most once a second: a retention is a
	// minute at least, and a message kept a second past it does no harm.
	if !q.expiredAt.IsZero() && now.Sub(q.expiredAt) < time.Second && !now.Before(q.expiredAt) {
		return
	}
	q.expiredAt = now
	for _, m := range q.msgs {
		if !m.deleted && !now.Before(m.sentAt.Add(q.attrs.Retention)) {
			q.remove(m)
			s.left(q.name, "expired")
		}
	}
	q.compact()
}

func (q *memQueue) add(m *message) {
	q.msgs = append(q.msgs, m)
	q.byID[m.id] = m
	q.live++
}

func (q *memQueue) remove(m *message) {
	m.deleted = true
	delete(q.byID, m.id)
	q.live--
}

// compact drops deleted messages once they are most of the slice.
func (q *memQueue) compact() {
	if len(q.msgs) < 64 || q.live*2 > len(q.msgs) {
		return
	}
	q.msgs = slices.DeleteFunc(q.msgs, func(m *message) bool { return m.deleted })
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
	var deadline time.Time
	for {
		s.mu.Lock()
		q, err := s.queue(name)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		now := s.now()
		if deadline.IsZero() {
			wait := opts.Wait
			if opts.QueueWait {
				wait = q.attrs.ReceiveWait
			}
			deadline = now.Add(wait)
		}
		out, next := s.take(q, now, max, opts.Visibility)
		changed := q.changed
		if len(out) > 0 || !now.Before(deadline) {
			s.mu.Unlock()
			return out, nil
		}
		s.waiters++
		s.mu.Unlock()
		wake := deadline
		if !next.IsZero() && next.Before(wake) {
			wake = next
		}
		timer := time.NewTimer(wake.Sub(now))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// WaitersForTest reports how many receives wait in a long poll, so that a
// test sends or cancels once a receive waits rather than racing it.
func (s *Store) WaitersForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

// take receives up to max of q's visible messages, moving those that have
// used up their receives to the dead-letter queue; next is when the
// soonest hidden message becomes visible (zero: none). Called with s.mu held.
func (s *Store) take(q *memQueue, now time.Time, max int, visibility *time.Duration) (out []queue.Message, next time.Time) {
	s.expire(q, now)
	vis := q.attrs.VisibilityTimeout
	if visibility != nil {
		vis = *visibility
	}
	var dlq *memQueue
	if q.attrs.DeadLetter != "" {
		dlq = s.queues[q.attrs.DeadLetter]
	}
	for _, m := range q.msgs {
		if m.deleted {
			continue
		}
		if m.visibleAt.After(now) {
			if next.IsZero() || m.visibleAt.Before(next) {
				next = m.visibleAt
			}
			continue
		}
		if len(out) == max {
			break
		}
		if dlq != nil && m.receives >= q.attrs.MaxReceiveCount {
			if dlq.live < dlq.attrs.MaxMessages {
				q.remove(m)
				dlq.add(&message{id: m.id, body: m.body, attrs: m.attrs, sentAt: m.sentAt, visibleAt: now, source: q.name})
				dlq.notify()
				s.left(q.name, "dead_letter")
			}
			continue // a full dead-letter queue leaves it where it is, not received
		}
		m.receives++
		if m.firstRecv.IsZero() {
			m.firstRecv = now
		}
		m.visibleAt = now.Add(vis)
		m.token = newToken()
		out = append(out, queue.Message{ID: m.id, ReceiptHandle: handle(q.name, m.id, m.token), Body: m.body,
			Attributes: maps.Clone(m.attrs), SentAt: m.sentAt, FirstReceivedAt: m.firstRecv, ReceiveCount: m.receives,
			DeadLetterSource: m.source})
	}
	q.compact()
	return out, next
}

// find returns the message a receipt handle names in q, or nil when it is
// gone; ErrReceiptHandle when the handle is not one of q's.
func (q *memQueue) find(receipt string) (*message, string, error) {
	qn, id, token, err := parseHandle(receipt)
	if err != nil || qn != q.name {
		return nil, "", fmt.Errorf("%w: %q", queue.ErrReceiptHandle, receipt)
	}
	return q.byID[id], token, nil
}

// Delete implements queue.Store.
func (s *Store) Delete(ctx context.Context, name, receipt string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(name)
	if err != nil {
		return err
	}
	m, token, err := q.find(receipt)
	if err != nil {
		return err
	}
	if m != nil && m.token == token {
		q.remove(m)
		q.compact()
	}
	return nil
}

// ChangeVisibility implements queue.Store.
func (s *Store) ChangeVisibility(ctx context.Context, name, receipt string, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := queue.CheckVisibility(timeout); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(name)
	if err != nil {
		return err
	}
	m, token, err := q.find(receipt)
	if err != nil {
		return err
	}
	now := s.now()
	if m == nil || m.token != token || !m.visibleAt.After(now) {
		return fmt.Errorf("%w: %s", queue.ErrNotInFlight, receipt)
	}
	old := m.visibleAt
	m.visibleAt = now.Add(timeout)
	if m.visibleAt.Before(old) {
		q.notify() // a long poll may wake earlier
	}
	return nil
}

// Info implements queue.Store.
func (s *Store) Info(ctx context.Context, name string) (queue.Info, error) {
	if err := ctx.Err(); err != nil {
		return queue.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(name)
	if err != nil {
		return queue.Info{}, err
	}
	now := s.now()
	s.expire(q, now)
	in := queue.Info{Name: name, Attributes: q.attrs, CreatedAt: q.created}
	for _, m := range q.msgs {
		switch {
		case m.deleted:
		case !m.visibleAt.After(now):
			in.Visible++
		case m.receives > 0:
			in.InFlight++
		default:
			in.Delayed++
		}
	}
	for n, o := range s.queues {
		if o.attrs.DeadLetter == name {
			in.Sources = append(in.Sources, n)
		}
	}
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

// Peek implements queue.Store.
func (s *Store) Peek(ctx context.Context, name string, max int) ([]queue.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	s.expire(q, s.now())
	var out []queue.Message
	for _, m := range q.msgs {
		if m.deleted {
			continue
		}
		if len(out) == max {
			break
		}
		out = append(out, queue.Message{ID: m.id, Body: m.body, Attributes: maps.Clone(m.attrs), SentAt: m.sentAt,
			FirstReceivedAt: m.firstRecv, ReceiveCount: m.receives, DeadLetterSource: m.source})
	}
	return out, nil
}

// Redrive implements queue.Store. A message whose source queue is gone,
// or full, stays in dlq.
func (s *Store) Redrive(ctx context.Context, name string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dlq, err := s.queue(name)
	if err != nil {
		return 0, err
	}
	isDLQ := false
	for _, q := range s.queues {
		isDLQ = isDLQ || q.attrs.DeadLetter == name
	}
	if !isDLQ {
		return 0, fmt.Errorf("%w: no queue names %s as its dead-letter queue", queue.ErrNoDeadLetter, name)
	}
	now := s.now()
	s.expire(dlq, now)
	moved := 0
	for _, m := range dlq.msgs {
		if m.deleted || m.source == "" {
			continue
		}
		src, ok := s.queues[m.source]
		if !ok || src.live >= src.attrs.MaxMessages {
			continue
		}
		dlq.remove(m)
		src.add(&message{id: m.id, body: m.body, attrs: m.attrs, sentAt: m.sentAt, visibleAt: now})
		src.notify()
		moved++
	}
	dlq.compact()
	return moved, nil
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handle makes a receipt handle: the queue, the message and the receive,
// base64-encoded, as opaque to clients as SQS's own.
func handle(q, id, token string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(q + "\n" + id + "\n" + token))
}

func parseHandle(h string) (q, id, token string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", "", "", err
	}
	parts := strings.Split(string(raw), "\n")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("malformed")
	}
	return parts[0], parts[1], parts[2], nil
}
