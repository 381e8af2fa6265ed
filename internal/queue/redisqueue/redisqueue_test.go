package redisqueue_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/redisqueue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var prefixSeq atomic.Int64

// node is one store with a client of its own, as one node of a cluster
// has; nodes made with the same prefix share their queues.
func node(t testing.TB, addr, prefix string, o redisqueue.Options) *redisqueue.Store {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	o.Prefix = prefix
	s, err := redisqueue.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = rdb.Close()
	})
	return s
}

// leftLog records what Options.Left is told.
type leftLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *leftLog) add(q, reason string) {
	l.mu.Lock()
	l.seen = append(l.seen, q+" "+reason)
	l.mu.Unlock()
}

func (l *leftLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// newStore starts a redis-server of the test's own and a store on it
// with decls declared.
func newStore(t *testing.T, decls ...queue.Declaration) (*redisqueue.Store, *leftLog) {
	t.Helper()
	r := testutil.StartRedis(t)
	l := &leftLog{}
	s := node(t, r.Addr, "", redisqueue.Options{Left: l.add})
	declare(t, s, decls...)
	return s, l
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func declare(t *testing.T, s *redisqueue.Store, decls ...queue.Declaration) {
	t.Helper()
	if err := s.Declare(bounded(t), decls); err != nil {
		t.Fatalf("Declare: %v", err)
	}
}

func send(t *testing.T, s *redisqueue.Store, q string, bodies ...string) []queue.Sent {
	t.Helper()
	var msgs []queue.Outgoing
	for _, b := range bodies {
		msgs = append(msgs, queue.Outgoing{Body: b})
	}
	sent, err := s.Send(bounded(t), q, msgs)
	if err != nil {
		t.Fatalf("Send(%s): %v", q, err)
	}
	return sent
}

func receive(t *testing.T, s *redisqueue.Store, q string, max int) []queue.Message {
	t.Helper()
	got, err := s.Receive(bounded(t), q, queue.ReceiveOptions{Max: max})
	if err != nil {
		t.Fatalf("Receive(%s): %v", q, err)
	}
	return got
}

func bodies(msgs []queue.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Body)
	}
	return out
}

// waiting waits until n receives of s wait in a long poll.
func waiting(t *testing.T, s *redisqueue.Store, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool { return s.WaitersForTest() == n }, "%d receives do not wait", n)
}

func TestVisibilityTimeout(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, queue.Declaration{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: 10 * time.Second}})
	ctx := bounded(t)
	send(t, s, "q", "a")
	got := receive(t, s, "q", 10)
	if len(got) != 1 || got[0].Body != "a" || got[0].ReceiveCount != 1 || got[0].FirstReceivedAt.IsZero() {
		t.Fatalf("first receive = %+v, want a once", got)
	}
	if again := receive(t, s, "q", 10); len(again) != 0 {
		t.Fatalf("receive while in flight = %d messages, want 0", len(again))
	}
	s.AdvanceForTest(10 * time.Second)
	again := receive(t, s, "q", 10)
	if len(again) != 1 || again[0].ReceiveCount != 2 || !again[0].FirstReceivedAt.Equal(got[0].FirstReceivedAt) ||
		again[0].ReceiptHandle == got[0].ReceiptHandle {
		t.Fatalf("receive after the timeout = %+v, want a with ReceiveCount 2, the first receive's time and a new handle", again)
	}
	// The first receive's handle is stale: deleting with it deletes nothing.
	if err := s.Delete(ctx, "q", got[0].ReceiptHandle); err != nil {
		t.Fatalf("Delete(stale handle) = %v, want nil", err)
	}
	if err := s.ChangeVisibility(ctx, "q", got[0].ReceiptHandle, 0); !errors.Is(err, queue.ErrNotInFlight) {
		t.Fatalf("ChangeVisibility(stale handle) = %v, want ErrNotInFlight", err)
	}
	if err := s.ChangeVisibility(ctx, "q", again[0].ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0) = %v", err)
	}
	// Visible again: the handle no longer names a message in flight.
	if err := s.ChangeVisibility(ctx, "q", again[0].ReceiptHandle, time.Minute); !errors.Is(err, queue.ErrNotInFlight) {
		t.Fatalf("ChangeVisibility(visible message) = %v, want ErrNotInFlight", err)
	}
	third := receive(t, s, "q", 10)
	if len(third) != 1 || third[0].ReceiveCount != 3 {
		t.Fatalf("receive after ChangeVisibility(0) = %+v, want a a third time", third)
	}
	if err := s.Delete(ctx, "q", third[0].ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	s.AdvanceForTest(time.Hour)
	if left := receive(t, s, "q", 10); len(left) != 0 {
		t.Fatalf("receive after Delete = %+v, want none", left)
	}
	// A receive's own timeout of 0 leaves the message visible, and the
	// receive returns it once.
	send(t, s, "q", "b")
	zero := time.Duration(0)
	first, err := s.Receive(ctx, "q", queue.ReceiveOptions{Max: 10, Visibility: &zero})
	if err != nil || len(first) != 1 {
		t.Fatalf("Receive(visibility 0) = %+v, %v; want b once", first, err)
	}
	if next := receive(t, s, "q", 10); len(next) != 1 || next[0].ReceiveCount != 2 {
		t.Fatalf("receive after a receive with visibility 0 = %+v, want b again", next)
	}
}

func TestDelayAndRetention(t *testing.T) {
	t.Parallel()
	s, left := newStore(t, queue.Declaration{Name: "q", Attributes: queue.Attributes{Delay: 5 * time.Second, Retention: time.Minute}})
	ctx := bounded(t)
	send(t, s, "q", "queue-delay")
	zero := time.Duration(0)
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "no-delay", Delay: &zero}}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, "q", 10)
	if len(got) != 1 || got[0].Body != "no-delay" {
		t.Fatalf("receive at once = %+v, want only no-delay", got)
	}
	in, err := s.Info(ctx, "q")
	if err != nil || in.Visible != 0 || in.Delayed != 1 || in.InFlight != 1 {
		t.Fatalf("Info = %+v, %v; want 1 delayed, 1 in flight", in, err)
	}
	s.AdvanceForTest(5 * time.Second)
	if got := receive(t, s, "q", 10); len(got) != 1 || got[0].Body != "queue-delay" {
		t.Fatalf("receive after the delay = %+v, want queue-delay", got)
	}
	s.AdvanceForTest(time.Minute)
	if in, _ := s.Info(ctx, "q"); in.Visible+in.InFlight+in.Delayed != 0 {
		t.Fatalf("Info past retention = %+v, want no messages", in)
	}
	if got := left.all(); !slices.Equal(got, []string{"q expired", "q expired"}) {
		t.Errorf("Left was told %v, want two expired messages", got)
	}
}

func TestDeadLetterAndRedrive(t *testing.T) {
	t.Parallel()
	s, left := newStore(t,
		queue.Declaration{Name: "work", Attributes: queue.Attributes{VisibilityTimeout: time.Second, DeadLetter: "dlq", MaxReceiveCount: 3}},
		queue.Declaration{Name: "dlq"})
	ctx := bounded(t)
	sent := send(t, s, "work", "poison")
	for i := 1; i <= 3; i++ {
		got := receive(t, s, "work", 1)
		if len(got) != 1 || got[0].ReceiveCount != i {
			t.Fatalf("receive %d = %+v, want poison with ReceiveCount %d", i, got, i)
		}
		s.AdvanceForTest(time.Second)
	}
	if got := receive(t, s, "work", 1); len(got) != 0 {
		t.Fatalf("receive 4 = %+v, want none: the message moved to the dead-letter queue", got)
	}
	dead, err := s.Peek(ctx, "dlq", 10)
	if err != nil || len(dead) != 1 || dead[0].ID != sent[0].ID || dead[0].DeadLetterSource != "work" || dead[0].Body != "poison" {
		t.Fatalf("Peek(dlq) = %+v, %v; want the poison message from work", dead, err)
	}
	if got := left.all(); !slices.Equal(got, []string{"work dead_letter"}) {
		t.Errorf("Left was told %v, want one dead letter from work", got)
	}
	in, err := s.Info(ctx, "dlq")
	if err != nil || !slices.Equal(in.Sources, []string{"work"}) || in.Visible != 1 {
		t.Errorf("Info(dlq) = %+v, %v; want work as its source and one visible message", in, err)
	}
	if _, err := s.Redrive(ctx, "work"); !errors.Is(err, queue.ErrNoDeadLetter) {
		t.Fatalf("Redrive(work) = %v, want ErrNoDeadLetter", err)
	}
	n, err := s.Redrive(ctx, "dlq")
	if err != nil || n != 1 {
		t.Fatalf("Redrive(dlq) = %d, %v; want 1", n, err)
	}
	got := receive(t, s, "work", 1)
	if len(got) != 1 || got[0].ID != sent[0].ID || got[0].ReceiveCount != 1 || got[0].DeadLetterSource != "" ||
		!got[0].SentAt.Equal(dead[0].SentAt) {
		t.Fatalf("receive after redrive = %+v, want poison with ReceiveCount 1 and its first send's time", got)
	}
	if dead, _ := s.Peek(ctx, "dlq", 10); len(dead) != 0 {
		t.Errorf("Peek(dlq) after the redrive = %+v, want none", dead)
	}
}

// TestDeadLetterFull: a message due for the dead-letter queue while that
// is full stays where it is, unreceived, and the messages behind it are
// received.
func TestDeadLetterFull(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t,
		queue.Declaration{Name: "work", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}},
		queue.Declaration{Name: "dlq", Attributes: queue.Attributes{MaxMessages: 1}})
	send(t, s, "dlq", "filler")
	send(t, s, "work", "poison")
	receive(t, s, "work", 1)
	s.AdvanceForTest(queue.DefaultVisibilityTimeout)
	send(t, s, "work", "fine")
	if got := receive(t, s, "work", 10); !slices.Equal(bodies(got), []string{"fine"}) {
		t.Fatalf("receive = %v, want only fine: poison waits for room in the dead-letter queue", bodies(got))
	}
	if in, _ := s.Info(bounded(t), "work"); in.Visible != 1 || in.InFlight != 1 {
		t.Errorf("Info(work) = %+v, want poison visible and fine in flight", in)
	}
}

// TestZeroVisibilityPages: a receive with a visibility timeout of 0
// leaves what it takes in the range of due messages, at the end (due
// now), and still reads every message behind a page that it took some of
// and moved the rest of to the dead-letter queue.
func TestZeroVisibilityPages(t *testing.T) {
	t.Parallel()
	s, left := newStore(t,
		queue.Declaration{Name: "work", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}},
		queue.Declaration{Name: "dlq"})
	const dead = 45 // with 5 fresh messages, a page of the receive script
	for i := 0; i < dead; i += queue.MaxBatch {
		var msgs []queue.Outgoing
		for j := i; j < min(i+queue.MaxBatch, dead); j++ {
			msgs = append(msgs, queue.Outgoing{Body: fmt.Sprint("dead", j)})
		}
		if _, err := s.Send(bounded(t), "work", msgs); err != nil {
			t.Fatal(err)
		}
	}
	for got := 0; got < dead; {
		got += len(receive(t, s, "work", queue.MaxBatch))
	}
	// Due again before the fresh messages, received once: each moves to
	// the dead-letter queue when a receive reaches it.
	s.AdvanceForTest(queue.DefaultVisibilityTimeout + time.Second)
	fresh := []string{"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"}
	send(t, s, "work", fresh...)
	s.AdvanceForTest(time.Millisecond) // due before the receive's now
	zero := time.Duration(0)
	got, err := s.Receive(bounded(t), "work", queue.ReceiveOptions{Max: queue.MaxBatch, Visibility: &zero})
	if err != nil || !slices.Equal(bodies(got), fresh) {
		t.Fatalf("Receive(visibility 0) = %v, %v; want every fresh message, in the order sent", bodies(got), err)
	}
	if n := len(left.all()); n != dead {
		t.Errorf("Left was told of %d messages, want %d dead letters", n, dead)
	}
	if in, _ := s.Info(bounded(t), "dlq"); in.Visible != dead {
		t.Errorf("Info(dlq) = %+v, want %d visible", in, dead)
	}
}

// TestRedriveMany: a redrive moves a dead-letter queue larger than one of
// its batches, leaving the messages whose source is no longer declared.
func TestRedriveMany(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t,
		queue.Declaration{Name: "a", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}},
		queue.Declaration{Name: "b", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}},
		queue.Declaration{Name: "dlq"})
	const n = 1200
	for i := 0; i < n; i += queue.MaxBatch {
		var msgs []queue.Outgoing
		for j := range queue.MaxBatch {
			msgs = append(msgs, queue.Outgoing{Body: fmt.Sprint(i + j)})
		}
		if _, err := s.Send(bounded(t), "a", msgs); err != nil {
			t.Fatal(err)
		}
	}
	send(t, s, "b", "from-b")
	for range n/queue.MaxBatch + 1 {
		for _, q := range []string{"a", "b"} {
			if _, err := s.Receive(bounded(t), q, queue.ReceiveOptions{Max: queue.MaxBatch}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.AdvanceForTest(queue.DefaultVisibilityTimeout)
	for range n/queue.MaxBatch + 1 { // each moves its due messages, receiving none
		for _, q := range []string{"a", "b"} {
			if got, err := s.Receive(bounded(t), q, queue.ReceiveOptions{Max: queue.MaxBatch}); err != nil || len(got) != 0 {
				t.Fatalf("receive of a message due for the dead-letter queue = %d, %v", len(got), err)
			}
		}
	}
	if in, _ := s.Info(bounded(t), "dlq"); in.Visible != n+1 {
		t.Fatalf("dead-letter queue holds %+v, want %d visible", in, n+1)
	}
	// b is no longer declared: its message stays.
	declare(t, s, queue.Declaration{Name: "a", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}}, queue.Declaration{Name: "dlq"})
	moved, err := s.Redrive(bounded(t), "dlq")
	if err != nil || moved != n {
		t.Fatalf("Redrive = %d, %v; want %d", moved, err, n)
	}
	dead, err := s.Peek(bounded(t), "dlq", 10)
	if err != nil || !slices.Equal(bodies(dead), []string{"from-b"}) {
		t.Errorf("left in the dead-letter queue: %v, %v; want from-b", bodies(dead), err)
	}
	if in, _ := s.Info(bounded(t), "a"); in.Visible != n {
		t.Errorf("a holds %+v after the redrive, want %d visible", in, n)
	}
}

func TestLongPolling(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, queue.Declaration{Name: "q"})
	testutil.Eventually(t, 10*time.Second, s.SubscribedForTest, "the store does not subscribe")
	done := make(chan []queue.Message, 1)
	go func() {
		got, err := s.Receive(bounded(t), "q", queue.ReceiveOptions{Wait: queue.MaxWait})
		if err != nil {
			t.Errorf("Receive: %v", err)
		}
		done <- got
	}()
	waiting(t, s, 1) // sent while the receive waits, not before
	send(t, s, "q", "late")
	if got := <-done; len(got) != 1 || got[0].Body != "late" {
		t.Fatalf("long poll = %+v, want late", got)
	}
	// A cancelled context ends the wait with its error.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Receive(ctx, "q", queue.ReceiveOptions{Wait: queue.MaxWait}); errc <- err }()
	waiting(t, s, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Receive(cancelled) = %v, want context.Canceled", err)
	}
	// A short wait ends empty.
	if got, err := s.Receive(bounded(t), "q", queue.ReceiveOptions{Wait: 50 * time.Millisecond}); err != nil || len(got) != 0 {
		t.Errorf("Receive(50ms on an empty queue) = %+v, %v; want none", got, err)
	}
	if n := s.WaitersForTest(); n != 0 {
		t.Errorf("WaitersForTest() = %d after the waits ended, want 0", n)
	}
}

// TestTwoNodes: two stores on one server, each with its own client, are
// one set of queues: what one sends the other receives, a handle of one
// deletes through the other, and a long poll on one wakes for a send or a
// shortened visibility on the other. The polls look again only every
// minute on their own, past their context's end: they return in time only
// when notified.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	prefix := fmt.Sprintf("two%d:", prefixSeq.Add(1))
	a := node(t, r.Addr, prefix, redisqueue.Options{Recheck: time.Minute})
	b := node(t, r.Addr, prefix, redisqueue.Options{Recheck: time.Minute})
	declare(t, a, queue.Declaration{Name: "q"})
	declare(t, b, queue.Declaration{Name: "q"})
	send(t, a, "q", "one")
	got := receive(t, b, "q", 10)
	if len(got) != 1 || got[0].Body != "one" {
		t.Fatalf("b received %+v, want what a sent", got)
	}
	if more := receive(t, a, "q", 10); len(more) != 0 {
		t.Fatalf("a received %+v while b has it in flight, want none", more)
	}
	if err := a.Delete(bounded(t), "q", got[0].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if in, _ := b.Info(bounded(t), "q"); in.Visible+in.InFlight+in.Delayed != 0 {
		t.Fatalf("after a deleted b's message: Info = %+v, want no message", in)
	}

	testutil.Eventually(t, 10*time.Second, b.SubscribedForTest, "b does not subscribe")
	type result struct {
		msgs []queue.Message
		err  error
	}
	poll := func() chan result {
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			msgs, err := b.Receive(ctx, "q", queue.ReceiveOptions{Wait: queue.MaxWait})
			done <- result{msgs, err}
		}()
		return done
	}
	done := poll()
	waiting(t, b, 1)
	send(t, a, "q", "two")
	res := <-done
	if res.err != nil || len(res.msgs) != 1 || res.msgs[0].Body != "two" {
		t.Fatalf("b's long poll = %+v, %v; want two, sent by a", res.msgs, res.err)
	}
	done = poll()
	waiting(t, b, 1)
	if err := a.ChangeVisibility(bounded(t), "q", res.msgs[0].ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || len(r.msgs) != 1 || r.msgs[0].Body != "two" || r.msgs[0].ReceiveCount != 2 {
		t.Fatalf("b's long poll = %+v, %v; want two again, made visible by a", r.msgs, r.err)
	}
}

// TestDelayedWakesLongPoll: a long poll wakes when a delayed message comes
// due, without a notification then.
func TestDelayedWakesLongPoll(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	s := node(t, r.Addr, "", redisqueue.Options{Recheck: time.Minute})
	declare(t, s, queue.Declaration{Name: "q"})
	delay := 100 * time.Millisecond
	if _, err := s.Send(bounded(t), "q", []queue.Outgoing{{Body: "later", Delay: &delay}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Receive(bounded(t), "q", queue.ReceiveOptions{Wait: queue.MaxWait})
	if err != nil || len(got) != 1 || got[0].Body != "later" {
		t.Fatalf("long poll = %+v, %v; want later once its delay ended", got, err)
	}
}

// TestLostData: after the server restarted without its data, a store
// writes its declarations again and serves its queues, empty.
func TestLostData(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	s := node(t, r.Addr, "", redisqueue.Options{})
	attrs := queue.Attributes{VisibilityTimeout: time.Minute, MaxMessages: 5}
	declare(t, s, queue.Declaration{Name: "q", Attributes: attrs})
	send(t, s, "q", "lost")
	r.Kill()
	r.Start() // no persistence: the data is gone
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := s.Send(bounded(t), "q", []queue.Outgoing{{Body: "after"}})
		return err == nil
	}, "a send after the restart")
	if got := receive(t, s, "q", 10); !slices.Equal(bodies(got), []string{"after"}) {
		t.Errorf("received %v, want only what was sent after the restart", bodies(got))
	}
	if in, err := s.Info(bounded(t), "q"); err != nil || in.Attributes != attrs.WithDefaults() {
		t.Errorf("Info = %+v, %v; want the attributes declared before the restart", in, err)
	}
}

// TestPersistence: messages, in flight or not, and the declared queues
// outlive a restart of a server that keeps an append-only file.
func TestPersistence(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir())
	s := node(t, r.Addr, "", redisqueue.Options{})
	declare(t, s, queue.Declaration{Name: "q"})
	send(t, s, "q", "kept", "in-flight")
	inflight := receive(t, s, "q", 1)
	r.Kill()
	r.Start()
	// Info runs a script: it answers once the store's client reaches the
	// server again and the server has loaded its file.
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := s.Info(bounded(t), "q")
		return err == nil
	}, "the store does not reach the server again")
	got := receive(t, s, "q", 10)
	if len(got) != 1 || got[0].Body == inflight[0].Body {
		t.Fatalf("after the restart: received %v, want the message not in flight", bodies(got))
	}
	if err := s.Delete(bounded(t), "q", inflight[0].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if in, _ := s.Info(bounded(t), "q"); in.InFlight != 1 || in.Visible+in.Delayed != 0 {
		t.Errorf("Info = %+v, want one message left, in flight", in)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, queue.Declaration{Name: "q", Attributes: queue.Attributes{MaxMessages: 2, MaxMessageBytes: 1024}},
		queue.Declaration{Name: "other"})
	ctx := bounded(t)
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "ok"}, {Body: strings.Repeat("x", 1025)}}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("Send(too large) = %v, want ErrInvalid", err)
	}
	send(t, s, "q", "a")
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "b"}, {Body: "c"}}); !errors.Is(err, queue.ErrFull) {
		t.Errorf("Send(past full) = %v, want ErrFull", err)
	}
	send(t, s, "q", "b")
	if in, _ := s.Info(ctx, "q"); in.Visible != 2 {
		t.Errorf("Info = %+v, want a and b alone: the refused sends added nothing", in)
	}
	if _, err := s.Send(ctx, "nope", []queue.Outgoing{{Body: "c"}}); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Send(missing queue) = %v, want ErrNotFound", err)
	}
	long := queue.MaxDelay + time.Second
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "c", Delay: &long}}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("Send(delay 15m1s) = %v, want ErrInvalid", err)
	}
	if _, err := s.Receive(ctx, "q", queue.ReceiveOptions{Max: 11}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("Receive(Max 11) = %v, want ErrInvalid", err)
	}
	if _, err := s.Receive(ctx, "nope", queue.ReceiveOptions{}); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Receive(missing queue) = %v, want ErrNotFound", err)
	}
	if err := s.ChangeVisibility(ctx, "q", "x", 13*time.Hour); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("ChangeVisibility(13h) = %v, want ErrInvalid", err)
	}

	got := receive(t, s, "q", 1)
	send(t, s, "other", "o")
	otherHandle := receive(t, s, "other", 1)[0].ReceiptHandle
	memHandle := base64.RawURLEncoding.EncodeToString([]byte("q\n" + got[0].ID + "\n" + "0123456789abcdef01234567"))
	for _, h := range []string{"garbage", "", otherHandle, memHandle} {
		if err := s.Delete(ctx, "q", h); !errors.Is(err, queue.ErrReceiptHandle) {
			t.Errorf("Delete(%q) = %v, want ErrReceiptHandle", h, err)
		}
		if err := s.ChangeVisibility(ctx, "q", h, 0); !errors.Is(err, queue.ErrReceiptHandle) {
			t.Errorf("ChangeVisibility(%q) = %v, want ErrReceiptHandle", h, err)
		}
	}
}

func TestDeclare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		decls []queue.Declaration
		want  string
	}{
		{"fifo refused", []queue.Declaration{{Name: "a.fifo"}}, "FIFO queues are not supported"},
		{"missing dlq", []queue.Declaration{{Name: "a", Attributes: queue.Attributes{DeadLetter: "b", MaxReceiveCount: 1}}}, "is not declared"},
		{"no maxReceiveCount", []queue.Declaration{{Name: "a", Attributes: queue.Attributes{DeadLetter: "b"}}, {Name: "b"}}, "maxReceiveCount 0"},
		{"visibility", []queue.Declaration{{Name: "a", Attributes: queue.Attributes{VisibilityTimeout: 13 * time.Hour}}}, "VisibilityTimeout"},
		{"bad name", []queue.Declaration{{Name: "a b"}}, "only letters"},
	}
	s, _ := newStore(t, queue.Declaration{Name: "keep"}, queue.Declaration{Name: "drop"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Declare(bounded(t), tt.decls)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Declare = %v, want an error with %q", err, tt.want)
			}
		})
	}
	ctx := bounded(t)
	if names, _ := s.Queues(ctx); !slices.Equal(names, []string{"drop", "keep"}) {
		t.Fatalf("Queues() after refused declarations = %v, want drop and keep", names)
	}
	before, err := s.Info(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, "keep", "a")
	send(t, s, "drop", "d")
	hour := time.Hour
	if got, err := s.Receive(ctx, "drop", queue.ReceiveOptions{Visibility: &hour}); err != nil || len(got) != 1 {
		t.Fatalf("Receive(drop) = %+v, %v; want d", got, err)
	}
	testutil.Eventually(t, 10*time.Second, s.SubscribedForTest, "the store does not subscribe")
	dropped := make(chan error, 1)
	go func() {
		_, err := s.Receive(bounded(t), "drop", queue.ReceiveOptions{Wait: queue.MaxWait})
		dropped <- err
	}()
	waiting(t, s, 1)
	attrs := queue.Attributes{VisibilityTimeout: time.Minute, ReceiveWait: 3 * time.Second}
	declare(t, s, queue.Declaration{Name: "keep", Attributes: attrs})
	if err := <-dropped; !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("a long poll of a queue dropped meanwhile = %v, want ErrNotFound", err)
	}
	if _, err := s.Info(ctx, "drop"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Info(dropped) = %v, want ErrNotFound", err)
	}
	in, err := s.Info(ctx, "keep")
	if err != nil || in.Attributes != attrs.WithDefaults() || !in.CreatedAt.Equal(before.CreatedAt) || in.Visible != 1 {
		t.Errorf("Info(keep) = %+v, %v; want the new attributes, its creation time, its message", in, err)
	}
	// Declared again, the dropped queue has its message back.
	declare(t, s, queue.Declaration{Name: "keep"}, queue.Declaration{Name: "drop"})
	if in, err := s.Info(ctx, "drop"); err != nil || in.InFlight != 1 {
		t.Errorf("Info(drop declared again) = %+v, %v; want its message, still in flight", in, err)
	}
}

// TestConcurrentDeclare: of Declares that run at once, the one whose
// attributes the server keeps is the one whose queues the node serves.
func TestConcurrentDeclare(t *testing.T) {
	t.Parallel()
	one := []queue.Declaration{{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: time.Minute}}}
	two := []queue.Declaration{{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: 2 * time.Minute}}, {Name: "r"}}
	s, _ := newStore(t, one...)
	for round := range 50 {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				decls := one
				if i%2 == 1 {
					decls = two
				}
				if err := s.Declare(bounded(t), decls); err != nil {
					t.Errorf("Declare: %v", err)
				}
			})
		}
		wg.Wait()
		names, _ := s.Queues(bounded(t))
		in, err := s.Info(bounded(t), "q")
		if err != nil {
			t.Fatal(err)
		}
		want := time.Minute
		if slices.Contains(names, "r") {
			want = 2 * time.Minute
		}
		if in.Attributes.VisibilityTimeout != want {
			t.Fatalf("round %d: the node serves %v, and the server keeps q's VisibilityTimeout %v, want %v", round, names, in.Attributes.VisibilityTimeout, want)
		}
	}
}

// TestInfoAndPeek: Info counts messages by state; Peek lists them the
// earliest sent first, receiving none; a batch is received in the order
// it was sent.
func TestInfoAndPeek(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, queue.Declaration{Name: "q"})
	ctx := bounded(t)
	send(t, s, "q", "1", "2", "3", "4")
	s.AdvanceForTest(time.Millisecond) // a later send is a later millisecond
	send(t, s, "q", "5")
	min := time.Minute
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "delayed", Delay: &min}}); err != nil {
		t.Fatal(err)
	}
	peek, err := s.Peek(ctx, "q", 10)
	if err != nil || !slices.Equal(bodies(peek), []string{"1", "2", "3", "4", "5", "delayed"}) {
		t.Fatalf("Peek = %v, %v; want every message in the order sent", bodies(peek), err)
	}
	for _, m := range peek {
		if m.ReceiptHandle != "" || m.ReceiveCount != 0 {
			t.Errorf("Peek returned %+v, want no handle and no receive", m)
		}
	}
	if peek, _ := s.Peek(ctx, "q", 2); !slices.Equal(bodies(peek), []string{"1", "2"}) {
		t.Errorf("Peek(2) = %v, want the first two", bodies(peek))
	}
	if got := receive(t, s, "q", 3); !slices.Equal(bodies(got), []string{"1", "2", "3"}) {
		t.Errorf("receive(3) = %v, want the first three sent", bodies(got))
	}
	in, err := s.Info(ctx, "q")
	if err != nil || in.Visible != 2 || in.InFlight != 3 || in.Delayed != 1 || in.Name != "q" || in.CreatedAt.IsZero() {
		t.Errorf("Info = %+v, %v; want 2 visible, 3 in flight, 1 delayed", in, err)
	}
}

// TestMessageAttributes: bodies and attributes come back byte for byte.
func TestMessageAttributes(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, queue.Declaration{Name: "q"})
	out := queue.Outgoing{
		Body: "caf\xc3\xa9 \xff\x00 end",
		Attributes: map[string]queue.MessageAttribute{
			"s":     {DataType: "String", StringValue: "v"},
			"n":     {DataType: "Number.int", StringValue: "42"},
			"b":     {DataType: "Binary", BinaryValue: []byte{0, 1, 0xfe}},
			"empty": {DataType: "Binary", BinaryValue: []byte{}},
		},
	}
	if _, err := s.Send(bounded(t), "q", []queue.Outgoing{out, {Body: ""}}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, "q", 10)
	if len(got) != 2 {
		t.Fatalf("received %d messages, want 2", len(got))
	}
	if got[0].Body != out.Body || !reflect.DeepEqual(got[0].Attributes, out.Attributes) {
		t.Errorf("received %q %#v, want %q %#v", got[0].Body, got[0].Attributes, out.Body, out.Attributes)
	}
	if got[1].Body != "" || got[1].Attributes != nil {
		t.Errorf("received %q %#v, want an empty body and no attributes", got[1].Body, got[1].Attributes)
	}
}
