package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// Trigger defaults and limits, as Lambda's SQS event source mappings have them.
const (
	DefaultBatchSize      = 10
	MaxBatchSize          = 10000
	MaxBatchWindow        = 5 * time.Minute
	DefaultMaxConcurrency = 2
	MaxConcurrency        = 1000
	// DefaultInvokeTimeout bounds one invocation when TriggerOptions
	// names none.
	DefaultInvokeTimeout = 15 * time.Minute
)

// TriggerOptions configures a Trigger. The zero value of every field but
// Store, Queue and Invoke works.
type TriggerOptions struct {
	// Store and Queue are the queue read. Required.
	Store queue.Store
	Queue string
	// Function names the function, for logs.
	Function string
	// Invoke runs the function with an SQS event and returns its result.
	// Required.
	Invoke func(ctx context.Context, event []byte) ([]byte, error)
	// BatchSize is the most messages of one event. Zero means 10; at most 10000.
	BatchSize int
	// Window is how long a batch is gathered before the function runs,
	// unless it fills first (MaximumBatchingWindowInSeconds). Zero: the
	// messages at hand are sent at once.
	Window time.Duration
	// ReportBatchItemFailures reads the function's batchItemFailures:
	// only the messages it names are left to come back.
	ReportBatchItemFailures bool
	// MaxConcurrency bounds the function's invocations at once for this
	// queue. Zero means 2; at most 1000.
	MaxConcurrency int
	// InvokeTimeout bounds one invocation. Zero means 15m.
	InvokeTimeout time.Duration
	// Region and Account fill eventSourceARN and awsRegion. Empty means
	// us-east-1 and 123456789012.
	Region, Account string
	// Logger receives failed batches. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts the batches by result; nil counts nothing.
	Metrics *metrics.Queues
}

func (o TriggerOptions) withDefaults() TriggerOptions {
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = DefaultMaxConcurrency
	}
	if o.InvokeTimeout == 0 {
		o.InvokeTimeout = DefaultInvokeTimeout
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = "123456789012"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ErrInterrupted, wrapped in an error that TriggerOptions.Invoke returns,
// says that the invocation did not fail on its own: the function was
// closed (the gateway stops) before it took the event or while it ran it.
// Its batch is released, visible again at once, rather than hidden until
// its visibility timeout ends: a gateway that starts again on a durable
// store runs it at once.
var ErrInterrupted = errors.New("sqs: invocation interrupted")

// Trigger runs a function with the messages of a queue, as Lambda's SQS
// event source mapping does: batches of messages in an SQS event; the
// messages of a batch the function took are deleted, those of a failed
// one (an error, or the items it reports) come back after their
// visibility timeout and count toward the queue's maxReceiveCount. Stop
// ends its receives; Close stops it and waits for the invocations in
// progress, which closing does not cut short.
type Trigger struct {
	opts   TriggerOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Check reports the first setting outside Lambda's limits; StartTrigger
// refuses what Check refuses.
func (opts TriggerOptions) Check() error {
	o := opts.withDefaults()
	switch {
	case o.Store == nil || o.Invoke == nil || o.Queue == "":
		return errors.New("sqs: a trigger needs a store, a queue and a function")
	case o.BatchSize < 1 || o.BatchSize > MaxBatchSize:
		return fmt.Errorf("sqs: trigger of %s: BatchSize %d is not within 1 and %d", o.Queue, o.BatchSize, MaxBatchSize)
	case o.Window < 0 || o.Window > MaxBatchWindow:
		return fmt.Errorf("sqs: trigger of %s: MaximumBatchingWindowInSeconds %v is not within 0 and 300s", o.Queue, o.Window)
	case o.MaxConcurrency < 1 || o.MaxConcurrency > MaxConcurrency:
		return fmt.Errorf("sqs: trigger of %s: MaximumConcurrency %d is not within 1 and %d", o.Queue, o.MaxConcurrency, MaxConcurrency)
	}
	return nil
}

// StartTrigger checks opts and starts opts.MaxConcurrency pollers.
func StartTrigger(opts TriggerOptions) (*Trigger, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t := &Trigger{opts: o, cancel: cancel}
	for range o.MaxConcurrency {
		t.wg.Go(func() { t.poll(ctx) })
	}
	return t, nil
}

// Stop ends the trigger's receives and returns at once: no batch starts
// from then on, the invocations in progress go on (each bounded by
// InvokeTimeout) and their messages are deleted as usual, and a batch
// gathered but not yet sent is released (visible again at once), as is
// the batch of an invocation that fails with ErrInterrupted. Stop may be
// called more than once.
func (t *Trigger) Stop() { t.cancel() }

// Close stops the trigger and waits for the invocations in progress. A
// reload, which must not wait for them, calls Stop and then Close in the
// background.
func (t *Trigger) Close() error {
	t.Stop()
	t.wg.Wait()
	return nil
}

// poll receives batches and runs the function until ctx ends.
func (t *Trigger) poll(ctx context.Context) {
	o := t.opts
	for ctx.Err() == nil {
		batch, err := t.gather(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			o.Logger.Warn("sqs trigger: receive failed", "queue", o.Queue, "function", o.Function, "err", err)
			// The queue was dropped or the store failed: wait before trying
			// again, or stop.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		if ctx.Err() != nil {
			t.release(batch) // stopped while gathering: it will not run
			return
		}
		if len(batch) > 0 {
			t.run(ctx, batch)
		}
	}
}

// gather receives one batch: a long poll for its first message, then the
// rest within the window.
func (t *Trigger) gather(ctx context.Context) ([]queue.Message, error) {
	o := t.opts
	batch, err := o.Store.Receive(ctx, o.Queue, queue.ReceiveOptions{Max: min(o.BatchSize, queue.MaxBatch), Wait: queue.MaxWait})
	if err != nil || len(batch) == 0 {
		return nil, err
	}
	deadline := time.Now().Add(o.Window)
	for len(batch) < o.BatchSize {
		wait := min(max(time.Until(deadline), 0), queue.MaxWait)
		more, err := o.Store.Receive(ctx, o.Queue, queue.ReceiveOptions{Max: min(o.BatchSize-len(batch), queue.MaxBatch), Wait: wait})
		if err != nil {
			break // what was received runs; a failing store fails the next receive
		}
		batch = merge(batch, more)
		if len(more) == 0 && !time.Now().Before(deadline) {
			break
		}
	}
	return batch, nil
}

// merge adds more to batch; a message received again while the batch was
// gathered (its visibility timeout is shorter than the window) replaces
// its earlier receive, whose receipt handle is stale.
func merge(batch, more []queue.Message) []queue.Message {
	for _, m := range more {
		i := slices.IndexFunc(batch, func(b queue.Message) bool { return b.ID == m.ID })
		if i >= 0 {
			batch[i] = m
			continue
		}
		batch = append(batch, m)
	}
	return batch
}

// Record is one message of an SQS event, its fields in Lambda's order.
type Record struct {
	MessageID         string                     `json:"messageId"`
	ReceiptHandle     string                     `json:"receiptHandle"`
	Body              string                     `json:"body"`
	Attributes        map[string]string          `json:"attributes"`
	MessageAttributes map[string]recordAttribute `json:"messageAttributes"`
	MD5OfBody         string                     `json:"md5OfBody"`
	EventSource       string                     `json:"eventSource"`
	EventSourceARN    string                     `json:"eventSourceARN"`
	AWSRegion         string                     `json:"awsRegion"`
}

type recordAttribute struct {
	StringValue      *string  `json:"stringValue,omitempty"`
	BinaryValue      []byte   `json:"binaryValue,omitempty"`
	StringListValues []string `json:"stringListValues"`
	BinaryListValues []string `json:"binaryListValues"`
	DataType         string   `json:"dataType"`
}

// Event is the SQS event a function receives.
type Event struct {
	Records []Record `json:"Records"`
}

// NewEvent makes the event of a batch of queue's messages.
func NewEvent(batch []queue.Message, queueName, region, account string) Event {
	arn := ARN(region, account, queueName)
	ev := Event{Records: make([]Record, len(batch))}
	for i, m := range batch {
		attrs := map[string]recordAttribute{}
		for k, a := range m.Attributes {
			ra := recordAttribute{DataType: a.DataType, StringListValues: []string{}, BinaryListValues: []string{}}
			if strings.HasPrefix(a.DataType, "Binary") {
				ra.BinaryValue = a.BinaryValue
			} else {
				s := a.StringValue
				ra.StringValue = &s
			}
			attrs[k] = ra
		}
		ev.Records[i] = Record{MessageID: m.ID, ReceiptHandle: m.ReceiptHandle, Body: m.Body, Attributes: SystemAttributes(m, region, account),
			MessageAttributes: attrs, MD5OfBody: md5Hex(m.Body), EventSource: "aws:sqs", EventSourceARN: arn, AWSRegion: region}
	}
	return ev
}

// release makes batch's messages visible again at once.
func (t *Trigger) release(batch []queue.Message) {
	o := t.opts
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range batch {
		if err := o.Store.ChangeVisibility(ctx, o.Queue, m.ReceiptHandle, 0); err != nil {
			o.Logger.Warn("sqs trigger: releasing a message of a batch that will not run", "queue", o.Queue, "message", m.ID, "err", err)
		}
	}
}

// run invokes the function with batch and deletes what it took. The
// invocation does not end with ctx (Stop): a function cut short would
// send its messages back with one more receive, toward the dead-letter
// queue, without having failed. An invocation interrupted all the same
// (the function closed with the gateway) releases its batch.
func (t *Trigger) run(ctx context.Context, batch []queue.Message) {
	o := t.opts
	event, err := json.Marshal(NewEvent(batch, o.Queue, o.Region, o.Account))
	if err != nil { // strings and maps only: unreachable
		o.Logger.Error("sqs trigger: encoding the event", "queue", o.Queue, "err", err)
		return
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.InvokeTimeout)
	result, err := o.Invoke(ictx, event)
	cancel()
	if errors.Is(err, ErrInterrupted) {
		// Not the function's failure: its messages are not held back for
		// their visibility timeout, and the batch is not counted as failed.
		o.Logger.Info("sqs trigger: the invocation was interrupted; its batch is visible again",
			"queue", o.Queue, "function", o.Function, "messages", len(batch), "err", err)
		t.release(batch)
		return
	}
	if err != nil {
		o.Metrics.Batch(o.Queue, o.Function, metrics.BatchFailed)
		o.Logger.Warn("sqs trigger: the function failed; the batch comes back after its visibility timeout",
			"queue", o.Queue, "function", o.Function, "messages", len(batch), "err", err)
		return
	}
	failed := map[string]bool{}
	if o.ReportBatchItemFailures {
		failed, err = batchItemFailures(result, batch)
		if err != nil {
			o.Metrics.Batch(o.Queue, o.Function, metrics.BatchFailed)
			o.Logger.Warn("sqs trigger: the function's batchItemFailures are not valid; the whole batch comes back",
				"queue", o.Queue, "function", o.Function, "messages", len(batch), "err", err)
			return
		}
	}
	outcome := metrics.BatchOK
	if len(failed) > 0 {
		outcome = metrics.BatchPartial
	}
	o.Metrics.Batch(o.Queue, o.Function, outcome)
	// Deleting is bounded on its own: a batch that ran is deleted even
	// when the trigger is closing.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, m := range batch {
		if failed[m.ID] {
			continue
		}
		if err := o.Store.Delete(dctx, o.Queue, m.ReceiptHandle); err != nil {
			o.Logger.Warn("sqs trigger: deleting a processed message", "queue", o.Queue, "message", m.ID, "err", err)
		}
	}
}

// batchItemFailures reads a function's partial batch response, as Lambda
// does: a null or empty result, or no batchItemFailures, fails nothing; an
// item without an identifier or with one not in the batch, or a result
// that is not such an object, fails the whole batch (the error).
func batchItemFailures(result []byte, batch []queue.Message) (map[string]bool, error) {
	failed := map[string]bool{}
	s := strings.TrimSpace(string(result))
	if s == "" || s == "null" {
		return failed, nil
	}
	var resp struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(result, &resp); err != nil {
		return nil, fmt.Errorf("the result is not a partial batch response: %v", err)
	}
	in := map[string]bool{}
	for _, m := range batch {
		in[m.ID] = true
	}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == nil || *f.ItemIdentifier == "" || !in[*f.ItemIdentifier] {
			return nil, errors.New("an itemIdentifier is empty or names no message of the batch")
		}
		failed[*f.ItemIdentifier] = true
	}
	return failed, nil
}
