package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/sqs"
)

// queueDeclarations turns the configured queues into the store's.
func queueDeclarations(qs []config.Queue) []queue.Declaration {
	decls := make([]queue.Declaration, len(qs))
	for i, q := range qs {
		a := queue.Attributes{
			VisibilityTimeout: time.Duration(q.VisibilityTimeout),
			Delay:             max(time.Duration(q.Delay), 0), // "0" reads as off: no delay
			Retention:         time.Duration(q.Retention),
			MaxMessageBytes:   int(q.MaxMessageBytes),
			MaxMessages:       q.MaxMessages,
			ReceiveWait:       max(time.Duration(q.ReceiveWait), 0), // "0" reads as off: no wait
		}
		if dl := q.DeadLetter; dl != nil {
			a.DeadLetter, a.MaxReceiveCount = dl.Queue, dl.MaxReceiveCount
		}
		decls[i] = queue.Declaration{Name: q.Name, Attributes: a}
	}
	return decls
}

// checkQueues checks the configured queues and prepares their triggers,
// changing nothing: a build that fails, or a Reload that is refused,
// leaves the queues in force as they were.
func (b *builder) checkQueues(s *Server) error {
	if err := queue.Check(queueDeclarations(b.cfg.Queues)); err != nil {
		return err
	}
	for _, q := range b.cfg.Queues {
		for _, tc := range q.Triggers {
			if tc.Disabled {
				continue
			}
			f, err := b.function(tc.Function)
			if err != nil {
				return err
			}
			o := sqs.TriggerOptions{
				Store: s.queues, Queue: q.Name, Function: tc.Function, Invoke: interruptible(f.InvokeRaw),
				BatchSize: tc.BatchSize, Window: time.Duration(tc.BatchWindow), ReportBatchItemFailures: tc.ReportBatchItemFailures,
				MaxConcurrency: tc.MaxConcurrency, InvokeTimeout: f.InitTimeout() + f.Timeout() + time.Second,
				Region: b.cfg.Environment["AWS_REGION"], Logger: b.opts.Logger, Metrics: s.qmetrics,
			}
			if err := o.Check(); err != nil {
				return err
			}
			// Lambda refuses such a mapping; here its messages would come
			// back while the function still runs them.
			if vis := cmp.Or(time.Duration(q.VisibilityTimeout), queue.DefaultVisibilityTimeout); f.Timeout() > vis {
				b.opts.Logger.Warn("queue trigger: the function's timeout is longer than the queue's visibility timeout; its messages may be received again while it runs",
					"queue", q.Name, "function", tc.Function, "timeout", f.Timeout(), "visibilityTimeout", vis)
			}
			b.triggers = append(b.triggers, o)
		}
	}
	return nil
}

// interruptible marks the invocations that a function's Close refused or
// cut short (the gateway stops) as interrupted, so that the trigger makes
// their messages visible again at once instead of after their visibility
// timeout.
func interruptible(invoke func(context.Context, []byte) ([]byte, error)) func(context.Context, []byte) ([]byte, error) {
	return func(ctx context.Context, event []byte) ([]byte, error) {
		out, err := invoke(ctx, event)
		if errors.Is(err, lambdahost.ErrClosed) {
			return nil, fmt.Errorf("%w: %w", sqs.ErrInterrupted, err)
		}
		return out, err
	}
}

// Declaring the queues in a cluster's engine is tried for up to
// queueDeclareTimeout, each attempt bounded by queueDeclareAttempt: the
// engine's replicated streams wait for their peers, and a request made
// while its servers elect a leader may go unanswered.
const (
	queueDeclareTimeout = time.Minute
	queueDeclareAttempt = 15 * time.Second
)

// declareQueues makes s's store, which outlives reloads, serve b's queues
// (a kept queue keeps its messages), before b is put in force: when the
// store refuses them (an engine that cannot be reached, a data directory
// another gateway holds), the error is returned and b must not be. On a
// cluster a failure is tried again until queueDeclareTimeout, or the drain;
// a node's own store answers at once.
func (s *Server) declareQueues(b *builder) error {
	ctx, cancel := context.WithTimeout(s.draining, queueDeclareTimeout)
	defer cancel()
	decls := queueDeclarations(b.cfg.Queues)
	for {
		actx, acancel := context.WithTimeout(ctx, queueDeclareAttempt)
		err := s.queues.Declare(actx, decls)
		acancel()
		switch {
		case err == nil:
			return nil
		case s.cluster == nil || errors.Is(err, queue.ErrInvalid) || ctx.Err() != nil:
			return fmt.Errorf("queues: %w", err)
		}
		s.log.Warn("queues: declaring them in the cluster's engine failed; trying again", "err", err)
		t := time.NewTimer(250 * time.Millisecond) // retry pacing
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("queues: %w", err)
		case <-t.C:
		}
	}
}

// startTriggers starts b's queue triggers, once b is in force and its
// queues declared; b closes them before its functions.
func (s *Server) startTriggers(b *builder) {
	var started []io.Closer
	for _, o := range b.triggers {
		tr, err := sqs.StartTrigger(o)
		if err != nil {
			s.log.Error("queues: a checked trigger did not start", "queue", o.Queue, "function", o.Function, "err", err)
			continue
		}
		started = append(started, tr)
	}
	b.closers = append(started, b.closers...)
}

// sqsAPI serves the SQS API over s's queues, and the queue calls of the
// CLI and the dashboard.
func (b *builder) sqsAPI(s *Server) *sqs.API {
	return sqs.New(sqs.Options{Store: s.queues, Region: b.cfg.Environment["AWS_REGION"], Stopping: s.draining})
}

// queueCounts are the queues' messages by state, for the metrics' gauges.
func (s *Server) queueCounts() []metrics.QueueCounts {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names, err := s.queues.Queues(ctx)
	if err != nil {
		return nil
	}
	var out []metrics.QueueCounts
	for _, n := range names {
		in, err := s.queues.Info(ctx, n)
		if err != nil {
			continue // dropped by a reload meanwhile
		}
		out = append(out, metrics.QueueCounts{Queue: n, Visible: in.Visible, InFlight: in.InFlight, Delay: in.Delayed})
	}
	return out
}
