// Package queuetest checks that a queue.Store keeps the contract the SQS
// API and the queue triggers rely on: messages sent, received, hidden for
// their visibility timeout and deleted; delays that hold a message back
// without counting a receive; long polls woken by a send or a change of
// visibility; dead letters moved after their receives and redriven back;
// the limits and errors every store answers alike. RunShared checks, for a
// store that lives in an engine several nodes share, that two nodes serve
// the same queues.
//
// The suite uses the real clock with short durations (visibility timeouts
// and delays of a few hundred milliseconds), awaits what it expects with
// long polls rather than sleeps, and asserts no upper bound on how long
// anything takes, so that it passes on a loaded machine. A lower bound is
// asserted where the contract promises one (a message comes back no
// sooner than its timeout), less a tenth for engines whose clocks count
// in milliseconds.
package queuetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// Open returns a new store serving decls, isolated from every other store
// Open returns (a new engine, or a prefix of its own on a shared one). The
// factory closes the store with t's cleanups.
type Open func(t *testing.T, decls ...queue.Declaration) queue.Store

// OpenPair returns two stores serving decls on one engine, as two nodes of
// a cluster, isolated from every other pair. The factory closes them with
// t's cleanups.
type OpenPair func(t *testing.T, decls ...queue.Declaration) (a, b queue.Store)

// Waiters is what a store may offer so that the suite sends, or cancels,
// once a receive waits in a long poll rather than racing it: how many
// receives wait now. A store without it is still checked, each wait then
// being as likely to start after the event as before it.
type Waiters interface {
	WaitersForTest() int
}

const (
	// callTimeout bounds every call of the suite.
	callTimeout = 30 * time.Second
	// short is a visibility timeout or a delay the suite waits out.
	short = 300 * time.Millisecond
	// quiet is how long the suite waits to see that nothing comes.
	quiet = time.Second
	// long is a visibility timeout the suite never waits out.
	long = time.Hour
)

// Run runs the conformance suite on stores that open returns.
func Run(t *testing.T, open Open) {
	t.Run("SendReceiveDelete", func(t *testing.T) { t.Parallel(); testSendReceiveDelete(t, open) })
	t.Run("DeleteIsFinal", func(t *testing.T) { t.Parallel(); testDeleteIsFinal(t, open) })
	t.Run("Hidden", func(t *testing.T) { t.Parallel(); testHidden(t, open) })
	t.Run("VisibilityTimeout", func(t *testing.T) { t.Parallel(); testVisibilityTimeout(t, open) })
	t.Run("VisibilityOverride", func(t *testing.T) { t.Parallel(); testVisibilityOverride(t, open) })
	t.Run("ChangeVisibility", func(t *testing.T) { t.Parallel(); testChangeVisibility(t, open) })
	t.Run("ChangeVisibilityExtends", func(t *testing.T) { t.Parallel(); testChangeVisibilityExtends(t, open) })
	t.Run("QueueDelay", func(t *testing.T) { t.Parallel(); testQueueDelay(t, open) })
	t.Run("MessageDelay", func(t *testing.T) { t.Parallel(); testMessageDelay(t, open) })
	t.Run("LongPoll", func(t *testing.T) { t.Parallel(); testLongPoll(t, open) })
	t.Run("LongPollCancel", func(t *testing.T) { t.Parallel(); testLongPollCancel(t, open) })
	t.Run("QueueWait", func(t *testing.T) { t.Parallel(); testQueueWait(t, open) })
	t.Run("DeadLetter", func(t *testing.T) { t.Parallel(); testDeadLetter(t, open) })
	t.Run("Limits", func(t *testing.T) { t.Parallel(); testLimits(t, open) })
	t.Run("NotFound", func(t *testing.T) { t.Parallel(); testNotFound(t, open) })
	t.Run("ReceiptHandles", func(t *testing.T) { t.Parallel(); testReceiptHandles(t, open) })
	t.Run("Info", func(t *testing.T) { t.Parallel(); testInfo(t, open) })
	t.Run("Queues", func(t *testing.T) { t.Parallel(); testQueues(t, open) })
	t.Run("Declare", func(t *testing.T) { t.Parallel(); testDeclare(t, open) })
	t.Run("Peek", func(t *testing.T) { t.Parallel(); testPeek(t, open) })
}

// ctxFor returns a context that bounds a test's calls.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func send(t *testing.T, s queue.Store, q string, msgs ...queue.Outgoing) []queue.Sent {
	t.Helper()
	sent, err := s.Send(ctxFor(t), q, msgs)
	if err != nil {
		t.Fatalf("Send(%s): %v", q, err)
	}
	if len(sent) != len(msgs) {
		t.Fatalf("Send(%s) of %d messages = %d sent", q, len(msgs), len(sent))
	}
	for _, s := range sent {
		if s.ID == "" {
			t.Fatalf("Send(%s) = %+v: a message without an ID", q, sent)
		}
	}
	return sent
}

func body(b string) queue.Outgoing { return queue.Outgoing{Body: b} }

// receive receives at once, without waiting.
func receive(t *testing.T, s queue.Store, q string, opts queue.ReceiveOptions) []queue.Message {
	t.Helper()
	got, err := s.Receive(ctxFor(t), q, opts)
	if err != nil {
		t.Fatalf("Receive(%s, %+v): %v", q, opts, err)
	}
	return got
}

// await receives until one message comes, which it returns; it fails the
// test when none came within callTimeout.
func await(t *testing.T, s queue.Store, q string, opts queue.ReceiveOptions) queue.Message {
	t.Helper()
	opts.Max = 1
	deadline := time.Now().Add(callTimeout)
	for time.Now().Before(deadline) {
		opts.Wait = min(time.Until(deadline), 5*time.Second)
		if opts.Wait <= 0 {
			break
		}
		got, err := s.Receive(ctxFor(t), q, opts)
		if err != nil {
			t.Fatalf("Receive(%s): %v", q, err)
		}
		if len(got) > 1 {
			t.Fatalf("Receive(%s, Max 1) = %d messages", q, len(got))
		}
		if len(got) == 1 {
			return got[0]
		}
	}
	t.Fatalf("Receive(%s): no message within %v", q, callTimeout)
	return queue.Message{}
}

// collect receives (10 at a time) until n messages came, and returns them.
func collect(t *testing.T, s queue.Store, q string, n int) []queue.Message {
	t.Helper()
	var out []queue.Message
	deadline := time.Now().Add(callTimeout)
	for len(out) < n && time.Now().Before(deadline) {
		got, err := s.Receive(ctxFor(t), q, queue.ReceiveOptions{Max: queue.MaxBatch, Wait: time.Second})
		if err != nil {
			t.Fatalf("Receive(%s): %v", q, err)
		}
		out = append(out, got...)
	}
	if len(out) != n {
		t.Fatalf("Receive(%s): %d messages, want %d", q, len(out), n)
	}
	return out
}

// none checks that no message comes within quiet: a message the test
// expects hidden, deleted or moved does not.
func none(t *testing.T, s queue.Store, q, why string) {
	t.Helper()
	got, err := s.Receive(ctxFor(t), q, queue.ReceiveOptions{Max: queue.MaxBatch, Wait: quiet})
	if err != nil {
		t.Fatalf("Receive(%s): %v", q, err)
	}
	if len(got) != 0 {
		t.Fatalf("Receive(%s) = %s; want none: %s", q, bodies(got), why)
	}
}

func bodies(ms []queue.Message) string {
	var b []string
	for _, m := range ms {
		b = append(b, m.Body)
	}
	return "[" + strings.Join(b, " ") + "]"
}

// waiting waits until s has n receives in a long poll, when s tells.
func waiting(t *testing.T, s queue.Store, n int) {
	t.Helper()
	if w, ok := s.(Waiters); ok {
		testutil.Eventually(t, callTimeout, func() bool { return w.WaitersForTest() == n }, "%d receives waiting", n)
	}
}

// atLeast checks that d, how long the test waited for something promised
// no sooner than want, is not shorter, less a tenth for engines whose
// clocks count in milliseconds.
func atLeast(t *testing.T, what string, d, want time.Duration) {
	t.Helper()
	if d < want-want/10 {
		t.Errorf("%s after %v, want no sooner than %v", what, d, want)
	}
}

// plausible checks a received message's times: sent between before and
// after (with a second for an engine's own clock), first received since.
func plausible(t *testing.T, m queue.Message, before, after time.Time) {
	t.Helper()
	if m.SentAt.Before(before.Add(-time.Second)) || m.SentAt.After(after.Add(time.Second)) {
		t.Errorf("message %s: SentAt %v, want between %v and %v", m.Body, m.SentAt, before, after)
	}
	if m.ReceiptHandle == "" {
		return // a peeked message
	}
	if m.FirstReceivedAt.Before(m.SentAt.Add(-time.Second)) || m.FirstReceivedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("message %s: FirstReceivedAt %v, want between SentAt %v and now", m.Body, m.FirstReceivedAt, m.SentAt)
	}
}

// counts awaits Info(q)'s counts to settle on want (visible, in flight,
// delayed): they are approximate while messages move.
func counts(t *testing.T, s queue.Store, q string, visible, inFlight, delayed int) {
	t.Helper()
	var in queue.Info
	var err error
	testutil.Eventually(t, callTimeout, func() bool {
		in, err = s.Info(ctxFor(t), q)
		return err == nil && in.Visible == visible && in.InFlight == inFlight && in.Delayed == delayed
	}, "Info(%s) counts: visible %d, in flight %d, delayed %d; last %+v, %v", q, visible, inFlight, delayed, in, err)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", what, err, want)
	}
}

func dur(d time.Duration) *time.Duration { return &d }

func decl(name string, a queue.Attributes) queue.Declaration {
	return queue.Declaration{Name: name, Attributes: a}
}

// attrs are message attributes of every type, to round-trip.
func attrs() map[string]queue.MessageAttribute {
	return map[string]queue.MessageAttribute{
		"str":   {DataType: "String", StringValue: "héllo, \"world\"\n"},
		"num":   {DataType: "Number", StringValue: "-42.5"},
		"bin":   {DataType: "Binary", BinaryValue: []byte{0, 1, 2, 0xfe, 0xff}},
		"label": {DataType: "String.custom", StringValue: "x"},
	}
}

func testSendReceiveDelete(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	before := time.Now()
	sent := send(t, s, "q", queue.Outgoing{Body: "one", Attributes: attrs()}, body("two"), body(strings.Repeat("three ", 100)))
	after := time.Now()
	if sent[0].ID == sent[1].ID || sent[1].ID == sent[2].ID || sent[0].ID == sent[2].ID {
		t.Fatalf("Send = %+v, want distinct IDs", sent)
	}
	got := collect(t, s, "q", 3)
	byID := map[string]queue.Message{}
	for _, m := range got {
		byID[m.ID] = m
	}
	for i, want := range []string{"one", "two", strings.Repeat("three ", 100)} {
		m, ok := byID[sent[i].ID]
		if !ok {
			t.Fatalf("received %s, want the message %s among them", bodies(got), sent[i].ID)
		}
		if m.Body != want || m.ReceiveCount != 1 || m.ReceiptHandle == "" || m.DeadLetterSource != "" {
			t.Errorf("received %+v, want body %.10q, ReceiveCount 1, a receipt handle, no DeadLetterSource", m, want)
		}
		plausible(t, m, before, after)
	}
	if m := byID[sent[0].ID]; !reflect.DeepEqual(m.Attributes, attrs()) {
		t.Errorf("message attributes = %+v, want %+v", m.Attributes, attrs())
	}
	if m := byID[sent[1].ID]; len(m.Attributes) != 0 {
		t.Errorf("message attributes = %+v, want none", m.Attributes)
	}
	counts(t, s, "q", 0, 3, 0)
	for _, m := range got {
		if err := s.Delete(ctx, "q", m.ReceiptHandle); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	counts(t, s, "q", 0, 0, 0)
	for _, m := range got {
		if err := s.Delete(ctx, "q", m.ReceiptHandle); err != nil {
			t.Errorf("Delete(already deleted) = %v, want nil", err)
		}
		wantErr(t, "ChangeVisibility(deleted)", s.ChangeVisibility(ctx, "q", m.ReceiptHandle, 0), queue.ErrNotInFlight)
	}
	if got := receive(t, s, "q", queue.ReceiveOptions{Max: 10}); len(got) != 0 {
		t.Errorf("Receive after Delete = %s, want none", bodies(got))
	}
}

func testDeleteIsFinal(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: short}))
	send(t, s, "q", body("a"))
	m := await(t, s, "q", queue.ReceiveOptions{})
	if err := s.Delete(ctxFor(t), "q", m.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	none(t, s, "q", "a deleted message does not come back after its visibility timeout")
}

func testHidden(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{})) // the default 30s
	send(t, s, "q", body("a"), body("b"))
	m := await(t, s, "q", queue.ReceiveOptions{})
	if m.ReceiveCount != 1 {
		t.Errorf("ReceiveCount = %d, want 1", m.ReceiveCount)
	}
	other := await(t, s, "q", queue.ReceiveOptions{})
	if other.ID == m.ID {
		t.Fatalf("the second receive got %s again, want the other message", m.Body)
	}
	if got := receive(t, s, "q", queue.ReceiveOptions{Max: 10}); len(got) != 0 {
		t.Errorf("Receive while both are in flight = %s, want none", bodies(got))
	}
	counts(t, s, "q", 0, 2, 0)
}

func testVisibilityTimeout(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: short}))
	ctx := ctxFor(t)
	send(t, s, "q", body("a"))
	start := time.Now()
	first := await(t, s, "q", queue.ReceiveOptions{})
	again := await(t, s, "q", queue.ReceiveOptions{})
	atLeast(t, "received again", time.Since(start), short)
	if again.ID != first.ID || again.ReceiveCount != 2 || again.Body != "a" {
		t.Fatalf("received again %+v, want a with ReceiveCount 2", again)
	}
	if again.ReceiptHandle == first.ReceiptHandle {
		t.Errorf("a second receive has the first's receipt handle")
	}
	if again.FirstReceivedAt.Before(first.FirstReceivedAt) {
		t.Errorf("FirstReceivedAt went back: %v, then %v", first.FirstReceivedAt, again.FirstReceivedAt)
	}
	// A stale handle is no error (and deletes the message or nothing).
	if err := s.Delete(ctx, "q", first.ReceiptHandle); err != nil {
		t.Errorf("Delete(stale handle) = %v, want nil", err)
	}
	if err := s.Delete(ctx, "q", again.ReceiptHandle); err != nil {
		t.Errorf("Delete = %v", err)
	}
	none(t, s, "q", "deleted")
}

func testVisibilityOverride(t *testing.T, open Open) {
	s := open(t, decl("longvis", queue.Attributes{VisibilityTimeout: long}), decl("shortvis", queue.Attributes{VisibilityTimeout: short}))
	send(t, s, "longvis", body("a"))
	start := time.Now()
	first := await(t, s, "longvis", queue.ReceiveOptions{Visibility: dur(short)})
	again := await(t, s, "longvis", queue.ReceiveOptions{})
	atLeast(t, "received again", time.Since(start), short)
	if again.ID != first.ID || again.ReceiveCount != 2 {
		t.Errorf("received again %+v, want a with ReceiveCount 2", again)
	}

	send(t, s, "shortvis", body("b"))
	if m := await(t, s, "shortvis", queue.ReceiveOptions{Visibility: dur(long)}); m.Body != "b" {
		t.Fatalf("received %+v, want b", m)
	}
	none(t, s, "shortvis", "received with a visibility timeout of an hour")
}

func testChangeVisibility(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	send(t, s, "q", body("a"))
	first := await(t, s, "q", queue.ReceiveOptions{})
	start := time.Now()
	if err := s.ChangeVisibility(ctx, "q", first.ReceiptHandle, short); err != nil {
		t.Fatalf("ChangeVisibility(%v): %v", short, err)
	}
	second := await(t, s, "q", queue.ReceiveOptions{})
	atLeast(t, "received again", time.Since(start), short)
	if second.ID != first.ID || second.ReceiveCount != 2 {
		t.Fatalf("received again %+v, want a with ReceiveCount 2", second)
	}

	// Zero makes it visible at once, and wakes a receive waiting for it.
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
	if err := s.ChangeVisibility(ctx, "q", second.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	r := <-done
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].ID != first.ID || r.msgs[0].ReceiveCount != 3 {
		t.Fatalf("long poll = %+v, %v; want a with ReceiveCount 3", r.msgs, r.err)
	}
	third := r.msgs[0]

	wantErr(t, "ChangeVisibility(13h)", s.ChangeVisibility(ctx, "q", third.ReceiptHandle, 13*time.Hour), queue.ErrInvalid)
	wantErr(t, "ChangeVisibility(-1s)", s.ChangeVisibility(ctx, "q", third.ReceiptHandle, -time.Second), queue.ErrInvalid)
	if err := s.Delete(ctx, "q", third.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantErr(t, "ChangeVisibility(deleted)", s.ChangeVisibility(ctx, "q", third.ReceiptHandle, 0), queue.ErrNotInFlight)
}

// testChangeVisibilityExtends: a message's timeout extended before it
// ends keeps it hidden past its first. The first is a few seconds. On a
// machine so slow that it ended before the change (ErrNotInFlight, its
// timeout after the receive began), the message, visible again, is
// received with a timeout twice as long, up to maxVis, and extended again.
func testChangeVisibilityExtends(t *testing.T, open Open) {
	const maxVis = 12 * time.Second // with quiet, within MaxWait
	vis := 3 * time.Second
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: vis}))
	send(t, s, "q", body("a"))
	var opts queue.ReceiveOptions // the queue's timeout first
	for {
		start := time.Now()
		m := await(t, s, "q", opts)
		err := s.ChangeVisibility(ctxFor(t), "q", m.ReceiptHandle, long)
		if err == nil {
			break
		}
		since := time.Since(start)
		if !errors.Is(err, queue.ErrNotInFlight) || since < vis-vis/10 || vis >= maxVis {
			t.Fatalf("ChangeVisibility(%v) %v after the receive of a message hidden for %v began: %v", long, since, vis, err)
		}
		vis *= 2
		opts.Visibility = dur(vis)
	}
	got, err := s.Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: vis + quiet})
	if err != nil || len(got) != 0 {
		t.Errorf("Receive past the first timeout = %s, %v; want none: its timeout was extended", bodies(got), err)
	}
}

func testQueueDelay(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{Delay: short, VisibilityTimeout: long}), decl("later", queue.Attributes{Delay: queue.MaxDelay}))
	start := time.Now()
	send(t, s, "q", body("a"))
	m := await(t, s, "q", queue.ReceiveOptions{})
	atLeast(t, "a delayed message received", time.Since(start), short)
	if m.Body != "a" || m.ReceiveCount != 1 {
		t.Errorf("received %+v, want a with ReceiveCount 1: a delay is no receive", m)
	}

	// A message's own delay overrides the queue's, zero included.
	send(t, s, "later", body("held"), queue.Outgoing{Body: "now", Delay: dur(0)})
	if m := await(t, s, "later", queue.ReceiveOptions{}); m.Body != "now" || m.ReceiveCount != 1 {
		t.Errorf("received %+v, want now with ReceiveCount 1", m)
	}
	if got := receive(t, s, "later", queue.ReceiveOptions{Max: 10}); len(got) != 0 {
		t.Errorf("Receive = %s, want none: held is delayed 15m", bodies(got))
	}
	counts(t, s, "later", 0, 1, 1)
}

func testMessageDelay(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	start := time.Now()
	send(t, s, "q", queue.Outgoing{Body: "a", Delay: dur(short)})
	m := await(t, s, "q", queue.ReceiveOptions{})
	atLeast(t, "a delayed message received", time.Since(start), short)
	if m.Body != "a" || m.ReceiveCount != 1 {
		t.Fatalf("received %+v, want a with ReceiveCount 1: a delay is no receive", m)
	}
	// Its receives count from there as any message's.
	if err := s.ChangeVisibility(ctx, "q", m.ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	if again := await(t, s, "q", queue.ReceiveOptions{}); again.ID != m.ID || again.ReceiveCount != 2 {
		t.Errorf("received again %+v, want a with ReceiveCount 2", again)
	}
}

func testLongPoll(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{}))
	ctx := ctxFor(t)
	// An empty queue: the wait ends with no message and no error.
	got, err := s.Receive(ctx, "q", queue.ReceiveOptions{Wait: short})
	if err != nil || len(got) != 0 {
		t.Fatalf("Receive(empty, Wait %v) = %s, %v; want none and no error", short, bodies(got), err)
	}
	type result struct {
		msgs []queue.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := s.Receive(ctx, "q", queue.ReceiveOptions{Wait: queue.MaxWait, Max: 10})
		done <- result{msgs, err}
	}()
	waiting(t, s, 1)
	send(t, s, "q", body("late"))
	if r := <-done; r.err != nil || len(r.msgs) != 1 || r.msgs[0].Body != "late" {
		t.Fatalf("long poll = %s, %v; want late", bodies(r.msgs), r.err)
	}
}

func testLongPollCancel(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{}))
	ctx, cancel := context.WithCancel(ctxFor(t))
	errc := make(chan error, 1)
	go func() {
		_, err := s.Receive(ctx, "q", queue.ReceiveOptions{Wait: queue.MaxWait})
		errc <- err
	}()
	waiting(t, s, 1)
	cancel()
	// A receive that ignored ctx would answer no error after 20s.
	wantErr(t, "Receive(cancelled)", <-errc, context.Canceled)
	waiting(t, s, 0)
}

func testQueueWait(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{ReceiveWait: queue.MaxWait}))
	if got := receive(t, s, "q", queue.ReceiveOptions{}); len(got) != 0 {
		t.Fatalf("Receive = %s, want none", bodies(got))
	}
	done := make(chan []queue.Message, 1)
	go func() {
		got, err := s.Receive(ctxFor(t), "q", queue.ReceiveOptions{QueueWait: true})
		if err != nil {
			t.Errorf("Receive(QueueWait): %v", err)
		}
		done <- got
	}()
	waiting(t, s, 1)
	send(t, s, "q", body("late"))
	if got := <-done; len(got) != 1 || got[0].Body != "late" {
		t.Errorf("Receive(QueueWait) = %s, want late", bodies(got))
	}
}

func testDeadLetter(t *testing.T, open Open) {
	s := open(t,
		decl("work", queue.Attributes{VisibilityTimeout: long, DeadLetter: "dlq", MaxReceiveCount: 2}),
		decl("dlq", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	before := time.Now()
	sent := send(t, s, "work", queue.Outgoing{Body: "poison", Attributes: attrs()})
	after := time.Now()
	var first queue.Message
	for i := 1; i <= 2; i++ {
		m := await(t, s, "work", queue.ReceiveOptions{})
		if m.ID != sent[0].ID || m.ReceiveCount != i {
			t.Fatalf("receive %d = %+v, want poison with ReceiveCount %d", i, m, i)
		}
		if i == 1 {
			first = m
		}
		if err := s.ChangeVisibility(ctx, "work", m.ReceiptHandle, 0); err != nil {
			t.Fatal(err)
		}
	}
	none(t, s, "work", "received twice, the message moves to the dead-letter queue when it comes due")

	var dead []queue.Message
	testutil.Eventually(t, callTimeout, func() bool {
		var err error
		dead, err = s.Peek(ctx, "dlq", 10)
		return err == nil && len(dead) == 1
	}, "Peek(dlq) = %d messages, want 1", len(dead))
	d := dead[0]
	if d.ID != sent[0].ID || d.Body != "poison" || d.DeadLetterSource != "work" || !d.SentAt.Equal(first.SentAt) ||
		d.ReceiptHandle != "" || !reflect.DeepEqual(d.Attributes, attrs()) {
		t.Errorf("Peek(dlq) = %+v, want poison from work, sent at %v, with its attributes and no receipt handle", d, first.SentAt)
	}
	plausible(t, d, before, after)
	if in, err := s.Info(ctx, "dlq"); err != nil || !slices.Equal(in.Sources, []string{"work"}) {
		t.Errorf("Info(dlq) = %+v, %v; want Sources [work]", in, err)
	}
	if in, err := s.Info(ctx, "work"); err != nil || len(in.Sources) != 0 {
		t.Errorf("Info(work) = %+v, %v; want no Sources", in, err)
	}

	m := await(t, s, "dlq", queue.ReceiveOptions{})
	if m.ID != sent[0].ID || m.DeadLetterSource != "work" || m.ReceiveCount != 1 || !m.SentAt.Equal(first.SentAt) {
		t.Errorf("received from dlq %+v, want poison from work with ReceiveCount 1", m)
	}
	if err := s.ChangeVisibility(ctx, "dlq", m.ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}

	_, err := s.Redrive(ctx, "work")
	wantErr(t, "Redrive(work)", err, queue.ErrNoDeadLetter)
	_, err = s.Redrive(ctx, "nope")
	wantErr(t, "Redrive(nope)", err, queue.ErrNotFound)
	n, err := s.Redrive(ctx, "dlq")
	if err != nil || n != 1 {
		t.Fatalf("Redrive(dlq) = %d, %v; want 1", n, err)
	}
	back := await(t, s, "work", queue.ReceiveOptions{})
	if back.ID != sent[0].ID || back.ReceiveCount != 1 || back.DeadLetterSource != "" || !back.SentAt.Equal(first.SentAt) ||
		!reflect.DeepEqual(back.Attributes, attrs()) {
		t.Errorf("received after Redrive %+v, want poison with ReceiveCount 1, no DeadLetterSource, its SentAt and attributes", back)
	}
	counts(t, s, "dlq", 0, 0, 0)
	if got, err := s.Peek(ctx, "dlq", 10); err != nil || len(got) != 0 {
		t.Errorf("Peek(dlq) after Redrive = %s, %v; want none", bodies(got), err)
	}
}

func testLimits(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{MaxMessages: 2, MaxMessageBytes: 1024}), decl("batch", queue.Attributes{MaxMessages: 2}))
	ctx := ctxFor(t)
	big := queue.Outgoing{Body: strings.Repeat("x", 1000), Attributes: map[string]queue.MessageAttribute{"a": {DataType: "String", StringValue: strings.Repeat("y", 30)}}}
	for _, tc := range []struct {
		name string
		msgs []queue.Outgoing
	}{
		{"body over the size", []queue.Outgoing{body(strings.Repeat("x", 1025))}},
		{"attributes over the size", []queue.Outgoing{big}},
		{"one of a batch over the size", []queue.Outgoing{body("ok"), body(strings.Repeat("x", 1025))}},
		{"delay over 15m", []queue.Outgoing{{Body: "x", Delay: dur(queue.MaxDelay + time.Second)}}},
		{"negative delay", []queue.Outgoing{{Body: "x", Delay: dur(-time.Second)}}},
	} {
		_, err := s.Send(ctx, "q", tc.msgs)
		wantErr(t, "Send("+tc.name+")", err, queue.ErrInvalid)
	}
	if got, err := s.Peek(ctx, "q", 10); err != nil || len(got) != 0 {
		t.Errorf("Peek after refused sends = %s, %v; want none: a refused batch sends none", bodies(got), err)
	}
	send(t, s, "q", body(strings.Repeat("x", 1024)), body("b"))
	_, err := s.Send(ctx, "q", []queue.Outgoing{body("c")})
	wantErr(t, "Send(full)", err, queue.ErrFull)

	_, err = s.Send(ctx, "batch", []queue.Outgoing{body("a"), body("b"), body("c")})
	wantErr(t, "Send(batch past MaxMessages)", err, queue.ErrFull)
	if got, err := s.Peek(ctx, "batch", 10); err != nil || len(got) > 2 {
		t.Errorf("Peek(batch) = %s, %v; want at most MaxMessages", bodies(got), err)
	}

	for _, tc := range []struct {
		name string
		opts queue.ReceiveOptions
	}{
		{"Max 11", queue.ReceiveOptions{Max: 11}},
		{"Max -1", queue.ReceiveOptions{Max: -1}},
		{"Visibility 13h", queue.ReceiveOptions{Visibility: dur(13 * time.Hour)}},
		{"Visibility -1s", queue.ReceiveOptions{Visibility: dur(-time.Second)}},
		{"Wait 21s", queue.ReceiveOptions{Wait: queue.MaxWait + time.Second}},
		{"Wait -1s", queue.ReceiveOptions{Wait: -time.Second}},
	} {
		_, err := s.Receive(ctx, "q", tc.opts)
		wantErr(t, "Receive("+tc.name+")", err, queue.ErrInvalid)
	}
	if got := collect(t, s, "q", 2); len(got) != 2 {
		t.Errorf("the refused receives received %d messages", 2-len(got))
	}
}

func testNotFound(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{}))
	ctx := ctxFor(t)
	send(t, s, "q", body("a"))
	m := await(t, s, "q", queue.ReceiveOptions{})
	_, err := s.Send(ctx, "nope", []queue.Outgoing{body("a")})
	wantErr(t, "Send(nope)", err, queue.ErrNotFound)
	_, err = s.Receive(ctx, "nope", queue.ReceiveOptions{})
	wantErr(t, "Receive(nope)", err, queue.ErrNotFound)
	wantErr(t, "Delete(nope)", s.Delete(ctx, "nope", m.ReceiptHandle), queue.ErrNotFound)
	wantErr(t, "ChangeVisibility(nope)", s.ChangeVisibility(ctx, "nope", m.ReceiptHandle, 0), queue.ErrNotFound)
	_, err = s.Info(ctx, "nope")
	wantErr(t, "Info(nope)", err, queue.ErrNotFound)
	_, err = s.Peek(ctx, "nope", 10)
	wantErr(t, "Peek(nope)", err, queue.ErrNotFound)
	_, err = s.Redrive(ctx, "nope")
	wantErr(t, "Redrive(nope)", err, queue.ErrNotFound)
}

func testReceiptHandles(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: long}), decl("other", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	send(t, s, "q", body("a"))
	send(t, s, "other", body("b"))
	m := await(t, s, "q", queue.ReceiveOptions{})
	o := await(t, s, "other", queue.ReceiveOptions{})
	for _, h := range []string{"", "garbage", "Z2FyYmFnZQ", o.ReceiptHandle} {
		wantErr(t, "Delete(q, "+h+")", s.Delete(ctx, "q", h), queue.ErrReceiptHandle)
		wantErr(t, "ChangeVisibility(q, "+h+")", s.ChangeVisibility(ctx, "q", h, 0), queue.ErrReceiptHandle)
	}
	// None of them changed anything.
	none(t, s, "q", "in flight for an hour")
	if err := s.Delete(ctx, "q", m.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "other", o.ReceiptHandle); err != nil {
		t.Fatalf("Delete(other): %v", err)
	}
	counts(t, s, "q", 0, 0, 0)
	counts(t, s, "other", 0, 0, 0)
}

func testInfo(t *testing.T, open Open) {
	work := queue.Attributes{VisibilityTimeout: long, Delay: 0, Retention: time.Hour, MaxMessageBytes: 4096,
		DeadLetter: "dlq", MaxReceiveCount: 3, MaxMessages: 50, ReceiveWait: 2 * time.Second}
	before := time.Now()
	s := open(t, decl("work", work), decl("dlq", queue.Attributes{}))
	after := time.Now()
	ctx := ctxFor(t)
	send(t, s, "work", body("a"), body("b"), queue.Outgoing{Body: "c", Delay: dur(queue.MaxDelay)})
	await(t, s, "work", queue.ReceiveOptions{})
	counts(t, s, "work", 1, 1, 1)
	in, err := s.Info(ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "work" || in.Attributes != work.WithDefaults() {
		t.Errorf("Info(work) = %+v, want name work and attributes %+v", in, work.WithDefaults())
	}
	if in.CreatedAt.Before(before.Add(-time.Second)) || in.CreatedAt.After(after.Add(time.Second)) {
		t.Errorf("Info(work).CreatedAt = %v, want between %v and %v", in.CreatedAt, before, after)
	}
	dlq, err := s.Info(ctx, "dlq")
	if err != nil || dlq.Attributes != (queue.Attributes{}).WithDefaults() || !slices.Equal(dlq.Sources, []string{"work"}) {
		t.Errorf("Info(dlq) = %+v, %v; want default attributes and Sources [work]", dlq, err)
	}
}

func testQueues(t *testing.T, open Open) {
	s := open(t, decl("c", queue.Attributes{}), decl("a-1", queue.Attributes{}), decl("B_2", queue.Attributes{}), decl("a", queue.Attributes{}))
	got, err := s.Queues(ctxFor(t))
	if want := []string{"B_2", "a", "a-1", "c"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Queues = %q, %v; want %q", got, err, want)
	}
}

func testDeclare(t *testing.T, open Open) {
	s := open(t, decl("keep", queue.Attributes{VisibilityTimeout: long}), decl("drop", queue.Attributes{}))
	ctx := ctxFor(t)
	sent := send(t, s, "keep", body("a"))
	first := await(t, s, "keep", queue.ReceiveOptions{})

	// A new declaration: keep takes a short visibility timeout and keeps
	// its message, in flight; drop is no longer served.
	keep := decl("keep", queue.Attributes{VisibilityTimeout: short})
	if err := s.Declare(ctx, []queue.Declaration{keep}); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	if got, err := s.Queues(ctx); err != nil || !slices.Equal(got, []string{"keep"}) {
		t.Errorf("Queues = %q, %v; want [keep]", got, err)
	}
	_, err := s.Info(ctx, "drop")
	wantErr(t, "Info(drop)", err, queue.ErrNotFound)
	_, err = s.Send(ctx, "drop", []queue.Outgoing{body("x")})
	wantErr(t, "Send(drop)", err, queue.ErrNotFound)
	if in, err := s.Info(ctx, "keep"); err != nil || in.Attributes.VisibilityTimeout != short {
		t.Errorf("Info(keep) = %+v, %v; want VisibilityTimeout %v", in, err, short)
	}
	if err := s.ChangeVisibility(ctx, "keep", first.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility of a kept message: %v", err)
	}
	start := time.Now()
	second := await(t, s, "keep", queue.ReceiveOptions{})
	third := await(t, s, "keep", queue.ReceiveOptions{})
	atLeast(t, "received again under the new visibility timeout", time.Since(start), short)
	if second.ID != sent[0].ID || second.ReceiveCount != 2 || third.ID != sent[0].ID || third.ReceiveCount != 3 {
		t.Errorf("received %+v then %+v, want a with ReceiveCount 2 then 3", second, third)
	}

	// The same declaration again, from several callers at once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Declare(ctx, []queue.Declaration{keep}); err != nil {
				t.Errorf("Declare(again): %v", err)
			}
		}()
	}
	wg.Wait()
	if m := await(t, s, "keep", queue.ReceiveOptions{}); m.ID != sent[0].ID {
		t.Errorf("received %+v after declaring again, want a", m)
	}

	// A refused declaration changes nothing.
	bad := []queue.Declaration{decl("keep", queue.Attributes{DeadLetter: "missing", MaxReceiveCount: 1}), decl("new", queue.Attributes{})}
	wantErr(t, "Declare(missing dead-letter queue)", s.Declare(ctx, bad), queue.ErrInvalid)
	if got, err := s.Queues(ctx); err != nil || !slices.Equal(got, []string{"keep"}) {
		t.Errorf("Queues after a refused Declare = %q, %v; want [keep]", got, err)
	}
	if in, err := s.Info(ctx, "keep"); err != nil || in.Attributes.DeadLetter != "" {
		t.Errorf("Info(keep) after a refused Declare = %+v, %v; want no dead-letter queue", in, err)
	}

	// A queue declared again is served again.
	if err := s.Declare(ctx, []queue.Declaration{keep, decl("drop", queue.Attributes{})}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, "drop"); err != nil {
		t.Errorf("Info(drop) declared again: %v", err)
	}
}

func testPeek(t *testing.T, open Open) {
	s := open(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	var sent []queue.Sent
	before := time.Now()
	for _, b := range []string{"a", "b", "c"} {
		sent = append(sent, send(t, s, "q", queue.Outgoing{Body: b, Attributes: attrs()})...)
	}
	after := time.Now()
	got, err := s.Peek(ctx, "q", 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("Peek = %s, %v; want a b c", bodies(got), err)
	}
	for i, m := range got {
		if m.ID != sent[i].ID || m.ReceiptHandle != "" || !reflect.DeepEqual(m.Attributes, attrs()) {
			t.Errorf("Peek[%d] = %+v, want %s with its attributes and no receipt handle", i, m, sent[i].ID)
		}
		plausible(t, m, before, after)
	}
	if got, err := s.Peek(ctx, "q", 2); err != nil || bodies(got) != "[a b]" {
		t.Errorf("Peek(2) = %s, %v; want [a b]", bodies(got), err)
	}
	// Peeking received nothing.
	for _, m := range collect(t, s, "q", 3) {
		if m.ReceiveCount != 1 {
			t.Errorf("received %+v after Peek, want ReceiveCount 1", m)
		}
	}
}
