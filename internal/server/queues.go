package server

import (
	"io"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
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
		}
		if dl := q.DeadLetter; dl != nil {
			a.DeadLetter, a.MaxReceiveCount = dl.Queue, dl.MaxReceiveCount
		}
		decls[i] = queue.Declaration{Name: q.Name, Attributes: a}
	}
	return decls
}

// queues declares the configured queues in s's store, which outlives
// reloads (a kept queue keeps its messages), and starts their triggers,
// which the builder closes first.
func (b *builder) queues(s *Server) error {
	if err := s.queues.Declare(queueDeclarations(b.cfg.Queues)); err != nil {
		return err
	}
	var triggers []io.Closer
	for _, q := range b.cfg.Queues {
		for _, tc := range q.Triggers {
			if tc.Disabled {
				continue
			}
			f, err := b.function(tc.Function)
			if err != nil {
				return err
			}
			tr, err := sqs.StartTrigger(sqs.TriggerOptions{
				Store: s.queues, Queue: q.Name, Function: tc.Function, Invoke: f.InvokeRaw,
				BatchSize: tc.BatchSize, Window: time.Duration(tc.BatchWindow), ReportBatchItemFailures: tc.ReportBatchItemFailures,
				MaxConcurrency: tc.MaxConcurrency, InvokeTimeout: f.InitTimeout() + f.Timeout() + time.Second,
				Region: b.cfg.Environment["AWS_REGION"], Logger: b.opts.Logger,
			})
			if err != nil {
				for _, t := range triggers {
					_ = t.Close()
				}
				return err
			}
			triggers = append(triggers, tr)
		}
	}
	// Triggers stop before the functions they invoke.
	b.closers = append(triggers, b.closers...)
	return nil
}

// sqsAPI serves the SQS API over s's queues, and the queue calls of the
// CLI and the dashboard.
func (b *builder) sqsAPI(s *Server) *sqs.API {
	return sqs.New(sqs.Options{Store: s.queues, Region: b.cfg.Environment["AWS_REGION"]})
}
