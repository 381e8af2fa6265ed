package natsqueue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/natsqueue"
	"github.com/switchboard-gateway/switchboard/internal/queue/queuetest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// engines are testutil.NATSEngines: a nats-server process and the
// embedded server.
var engines = testutil.NATSEngines

func connect(t *testing.T, url string) jetstream.JetStream { return testutil.JetStream(t, url) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open returns a store on js that serves decls, closed at the end of t.
func open(t *testing.T, js jetstream.JetStream, o natsqueue.Options, decls ...queue.Declaration) *natsqueue.Store {
	t.Helper()
	s, err := natsqueue.New(ctxFor(t), js, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Declare(ctxFor(t), decls); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	return s
}

// TestConformance runs the store suite on each engine, and the two-node
// suite with two stores on two connections to one server; each subtest is
// isolated by its own prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	var seq atomic.Int64
	prefix := func() string { return fmt.Sprintf("conf%d", seq.Add(1)) }
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			js := connect(t, url)
			t.Run("Run", func(t *testing.T) {
				t.Parallel()
				queuetest.Run(t, func(t *testing.T, decls ...queue.Declaration) queue.Store {
					return open(t, js, natsqueue.Options{Prefix: prefix()}, decls...)
				})
			})
			t.Run("RunShared", func(t *testing.T) {
				t.Parallel()
				queuetest.RunShared(t, func(t *testing.T, decls ...queue.Declaration) (queue.Store, queue.Store) {
					o := natsqueue.Options{Prefix: prefix()}
					return open(t, connect(t, url), o, decls...), open(t, connect(t, url), o, decls...)
				})
			})
		})
	}
}

// TestNakWithDelay: a visibility timeout set after the receive (by the
// receive's own, or by ChangeVisibility) is a negative acknowledgement
// with a delay; the server keeps the message pending, delivers it again
// no sooner than the delay, and a later Delete still removes it from the
// stream.
func TestNakWithDelay(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			js := connect(t, start(t))
			s := open(t, js, natsqueue.Options{Prefix: "nak"}, queue.Declaration{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: time.Hour}})
			ctx := ctxFor(t)
			stream, err := js.Stream(ctx, "nak_queue_q")
			if err != nil {
				t.Fatal(err)
			}
			stored := func() uint64 {
				info, err := stream.Info(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return info.State.Msgs
			}
			hour, short := time.Hour, 300*time.Millisecond

			// Delivered again after the receive's own timeout, no sooner.
			send(t, s, "a")
			begin := time.Now()
			first := receive(t, s, queue.ReceiveOptions{Visibility: &short})
			again := receive(t, s, queue.ReceiveOptions{Wait: queue.MaxWait})
			if d := time.Since(begin); d < short {
				t.Errorf("delivered again after %v, want no sooner than %v", d, short)
			}
			if again.ID != first.ID || again.ReceiveCount != 2 {
				t.Fatalf("delivered again %+v, want a with ReceiveCount 2", again)
			}
			// Held for an hour by ChangeVisibility, then deleted.
			if err := s.ChangeVisibility(ctx, "q", again.ReceiptHandle, hour); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "q", again.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
			if n := stored(); n != 0 {
				t.Errorf("stream holds %d messages after a Delete that followed a delayed NAK, want 0", n)
			}
			// Held for an hour by the receive's own timeout, then deleted.
			send(t, s, "b")
			b := receive(t, s, queue.ReceiveOptions{Visibility: &hour})
			if err := s.Delete(ctx, "q", b.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
			if n := stored(); n != 0 {
				t.Errorf("stream holds %d messages after a Delete that followed a delayed NAK, want 0", n)
			}
			if err := s.ChangeVisibility(ctx, "q", b.ReceiptHandle, 0); !errors.Is(err, queue.ErrNotInFlight) {
				t.Errorf("ChangeVisibility(deleted) = %v, want ErrNotInFlight", err)
			}
		})
	}
}

func send(t *testing.T, s queue.Store, bodies ...string) {
	t.Helper()
	var msgs []queue.Outgoing
	for _, b := range bodies {
		msgs = append(msgs, queue.Outgoing{Body: b})
	}
	if _, err := s.Send(ctxFor(t), "q", msgs); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// receive receives one message of q, failing the test without one.
func receive(t *testing.T, s queue.Store, opts queue.ReceiveOptions) queue.Message {
	t.Helper()
	if opts.Wait == 0 {
		// A long poll: a short one may miss a message just sent, as SQS's
		// may, when the consumer is handed the stored message a moment
		// after the publish was acknowledged (seen under load).
		opts.Wait = queue.MaxWait
	}
	got, err := s.Receive(ctxFor(t), "q", opts)
	if err != nil || len(got) != 1 {
		t.Fatalf("Receive(%+v) = %+v, %v; want one message", opts, got, err)
	}
	return got[0]
}

// TestNothingUntilAQueue: a store that serves no queue makes no stream
// and no bucket in the engine (a cluster that declares no queue waits for
// no replicated bucket as it starts); the first Declare of a queue makes
// the bucket of the receipt key.
func TestNothingUntilAQueue(t *testing.T) {
	t.Parallel()
	js := connect(t, engines["embedded"](t))
	s := open(t, js, natsqueue.Options{Prefix: "lazy"})
	if err := s.Declare(ctxFor(t), nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range js.StreamNames(ctxFor(t)).Name() {
		names = append(names, n)
	}
	if len(names) != 0 {
		t.Fatalf("streams before a queue: %v, want none", names)
	}
	if err := s.Declare(ctxFor(t), []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctxFor(t), "lazy_queues"); err != nil {
		t.Fatalf("bucket after the first queue: %v", err)
	}
	send(t, s, "one")
	m := receive(t, s, queue.ReceiveOptions{})
	if err := s.Delete(ctxFor(t), "q", m.ReceiptHandle); err != nil {
		t.Fatalf("Delete with the handle Receive gave: %v", err)
	}
}

// TestDeadLetterLeft: Options.Left is told of each message the store
// moves to a dead-letter queue.
func TestDeadLetterLeft(t *testing.T) {
	t.Parallel()
	js := connect(t, engines["embedded"](t))
	left := make(chan string, 10)
	s := open(t, js, natsqueue.Options{Prefix: "left", Left: func(q, reason string) { left <- q + " " + reason }},
		queue.Declaration{Name: "q", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}},
		queue.Declaration{Name: "dlq"})
	send(t, s, "poison")
	m := receive(t, s, queue.ReceiveOptions{})
	if err := s.ChangeVisibility(ctxFor(t), "q", m.ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: time.Second}); err != nil || len(got) != 0 {
		t.Fatalf("Receive = %+v, %v; want none: the message moved", got, err)
	}
	select {
	case got := <-left:
		if got != "q dead_letter" {
			t.Errorf("Left was told %q, want q dead_letter", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Left was not told of the dead letter")
	}
}

// TestMaxPayload: a message the NATS server cannot carry (a nats-server's
// default max_payload is 1 MB) is refused as invalid, before anything is
// sent; the embedded server carries a queue's largest message, 1 MiB.
func TestMaxPayload(t *testing.T) {
	t.Parallel()
	decl := queue.Declaration{Name: "q", Attributes: queue.Attributes{MaxMessageBytes: queue.MaxMessageBytes}}
	largest := []queue.Outgoing{{Body: strings.Repeat("x", queue.MaxMessageBytes)}}
	s := open(t, connect(t, engines["process"](t)), natsqueue.Options{}, decl)
	_, err := s.Send(ctxFor(t), "q", largest)
	if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "max_payload") {
		t.Errorf("Send(1 MiB) to a nats-server = %v, want ErrInvalid naming max_payload", err)
	}
	if _, err := s.Send(ctxFor(t), "q", []queue.Outgoing{{Body: strings.Repeat("x", 900<<10)}}); err != nil {
		t.Errorf("Send(900 KiB) = %v", err)
	}
	e := open(t, connect(t, engines["embedded"](t)), natsqueue.Options{}, decl)
	if _, err := e.Send(ctxFor(t), "q", largest); err != nil {
		t.Errorf("Send(1 MiB) to the embedded server = %v", err)
	}
	got, err := e.Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: 5 * time.Second})
	if err != nil || len(got) != 1 || len(got[0].Body) != queue.MaxMessageBytes {
		t.Errorf("Receive of the 1 MiB message: %d messages, %v", len(got), err)
	}
}

// TestSurvivesRestart: a queue's messages, delayed ones included, outlive
// a restart of the engine: the embedded server shut down and started again
// on the same store directory, and a nats-server process killed and
// started again. A clean shutdown keeps the receive counts too; a killed
// server may forget its consumers' latest state, so a message received
// just before comes back after its visibility timeout at the latest.
func TestSurvivesRestart(t *testing.T) {
	t.Parallel()
	type engine struct {
		start func(t *testing.T) (url string, restart func() string)
		clean bool // the restart shuts the server down cleanly
	}
	restarts := map[string]engine{
		"embedded": {clean: true, start: func(t *testing.T) (string, func() string) {
			dir := t.TempDir()
			start := func() *natsembed.Server {
				s, err := natsembed.Start(natsembed.Options{StoreDir: dir})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				return s
			}
			s := start()
			return s.ClientURL(), func() string {
				s.Close()
				s = start()
				return s.ClientURL()
			}
		}},
		"process": {clean: false, start: func(t *testing.T) (string, func() string) {
			p := testutil.StartNATS(t)
			return p.URL, func() string {
				p.Stop() // SIGKILL
				p.Start()
				return p.URL
			}
		}},
	}
	for name, e := range restarts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, restart := e.start(t)
			decls := []queue.Declaration{{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: 2 * time.Second}}}
			js := connect(t, url)
			s := open(t, js, natsqueue.Options{}, decls...)
			attrs := map[string]queue.MessageAttribute{"k": {DataType: "String", StringValue: "v"}}
			delay := 500 * time.Millisecond
			sent, err := s.Send(ctxFor(t), "q", []queue.Outgoing{
				{Body: "kept", Attributes: attrs},
				{Body: "received once"},
				{Body: "delayed", Delay: &delay},
			})
			if err != nil {
				t.Fatal(err)
			}
			// kept and then "received once" are received and handed back.
			first := receive(t, s, queue.ReceiveOptions{Wait: time.Second, Visibility: &delay})
			second := receive(t, s, queue.ReceiveOptions{Wait: time.Second, Visibility: &delay})
			if first.ID != sent[0].ID || second.ID != sent[1].ID {
				t.Fatalf("received %s then %s, want kept then received once", first.Body, second.Body)
			}
			_ = s.Close()
			js.Conn().Close()

			s = open(t, connect(t, restart()), natsqueue.Options{}, decls...)
			got := map[string]queue.Message{} // the first receive of each after the restart
			for len(got) < 3 {
				m := receive(t, s, queue.ReceiveOptions{Wait: queue.MaxWait})
				if _, ok := got[m.ID]; !ok {
					got[m.ID] = m
				}
			}
			if m := got[sent[0].ID]; m.Body != "kept" || m.Attributes["k"].StringValue != "v" || !m.SentAt.Equal(first.SentAt) {
				t.Errorf("after the restart %+v, want kept with its attributes, sent at %v", m, first.SentAt)
			}
			if m := got[sent[2].ID]; m.Body != "delayed" || m.ReceiveCount != 1 {
				t.Errorf("after the restart %+v, want delayed with ReceiveCount 1", m)
			}
			for _, i := range []int{0, 1} {
				if m := got[sent[i].ID]; e.clean && m.ReceiveCount != 2 {
					t.Errorf("after a clean restart %s has ReceiveCount %d, want 2", m.Body, m.ReceiveCount)
				}
			}
		})
	}
}

// TestLongPollEnds: a long poll long enough for the client to ask the
// server for heartbeats ends with no message and no error, on the older
// server (the module's own is checked by the suite's shorter waits).
func TestLongPollEnds(t *testing.T) {
	t.Parallel()
	s := open(t, connect(t, engines["process"](t)), natsqueue.Options{}, queue.Declaration{Name: "q"})
	wait := 11 * time.Second // the client asks for heartbeats from 10s on
	begin := time.Now()
	got, err := s.Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: wait})
	if err != nil || len(got) != 0 {
		t.Errorf("Receive(Wait %v) = %+v, %v; want none and no error", wait, got, err)
	}
	if d := time.Since(begin); d < wait {
		t.Errorf("Receive(Wait %v) returned after %v, want no sooner", wait, d)
	}
}

// TestSendLostAck: a send whose acknowledgement never comes (its stream
// gone, and a subscriber on its subject that never answers) fails after
// CallTimeout twice, however long its context, with an error a caller
// retries; the second publish carries the first one's message ID, so a
// stream that stored the first stores it once.
func TestSendLostAck(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	js := connect(t, url)
	s := open(t, js, natsqueue.Options{Prefix: "lost", CallTimeout: 200 * time.Millisecond}, queue.Declaration{Name: "q"})
	if err := js.DeleteStream(ctxFor(t), "lost_queue_q"); err != nil {
		t.Fatal(err)
	}
	silent := connect(t, url).Conn()
	got := make(chan *nats.Msg, 10)
	if _, err := silent.ChanSubscribe("lost.queue.q", got); err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour) // an EventBridge target's
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "a"}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, queue.ErrInvalid) || errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Send without an acknowledgement = %v, want an error wrapping context.DeadlineExceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Send still waits for an acknowledgement that will not come")
	}
	var ids []string
	for len(ids) < 2 {
		select {
		case m := <-got:
			ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		case <-time.After(10 * time.Second):
			t.Fatalf("the subscriber saw %d publishes, want 2", len(ids))
		}
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("published with message IDs %q, want the same one twice", ids)
	}
}

// TestManyLongPolls: more receives of a queue wait at once than the
// server lets a consumer hold by default (512): on a queue this store
// made, and on one whose consumer was made with that default (which the
// server does not let change), even from two stores together, no receive
// fails and every message is received once. A store that lets only a few
// long polls wait at the server makes the others wait their turn.
func TestManyLongPolls(t *testing.T) {
	t.Parallel()
	const many = 600
	tests := []struct {
		name      string
		premade   bool // the consumer made beforehand, with the server's default MaxWaiting
		longPolls int
		stores    int
	}{
		{"made here", false, 0, 1},
		{"made with the default", true, 0, 1},
		{"made with the default, two stores", true, 0, 2},
		{"a few at the server", false, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := engines["embedded"](t)
			js := connect(t, url)
			if tt.premade {
				ctx := ctxFor(t)
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "many_queue_q", Subjects: []string{"many.queue.q"},
					Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateConsumer(ctx, "many_queue_q", jetstream.ConsumerConfig{Durable: "receivers", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
					t.Fatal(err)
				}
			}
			var stores []*natsqueue.Store
			for range tt.stores {
				stores = append(stores, open(t, connect(t, url), natsqueue.Options{Prefix: "many", LongPolls: tt.longPolls}, queue.Declaration{Name: "q"}))
			}
			s := stores[0]
			type result struct {
				msgs []queue.Message
				err  error
			}
			results := make(chan result, many)
			for i := range many {
				go func() {
					// Under 10s, a pull the server refuses is answered (past
					// that it is dropped silently and asked again later). A
					// receive that ends empty, on a machine too slow to have
					// all of them waiting by then, waits again.
					for {
						msgs, err := stores[i%len(stores)].Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: 8 * time.Second})
						if err != nil || len(msgs) > 0 {
							results <- result{msgs, err}
							return
						}
					}
				}()
			}
			// Most of them wait before the messages are sent. (All at once is
			// not a state to wait for: past a server's MaxWaiting, refused
			// pulls are asked again after a pause, out of the count meanwhile.)
			testutil.Eventually(t, 60*time.Second, func() bool {
				n := 0
				for _, s := range stores {
					n += s.WaitersForTest()
				}
				return n >= many*3/4
			}, "%d receives waiting", many*3/4)
			for i := 0; i < many; i += queue.MaxBatch {
				var batch []queue.Outgoing
				for j := range queue.MaxBatch {
					batch = append(batch, queue.Outgoing{Body: fmt.Sprint(i + j)})
				}
				if _, err := s.Send(ctxFor(t), "q", batch); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			take := func(msgs []queue.Message) {
				for _, m := range msgs {
					if seen[m.Body] {
						t.Errorf("message %s received twice", m.Body)
					}
					seen[m.Body] = true
				}
			}
			for range many {
				r := <-results
				if r.err != nil {
					t.Errorf("Receive = %v", r.err)
				}
				take(r.msgs)
			}
			if len(seen) != many {
				t.Errorf("%d different messages received, want %d", len(seen), many)
			}
		})
	}
}

// TestDuplicateWindow: a dead-letter queue's stream remembers the message
// IDs published to it for its sources' longest visibility timeout and a
// minute, so that a move made again after an acknowledgement that failed
// stores one copy; at least the 2 minutes every queue has, at most an hour
// and the queue's retention.
func TestDuplicateWindow(t *testing.T) {
	t.Parallel()
	js := connect(t, engines["embedded"](t))
	dl := func(vis time.Duration, dlq string) queue.Attributes {
		return queue.Attributes{VisibilityTimeout: vis, DeadLetter: dlq, MaxReceiveCount: 1}
	}
	open(t, js, natsqueue.Options{Prefix: "dup"},
		queue.Declaration{Name: "short", Attributes: dl(0, "dlq")}, // 30s
		queue.Declaration{Name: "long", Attributes: dl(10*time.Minute, "dlq")},
		queue.Declaration{Name: "dlq"},
		queue.Declaration{Name: "slow", Attributes: dl(queue.MaxVisibilityTimeout, "capped")},
		queue.Declaration{Name: "capped"},
		queue.Declaration{Name: "to-kept", Attributes: dl(10*time.Minute, "kept")},
		queue.Declaration{Name: "kept", Attributes: queue.Attributes{Retention: 5 * time.Minute}})
	for stream, want := range map[string]time.Duration{
		"dup_queue_short":  2 * time.Minute,
		"dup_queue_dlq":    11 * time.Minute,
		"dup_qdelay_dlq":   2 * time.Minute,
		"dup_queue_capped": time.Hour,
		"dup_queue_kept":   5 * time.Minute,
	} {
		st, err := js.Stream(ctxFor(t), stream)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Duplicates; got != want {
			t.Errorf("%s: duplicate window %v, want %v", stream, got, want)
		}
	}
}
