package queuetest

import (
	"cmp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// RunShared checks that two stores on one engine, as two nodes of a
// cluster, serve the same queues: what one node sends the other receives,
// a receipt handle of one is good on the other, a long poll on one is
// woken by the other, and a node with an older declaration leaves the
// messages of a queue it no longer declares to the nodes that do.
func RunShared(t *testing.T, pair OpenPair) {
	t.Run("SendHereReceiveThere", func(t *testing.T) { t.Parallel(); testSendHereReceiveThere(t, pair) })
	t.Run("ChangeVisibilityThere", func(t *testing.T) { t.Parallel(); testChangeVisibilityThere(t, pair) })
	t.Run("LongPollWokenThere", func(t *testing.T) { t.Parallel(); testLongPollWokenThere(t, pair) })
	t.Run("DelayThere", func(t *testing.T) { t.Parallel(); testDelayThere(t, pair) })
	t.Run("DeadLetterThere", func(t *testing.T) { t.Parallel(); testDeadLetterThere(t, pair) })
	t.Run("InfoThere", func(t *testing.T) { t.Parallel(); testInfoThere(t, pair) })
	t.Run("DeclareTogether", func(t *testing.T) { t.Parallel(); testDeclareTogether(t, pair) })
	t.Run("OlderDeclarationKeepsMessages", func(t *testing.T) { t.Parallel(); testOlderDeclaration(t, pair) })
}

func testSendHereReceiveThere(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{VisibilityTimeout: short}))
	ctx := ctxFor(t)
	sent := send(t, a, "q", queue.Outgoing{Body: "hello", Attributes: attrs()})
	m := await(t, b, "q", queue.ReceiveOptions{})
	if m.ID != sent[0].ID || m.Body != "hello" || m.ReceiveCount != 1 {
		t.Fatalf("b received %+v, want hello with ReceiveCount 1", m)
	}
	again := await(t, a, "q", queue.ReceiveOptions{})
	if again.ID != m.ID || again.ReceiveCount != 2 {
		t.Fatalf("a received %+v after b's timeout, want hello with ReceiveCount 2", again)
	}
	if err := b.Delete(ctx, "q", again.ReceiptHandle); err != nil {
		t.Fatalf("b deleting a's receive: %v", err)
	}
	wantErr(t, "a.ChangeVisibility(deleted)", a.ChangeVisibility(ctx, "q", again.ReceiptHandle, 0), queue.ErrNotInFlight)
	none(t, a, "q", "b deleted it")
	none(t, b, "q", "b deleted it")
}

func testChangeVisibilityThere(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	send(t, a, "q", body("a"))
	m := await(t, a, "q", queue.ReceiveOptions{})
	if err := b.ChangeVisibility(ctxFor(t), "q", m.ReceiptHandle, 0); err != nil {
		t.Fatalf("b changing a's receive: %v", err)
	}
	if again := await(t, b, "q", queue.ReceiveOptions{}); again.ID != m.ID || again.ReceiveCount != 2 {
		t.Errorf("b received %+v, want a with ReceiveCount 2", again)
	}
}

func testLongPollWokenThere(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{}))
	type result struct {
		msgs []queue.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := b.Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: queue.MaxWait})
		done <- result{msgs, err}
	}()
	waiting(t, b, 1)
	send(t, a, "q", body("late"))
	if r := <-done; r.err != nil || len(r.msgs) != 1 || r.msgs[0].Body != "late" {
		t.Errorf("b's long poll = %s, %v; want late", bodies(r.msgs), r.err)
	}
}

func testDelayThere(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{Delay: short, VisibilityTimeout: long}))
	start := time.Now()
	send(t, a, "q", body("x"), queue.Outgoing{Body: "y", Delay: dur(2 * short)})
	got := []queue.Message{await(t, b, "q", queue.ReceiveOptions{}), await(t, b, "q", queue.ReceiveOptions{})}
	atLeast(t, "b received both delayed messages", time.Since(start), 2*short)
	slices.SortFunc(got, func(x, y queue.Message) int { return cmp.Compare(x.Body, y.Body) })
	if bodies(got) != "[x y]" || got[0].ReceiveCount != 1 || got[1].ReceiveCount != 1 {
		t.Errorf("b received %+v, want x and y, each with ReceiveCount 1", got)
	}
}

func testDeadLetterThere(t *testing.T, pair OpenPair) {
	a, b := pair(t,
		decl("work", queue.Attributes{VisibilityTimeout: long, DeadLetter: "dlq", MaxReceiveCount: 1}),
		decl("dlq", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	sent := send(t, a, "work", body("poison"))
	m := await(t, a, "work", queue.ReceiveOptions{})
	if err := a.ChangeVisibility(ctx, "work", m.ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	none(t, b, "work", "received once, the message moves to the dead-letter queue")
	var dead []queue.Message
	testutil.Eventually(t, callTimeout, func() bool {
		var err error
		dead, err = a.Peek(ctx, "dlq", 10)
		return err == nil && len(dead) == 1
	}, "a.Peek(dlq) = %d messages, want 1", len(dead))
	if dead[0].ID != sent[0].ID || dead[0].DeadLetterSource != "work" {
		t.Errorf("a.Peek(dlq) = %+v, want poison from work", dead[0])
	}
	if n, err := b.Redrive(ctx, "dlq"); err != nil || n != 1 {
		t.Fatalf("b.Redrive(dlq) = %d, %v; want 1", n, err)
	}
	if back := await(t, a, "work", queue.ReceiveOptions{}); back.ID != sent[0].ID || back.ReceiveCount != 1 {
		t.Errorf("a received after b's Redrive %+v, want poison with ReceiveCount 1", back)
	}
}

func testInfoThere(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	send(t, a, "q", body("a"), body("b"), queue.Outgoing{Body: "c", Delay: dur(queue.MaxDelay)})
	await(t, b, "q", queue.ReceiveOptions{})
	counts(t, a, "q", 1, 1, 1)
	counts(t, b, "q", 1, 1, 1)
}

func testDeclareTogether(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	sent := send(t, a, "q", body("a"))
	decls := []queue.Declaration{
		decl("q", queue.Attributes{VisibilityTimeout: short, DeadLetter: "dlq", MaxReceiveCount: 5}),
		decl("dlq", queue.Attributes{}),
		decl("new", queue.Attributes{Delay: short}),
	}
	var wg sync.WaitGroup
	for _, s := range []queue.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Declare(ctx, decls); err != nil {
				t.Errorf("Declare: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, s := range []queue.Store{a, b} {
		if got, err := s.Queues(ctx); err != nil || !slices.Equal(got, []string{"dlq", "new", "q"}) {
			t.Errorf("Queues = %q, %v; want [dlq new q]", got, err)
		}
		if in, err := s.Info(ctx, "q"); err != nil || in.Attributes != decls[0].Attributes.WithDefaults() {
			t.Errorf("Info(q) = %+v, %v; want attributes %+v", in, err, decls[0].Attributes.WithDefaults())
		}
	}
	if m := await(t, b, "q", queue.ReceiveOptions{}); m.ID != sent[0].ID {
		t.Errorf("b received %+v, want a: declaring keeps the messages", m)
	}
	send(t, b, "new", body("n"))
	if m := await(t, a, "new", queue.ReceiveOptions{}); m.Body != "n" {
		t.Errorf("a received %+v from new, want n", m)
	}
}

// testOlderDeclaration: a node that declares fewer queues (an older
// configuration, during a rolling deploy) stops serving the others but
// leaves their messages to the nodes that still declare them.
func testOlderDeclaration(t *testing.T, pair OpenPair) {
	a, b := pair(t, decl("q", queue.Attributes{}), decl("newer", queue.Attributes{VisibilityTimeout: long}))
	ctx := ctxFor(t)
	sent := send(t, a, "newer", body("keep me"))
	if err := b.Declare(ctx, []queue.Declaration{decl("q", queue.Attributes{})}); err != nil {
		t.Fatalf("b.Declare(older): %v", err)
	}
	_, err := b.Info(ctx, "newer")
	wantErr(t, "b.Info(newer)", err, queue.ErrNotFound)
	if m := await(t, a, "newer", queue.ReceiveOptions{}); m.ID != sent[0].ID {
		t.Errorf("a received %+v, want keep me", m)
	}
	if got, err := a.Queues(ctx); err != nil || !slices.Equal(got, []string{"newer", "q"}) {
		t.Errorf("a.Queues = %q, %v; want [newer q]", got, err)
	}
}
