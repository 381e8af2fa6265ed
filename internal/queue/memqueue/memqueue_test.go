package memqueue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// clock is a settable clock for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
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
	return append([]string(nil), l.seen...)
}

func newStore(t *testing.T, decls ...queue.Declaration) (*Store, *clock) {
	t.Helper()
	s, c, _ := newStoreLog(t, decls...)
	return s, c
}

func newStoreLog(t *testing.T, decls ...queue.Declaration) (*Store, *clock, *leftLog) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	l := &leftLog{}
	s := New(Options{Now: c.now, Left: l.add})
	if err := s.Declare(context.Background(), decls); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	return s, c, l
}

func send(t *testing.T, s *Store, q string, bodies ...string) []queue.Sent {
	t.Helper()
	var msgs []queue.Outgoing
	for _, b := range bodies {
		msgs = append(msgs, queue.Outgoing{Body: b})
	}
	sent, err := s.Send(context.Background(), q, msgs)
	if err != nil {
		t.Fatalf("Send(%s): %v", q, err)
	}
	return sent
}

func receive(t *testing.T, s *Store, q string, max int) []queue.Message {
	t.Helper()
	got, err := s.Receive(context.Background(), q, queue.ReceiveOptions{Max: max})
	if err != nil {
		t.Fatalf("Receive(%s): %v", q, err)
	}
	return got
}

func TestVisibilityTimeout(t *testing.T) {
	t.Parallel()
	s, c := newStore(t, queue.Declaration{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: 10 * time.Second}})
	send(t, s, "q", "a")
	got := receive(t, s, "q", 10)
	if len(got) != 1 || got[0].Body != "a" || got[0].ReceiveCount != 1 {
		t.Fatalf("first receive = %+v, want a once", got)
	}
	if again := receive(t, s, "q", 10); len(again) != 0 {
		t.Fatalf("receive while in flight = %d messages, want 0", len(again))
	}
	c.add(10 * time.Second)
	again := receive(t, s, "q", 10)
	if len(again) != 1 || again[0].ReceiveCount != 2 || !again[0].FirstReceivedAt.Equal(got[0].FirstReceivedAt) {
		t.Fatalf("receive after the timeout = %+v, want a with ReceiveCount 2 and the first receive's time", again)
	}
	// The first receive's handle is stale: deleting with it deletes nothing.
	if err := s.Delete(context.Background(), "q", got[0].ReceiptHandle); err != nil {
		t.Fatalf("Delete(stale handle) = %v, want nil", err)
	}
	if err := s.ChangeVisibility(context.Background(), "q", got[0].ReceiptHandle, 0); !errors.Is(err, queue.ErrNotInFlight) {
		t.Fatalf("ChangeVisibility(stale handle) = %v, want ErrNotInFlight", err)
	}
	if err := s.ChangeVisibility(context.Background(), "q", again[0].ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0) = %v", err)
	}
	third := receive(t, s, "q", 10)
	if len(third) != 1 {
		t.Fatalf("receive after ChangeVisibility(0) = %d messages, want 1", len(third))
	}
	if err := s.Delete(context.Background(), "q", third[0].ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	c.add(time.Hour)
	if left := receive(t, s, "q", 10); len(left) != 0 {
		t.Fatalf("receive after Delete = %+v, want none", left)
	}
}

func TestDelayAndRetention(t *testing.T) {
	t.Parallel()
	s, c, left := newStoreLog(t, queue.Declaration{Name: "q", Attributes: queue.Attributes{Delay: 5 * time.Second, Retention: time.Minute}})
	send(t, s, "q", "queue-delay")
	zero := time.Duration(0)
	if _, err := s.Send(context.Background(), "q", []queue.Outgoing{{Body: "no-delay", Delay: &zero}}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, "q", 10)
	if len(got) != 1 || got[0].Body != "no-delay" {
		t.Fatalf("receive at once = %+v, want only no-delay", got)
	}
	in, _ := s.Info(context.Background(), "q")
	if in.Delayed != 1 || in.InFlight != 1 {
		t.Fatalf("Info = %+v, want 1 delayed, 1 in flight", in)
	}
	c.add(5 * time.Second)
	if got := receive(t, s, "q", 10); len(got) != 1 || got[0].Body != "queue-delay" {
		t.Fatalf("receive after the delay = %+v, want queue-delay", got)
	}
	c.add(time.Minute)
	if in, _ := s.Info(context.Background(), "q"); in.Visible+in.InFlight+in.Delayed != 0 {
		t.Fatalf("Info past retention = %+v, want no messages", in)
	}
	if got := left.all(); len(got) != 2 || got[0] != "q expired" || got[1] != "q expired" {
		t.Errorf("Left was told %v, want two expired messages", got)
	}
}

func TestDeadLetterAndRedrive(t *testing.T) {
	t.Parallel()
	s, c, left := newStoreLog(t,
		queue.Declaration{Name: "work", Attributes: queue.Attributes{VisibilityTimeout: time.Second, DeadLetter: "dlq", MaxReceiveCount: 3}},
		queue.Declaration{Name: "dlq"})
	sent := send(t, s, "work", "poison")
	for i := 1; i <= 3; i++ {
		got := receive(t, s, "work", 1)
		if len(got) != 1 || got[0].ReceiveCount != i {
			t.Fatalf("receive %d = %+v, want poison with ReceiveCount %d", i, got, i)
		}
		c.add(time.Second)
	}
	if got := receive(t, s, "work", 1); len(got) != 0 {
		t.Fatalf("receive 4 = %+v, want none: the message moved to the dead-letter queue", got)
	}
	dead, err := s.Peek(context.Background(), "dlq", 10)
	if err != nil || len(dead) != 1 || dead[0].ID != sent[0].ID || dead[0].DeadLetterSource != "work" {
		t.Fatalf("Peek(dlq) = %+v, %v; want the poison message from work", dead, err)
	}
	if got := left.all(); len(got) != 1 || got[0] != "work dead_letter" {
		t.Errorf("Left was told %v, want one dead letter from work", got)
	}
	if _, err := s.Redrive(context.Background(), "work"); !errors.Is(err, queue.ErrNoDeadLetter) {
		t.Fatalf("Redrive(work) = %v, want ErrNoDeadLetter", err)
	}
	n, err := s.Redrive(context.Background(), "dlq")
	if err != nil || n != 1 {
		t.Fatalf("Redrive(dlq) = %d, %v; want 1", n, err)
	}
	got := receive(t, s, "work", 1)
	if len(got) != 1 || got[0].ID != sent[0].ID || got[0].ReceiveCount != 1 {
		t.Fatalf("receive after redrive = %+v, want poison with ReceiveCount 1", got)
	}
}

func TestLongPolling(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan []queue.Message, 1)
	go func() {
		got, err := s.Receive(context.Background(), "q", queue.ReceiveOptions{Wait: queue.MaxWait})
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
	// A cancelled context ends the wait with its error: a receive that
	// ignored it would answer empty after 20s, without one.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Receive(ctx, "q", queue.ReceiveOptions{Wait: queue.MaxWait}); errc <- err }()
	waiting(t, s, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Receive(cancelled) = %v, want context.Canceled", err)
	}
	if n := s.WaitersForTest(); n != 0 {
		t.Errorf("WaitersForTest() = %d after the waits ended, want 0", n)
	}
}

// TestChangeVisibilityWakesLongPoll: a visibility timeout shortened to a
// non-zero time wakes the long polls, which receive the message then
// rather than at the end of their wait.
func TestChangeVisibilityWakesLongPoll(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	send(t, s, "q", "a")
	hour := time.Hour
	got, err := s.Receive(context.Background(), "q", queue.ReceiveOptions{Visibility: &hour})
	if err != nil || len(got) != 1 {
		t.Fatalf("Receive = %+v, %v", got, err)
	}
	// The poll's own bound is half its wait: a poll not woken by the
	// change sleeps past it, until its 20s or the hour.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		msgs []queue.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := s.Receive(ctx, "q", queue.ReceiveOptions{Wait: queue.MaxWait})
		done <- result{msgs, err}
	}()
	waiting(t, s, 1)
	if err := s.ChangeVisibility(context.Background(), "q", got[0].ReceiptHandle, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || len(r.msgs) != 1 || r.msgs[0].Body != "a" || r.msgs[0].ReceiveCount != 2 {
		t.Errorf("long poll = %+v, %v; want a, received again once its new timeout ended", r.msgs, r.err)
	}
}

// waiting waits until n receives wait in a long poll.
func waiting(t *testing.T, s *Store, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool { return s.WaitersForTest() == n }, "the receive does not wait")
}

func TestLimits(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, queue.Declaration{Name: "q", Attributes: queue.Attributes{MaxMessages: 2, MaxMessageBytes: 1024}})
	ctx := context.Background()
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: strings.Repeat("x", 1025)}}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("Send(too large) = %v, want ErrInvalid", err)
	}
	send(t, s, "q", "a", "b")
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "c"}}); !errors.Is(err, queue.ErrFull) {
		t.Errorf("Send(full) = %v, want ErrFull", err)
	}
	if _, err := s.Send(ctx, "nope", []queue.Outgoing{{Body: "c"}}); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Send(missing queue) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "q", "garbage"); !errors.Is(err, queue.ErrReceiptHandle) {
		t.Errorf("Delete(garbage) = %v, want ErrReceiptHandle", err)
	}
	if _, err := s.Receive(ctx, "q", queue.ReceiveOptions{Max: 11}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("Receive(Max 11) = %v, want ErrInvalid", err)
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := New(Options{}).Declare(context.Background(), tt.decls)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Declare = %v, want an error with %q", err, tt.want)
			}
		})
	}
	// A new declaration keeps the messages of the queues it keeps.
	s, _ := newStore(t, queue.Declaration{Name: "keep"}, queue.Declaration{Name: "drop"})
	send(t, s, "keep", "a")
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "keep", Attributes: queue.Attributes{VisibilityTimeout: time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, s, "keep", 1); len(got) != 1 {
		t.Errorf("receive after Declare = %d messages, want the one kept", len(got))
	}
	if _, err := s.Info(context.Background(), "drop"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Info(dropped) = %v, want ErrNotFound", err)
	}
}

// TestReceiveQueueWait: a receive with QueueWait waits as long as the
// queue's ReceiveWait; one with neither answers at once.
func TestReceiveQueueWait(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q", Attributes: queue.Attributes{ReceiveWait: queue.MaxWait}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Receive(context.Background(), "q", queue.ReceiveOptions{}); err != nil || len(got) != 0 {
		t.Fatalf("Receive(no wait) = %+v, %v; want nothing at once", got, err)
	}
	done := make(chan []queue.Message, 1)
	go func() {
		got, err := s.Receive(context.Background(), "q", queue.ReceiveOptions{QueueWait: true})
		if err != nil {
			t.Errorf("Receive(QueueWait): %v", err)
		}
		done <- got
	}()
	waiting(t, s, 1)
	send(t, s, "q", "late")
	if got := <-done; len(got) != 1 || got[0].Body != "late" {
		t.Errorf("Receive(QueueWait) = %+v, want late", got)
	}
}
