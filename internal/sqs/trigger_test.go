package sqs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/memqueue"
	"github.com/switchboard-gateway/switchboard/internal/sqs"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// invocations records the events a trigger's function received.
type invocations struct {
	mu     sync.Mutex
	events []sqs.Event
}

func (iv *invocations) add(event []byte) sqs.Event {
	var ev sqs.Event
	_ = json.Unmarshal(event, &ev)
	iv.mu.Lock()
	iv.events = append(iv.events, ev)
	iv.mu.Unlock()
	return ev
}

func (iv *invocations) all() []sqs.Event {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return slices.Clone(iv.events)
}

func bodies(ev sqs.Event) []string {
	var out []string
	for _, r := range ev.Records {
		out = append(out, r.Body)
	}
	return out
}

func newQueue(t *testing.T, vis time.Duration, bodies ...string) *memqueue.Store {
	t.Helper()
	s := memqueue.New(memqueue.Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q", Attributes: queue.Attributes{VisibilityTimeout: vis}}}); err != nil {
		t.Fatal(err)
	}
	var msgs []queue.Outgoing
	for _, b := range bodies {
		msgs = append(msgs, queue.Outgoing{Body: b})
	}
	if _, err := s.Send(context.Background(), "q", msgs); err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T, opts sqs.TriggerOptions) {
	t.Helper()
	tr, err := sqs.StartTrigger(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
}

func left(t *testing.T, s *memqueue.Store) queue.Info {
	in, err := s.Info(context.Background(), "q")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestTriggerEvent: the function gets the messages in SQS's event shape;
// a batch it took is deleted.
func TestTriggerEvent(t *testing.T) {
	t.Parallel()
	s := newQueue(t, time.Minute, "a", "b")
	var iv invocations
	start(t, sqs.TriggerOptions{Store: s, Queue: "q", Window: time.Second, Region: "eu-west-1",
		Invoke: func(_ context.Context, event []byte) ([]byte, error) { iv.add(event); return nil, nil }})
	testutil.Eventually(t, 10*time.Second, func() bool { in := left(t, s); return in.Visible+in.InFlight == 0 }, "the messages were not deleted")
	evs := iv.all()
	if len(evs) != 1 || !slices.Equal(bodies(evs[0]), []string{"a", "b"}) {
		t.Fatalf("events = %+v, want one with a and b", evs)
	}
	r := evs[0].Records[0]
	if r.EventSource != "aws:sqs" || r.EventSourceARN != "arn:aws:sqs:eu-west-1:123456789012:q" || r.AWSRegion != "eu-west-1" ||
		r.Attributes["ApproximateReceiveCount"] != "1" || r.MD5OfBody != "0cc175b9c0f1b6a831c399e269772661" || r.ReceiptHandle == "" {
		t.Errorf("record = %+v, want SQS's fields", r)
	}
}

// TestTriggerFunctionErrorFailsTheBatch: a function error leaves every
// message of the batch to come back, with its receive count raised.
func TestTriggerFunctionErrorFailsTheBatch(t *testing.T) {
	t.Parallel()
	s := newQueue(t, 100*time.Millisecond, "a", "b")
	var iv invocations
	var calls atomic.Int32
	m := metrics.NewQueues(prometheus.NewRegistry(), func() []metrics.QueueCounts { return nil })
	start(t, sqs.TriggerOptions{Store: s, Queue: "q", Function: "f", MaxConcurrency: 1, Metrics: m,
		Invoke: func(_ context.Context, event []byte) ([]byte, error) {
			iv.add(event)
			if calls.Add(1) == 1 {
				return nil, errors.New("boom")
			}
			return nil, nil
		}})
	testutil.Eventually(t, 10*time.Second, func() bool { in := left(t, s); return in.Visible+in.InFlight == 0 }, "the messages were not deleted")
	var failed dto.Metric
	if err := m.Batches.WithLabelValues("q", "f", metrics.BatchFailed).Write(&failed); err != nil || failed.GetCounter().GetValue() != 1 {
		t.Errorf("failed batches counted %v (%v), want 1", failed.GetCounter().GetValue(), err)
	}
	evs := iv.all()
	var again []string
	for _, ev := range evs[1:] {
		for _, r := range ev.Records {
			again = append(again, r.Body)
			if r.Attributes["ApproximateReceiveCount"] != "2" {
				t.Errorf("redelivered %s with ApproximateReceiveCount %s, want 2", r.Body, r.Attributes["ApproximateReceiveCount"])
			}
		}
	}
	slices.Sort(again)
	if !slices.Equal(bodies(evs[0]), []string{"a", "b"}) || !slices.Equal(again, []string{"a", "b"}) {
		t.Errorf("events = %v, want a and b, then both again", evs)
	}
}

// TestTriggerBatchItemFailures: only the reported items come back; a
// report naming no message of the batch fails it whole.
func TestTriggerBatchItemFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		reply func(ev sqs.Event) string
		again []string
	}{
		{"reported item", func(ev sqs.Event) string {
			for _, r := range ev.Records {
				if r.Body == "bad" {
					return `{"batchItemFailures":[{"itemIdentifier":"` + r.MessageID + `"}]}`
				}
			}
			return `{"batchItemFailures":[]}`
		}, []string{"bad"}},
		{"unknown identifier", func(sqs.Event) string { return `{"batchItemFailures":[{"itemIdentifier":"nope"}]}` }, []string{"bad", "good"}},
		{"null result", func(sqs.Event) string { return `null` }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newQueue(t, 100*time.Millisecond, "good", "bad")
			var iv invocations
			var calls atomic.Int32
			start(t, sqs.TriggerOptions{Store: s, Queue: "q", MaxConcurrency: 1, ReportBatchItemFailures: true,
				Invoke: func(_ context.Context, event []byte) ([]byte, error) {
					ev := iv.add(event)
					if calls.Add(1) == 1 {
						return []byte(tt.reply(ev)), nil
					}
					return nil, nil
				}})
			testutil.Eventually(t, 10*time.Second, func() bool { in := left(t, s); return in.Visible+in.InFlight == 0 }, "the messages were not deleted")
			var again []string
			for _, ev := range iv.all()[1:] {
				again = append(again, bodies(ev)...)
			}
			slices.Sort(again)
			if !slices.Equal(again, tt.again) {
				t.Errorf("delivered again %v, want %v", again, tt.again)
			}
		})
	}
}

// TestTriggerConcurrencyBound: no more invocations run at once than
// MaxConcurrency; the other messages wait in the queue.
func TestTriggerConcurrencyBound(t *testing.T) {
	t.Parallel()
	s := newQueue(t, time.Minute, "1", "2", "3", "4", "5")
	var active, peak atomic.Int32
	release := make(chan struct{})
	start(t, sqs.TriggerOptions{Store: s, Queue: "q", BatchSize: 1, MaxConcurrency: 2,
		Invoke: func(ctx context.Context, _ []byte) ([]byte, error) {
			n := active.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			defer active.Add(-1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		}})
	testutil.Eventually(t, 10*time.Second, func() bool { return active.Load() == 2 }, "two invocations did not start")
	if in := left(t, s); in.Visible != 3 || in.InFlight != 2 {
		t.Errorf("with two invocations running: %+v, want 3 visible and 2 in flight", in)
	}
	close(release)
	testutil.Eventually(t, 10*time.Second, func() bool { in := left(t, s); return in.Visible+in.InFlight == 0 }, "the messages were not deleted")
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}

// TestTriggerOptionsRefused: settings outside Lambda's limits.
func TestTriggerOptionsRefused(t *testing.T) {
	t.Parallel()
	s := newQueue(t, time.Minute)
	invoke := func(context.Context, []byte) ([]byte, error) { return nil, nil }
	for _, o := range []sqs.TriggerOptions{
		{Store: s, Queue: "q", Invoke: invoke, BatchSize: 10001},
		{Store: s, Queue: "q", Invoke: invoke, Window: 301 * time.Second},
		{Store: s, Queue: "q", Invoke: invoke, MaxConcurrency: -1},
		{Store: s, Queue: "q"},
	} {
		if tr, err := sqs.StartTrigger(o); err == nil {
			_ = tr.Close()
			t.Errorf("StartTrigger(%+v) = nil error, want a refusal", o)
		}
	}
}

// TestTriggerWindowKeepsOneReceive: a message whose visibility timeout
// ends while its batch is gathered is in the event once, with the receipt
// of its latest receive, so that the batch's success deletes it.
func TestTriggerWindowKeepsOneReceive(t *testing.T) {
	t.Parallel()
	s := newQueue(t, 50*time.Millisecond, "a")
	var iv invocations
	start(t, sqs.TriggerOptions{Store: s, Queue: "q", Window: time.Second, MaxConcurrency: 1,
		Invoke: func(_ context.Context, event []byte) ([]byte, error) { iv.add(event); return nil, nil }})
	testutil.Eventually(t, 10*time.Second, func() bool { in := left(t, s); return in.Visible+in.InFlight == 0 }, "the message was not deleted")
	if evs := iv.all(); len(evs) != 1 || !slices.Equal(bodies(evs[0]), []string{"a"}) {
		t.Errorf("events = %+v, want one with a once", evs)
	}
}

// TestTriggerCloseLetsInvocationFinish: closing a trigger (every reload
// does) does not cut short the invocation in progress: it completes and
// its messages are deleted, not sent back with one more receive.
func TestTriggerCloseLetsInvocationFinish(t *testing.T) {
	t.Parallel()
	s := newQueue(t, time.Minute, "a")
	started, finish := make(chan struct{}), make(chan struct{})
	tr, err := sqs.StartTrigger(sqs.TriggerOptions{Store: s, Queue: "q", MaxConcurrency: 1,
		Invoke: func(ctx context.Context, _ []byte) ([]byte, error) {
			close(started)
			<-finish
			return nil, ctx.Err() // an invocation cut short fails
		}})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	tr.Stop() // ends the receives at once, the invocation still running
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	close(finish)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if in := left(t, s); in.Visible+in.InFlight+in.Delayed != 0 {
		t.Errorf("queue after Close = %+v, want the message deleted", in)
	}
}

// TestTriggerStopReleasesGatheredBatch: a batch gathered when the trigger
// stops does not run, and its messages are visible again at once.
func TestTriggerStopReleasesGatheredBatch(t *testing.T) {
	t.Parallel()
	s := newQueue(t, time.Hour, "a")
	var invoked atomic.Int32
	tr, err := sqs.StartTrigger(sqs.TriggerOptions{Store: s, Queue: "q", MaxConcurrency: 1, Window: sqs.MaxBatchWindow,
		Invoke: func(context.Context, []byte) ([]byte, error) { invoked.Add(1); return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// The message is received; the window waits for more.
	testutil.Eventually(t, 10*time.Second, func() bool { return left(t, s).InFlight == 1 }, "the message was not received")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if in := left(t, s); in.Visible != 1 || invoked.Load() != 0 {
		t.Errorf("queue after Close = %+v, %d invocations; want the message visible and no invocation", in, invoked.Load())
	}
}

// TestTriggerInterruptedInvocation: an invocation that fails with
// ErrInterrupted (the function closed with the gateway) releases its
// batch at once, uncounted; one that fails on its own leaves it hidden
// for its visibility timeout.
func TestTriggerInterruptedInvocation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		err           error
		visible       int
		failedBatches float64
	}{
		{"interrupted", fmt.Errorf("invoke f: %w", sqs.ErrInterrupted), 1, 0},
		{"failed", errors.New("invoke f: boom"), 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newQueue(t, time.Hour, "a")
			m := metrics.NewQueues(prometheus.NewRegistry(), func() []metrics.QueueCounts { return nil })
			started, finish := make(chan struct{}), make(chan struct{})
			tr, err := sqs.StartTrigger(sqs.TriggerOptions{Store: s, Queue: "q", Function: "f", MaxConcurrency: 1, Metrics: m,
				Invoke: func(context.Context, []byte) ([]byte, error) {
					close(started)
					<-finish
					return nil, tt.err
				}})
			if err != nil {
				t.Fatal(err)
			}
			<-started
			tr.Stop() // the gateway stops: receives end, the invocation is in progress
			close(finish)
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			in := left(t, s)
			if in.Visible != tt.visible || in.Visible+in.InFlight != 1 {
				t.Errorf("queue after Close = %+v, want %d visible of 1", in, tt.visible)
			}
			var failed dto.Metric
			if err := m.Batches.WithLabelValues("q", "f", metrics.BatchFailed).Write(&failed); err != nil || failed.GetCounter().GetValue() != tt.failedBatches {
				t.Errorf("failed batches counted %v (%v), want %v", failed.GetCounter().GetValue(), err, tt.failedBatches)
			}
		})
	}
}
