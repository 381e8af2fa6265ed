// Package queue defines Switchboard's message queues, as SQS has them: a
// queue's attributes and their limits, messages and their receipt handles,
// and the Store that keeps them (visibility timeout, delay, retention,
// receive counts, redrive to a dead-letter queue, long polling), with the
// errors every store returns. Implementations live in subpackages (memqueue
// keeps a node's queues in its memory, natsqueue keeps them in JetStream,
// redisqueue in Redis);
// queuetest checks them all; the SQS wire format lives in sqs.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Defaults and limits of a queue's attributes, as SQS has them.
const (
	DefaultVisibilityTimeout = 30 * time.Second
	MaxVisibilityTimeout     = 12 * time.Hour
	MaxDelay                 = 15 * time.Minute
	DefaultRetention         = 4 * 24 * time.Hour
	MinRetention             = time.Minute
	MaxRetention             = 14 * 24 * time.Hour
	DefaultMaxMessageBytes   = 256 << 10
	MinMaxMessageBytes       = 1 << 10
	MaxMessageBytes          = 1 << 20 // the largest message, and the largest batch
	MaxReceiveCountLimit     = 1000
	MaxWait                  = 20 * time.Second // long polling's longest wait
	MaxBatch                 = 10               // entries of a batch call; messages of a receive
	// DefaultMaxMessages bounds the messages one queue holds; a send past
	// it fails with ErrFull rather than grow a node's memory without end.
	DefaultMaxMessages = 100000
)

// Errors every Store returns; callers branch with errors.Is.
var (
	// ErrNotFound: no queue has the name.
	ErrNotFound = errors.New("queue: queue does not exist")
	// ErrReceiptHandle: the receipt handle was not issued by this store
	// for this queue.
	ErrReceiptHandle = errors.New("queue: receipt handle is invalid")
	// ErrNotInFlight: the message of a receipt handle is no longer
	// in flight (deleted, visible again, or received again since).
	ErrNotInFlight = errors.New("queue: message is not in flight")
	// ErrFull: the queue holds its maximum of messages.
	ErrFull = errors.New("queue: too many messages in the queue")
	// ErrInvalid wraps a parameter outside its limits.
	ErrInvalid = errors.New("queue: invalid parameter")
	// ErrNoDeadLetter: the queue named as a dead-letter queue is not one.
	ErrNoDeadLetter = errors.New("queue: not a dead-letter queue")
)

// Attributes are a queue's settings. The zero value of every field is its
// SQS default.
type Attributes struct {
	// VisibilityTimeout is how long a received message stays hidden
	// from other receives. Zero means 30s; at most 12h.
	VisibilityTimeout time.Duration
	// Delay hides each new message this long. Zero means none; at most 15m.
	Delay time.Duration
	// Retention is how long a message is kept from when it was sent.
	// Zero means 4 days; from 1 minute to 14 days.
	Retention time.Duration
	// MaxMessageBytes bounds a message: its body and attributes. Zero
	// means 256 KiB; from 1 KiB to 1 MiB.
	MaxMessageBytes int
	// DeadLetter names the queue a message moves to once it has been
	// received MaxReceiveCount times without being deleted; empty: none.
	DeadLetter string
	// MaxReceiveCount is the receives before a message moves to
	// DeadLetter; from 1 to 1000 when DeadLetter is set.
	MaxReceiveCount int
	// MaxMessages bounds the messages the queue holds. Zero means
	// DefaultMaxMessages.
	MaxMessages int
	// ReceiveWait is how long a receive that names no wait waits for a
	// message (ReceiveMessageWaitTimeSeconds). Zero: none; at most 20s.
	ReceiveWait time.Duration
}

// WithDefaults returns a with its zero fields set to their defaults.
func (a Attributes) WithDefaults() Attributes {
	if a.VisibilityTimeout == 0 {
		a.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if a.Retention == 0 {
		a.Retention = DefaultRetention
	}
	if a.MaxMessageBytes == 0 {
		a.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if a.MaxMessages == 0 {
		a.MaxMessages = DefaultMaxMessages
	}
	return a
}

// Check reports the first attribute outside SQS's limits, wrapping ErrInvalid.
func (a Attributes) Check() error {
	a = a.WithDefaults()
	if err := CheckVisibility(a.VisibilityTimeout); err != nil {
		return err
	}
	if err := CheckDelay(a.Delay); err != nil {
		return err
	}
	switch {
	case a.Retention < MinRetention || a.Retention > MaxRetention:
		return fmt.Errorf("%w: MessageRetentionPeriod %v is not within 1m and 14 days", ErrInvalid, a.Retention)
	case a.MaxMessageBytes < MinMaxMessageBytes || a.MaxMessageBytes > MaxMessageBytes:
		return fmt.Errorf("%w: MaximumMessageSize %d is not within 1024 and 1048576 bytes", ErrInvalid, a.MaxMessageBytes)
	case a.DeadLetter != "" && (a.MaxReceiveCount < 1 || a.MaxReceiveCount > MaxReceiveCountLimit):
		return fmt.Errorf("%w: maxReceiveCount %d is not within 1 and 1000", ErrInvalid, a.MaxReceiveCount)
	case a.ReceiveWait < 0 || a.ReceiveWait > MaxWait:
		return fmt.Errorf("%w: ReceiveMessageWaitTimeSeconds %v is not within 0s and 20s", ErrInvalid, a.ReceiveWait)
	case a.MaxMessages < 0:
		return fmt.Errorf("%w: MaxMessages %d is negative", ErrInvalid, a.MaxMessages)
	}
	return nil
}

// CheckVisibility reports a visibility timeout outside 0 to 12h (a
// receive's, or ChangeVisibility's), wrapping ErrInvalid.
func CheckVisibility(d time.Duration) error {
	if d < 0 || d > MaxVisibilityTimeout {
		return fmt.Errorf("%w: VisibilityTimeout %v is not within 0s and 12h", ErrInvalid, d)
	}
	return nil
}

// CheckDelay reports a delay outside 0 to 15m (a queue's, or a
// message's), wrapping ErrInvalid.
func CheckDelay(d time.Duration) error {
	if d < 0 || d > MaxDelay {
		return fmt.Errorf("%w: DelaySeconds %v is not within 0s and 15m", ErrInvalid, d)
	}
	return nil
}

// Declaration is one queue of a configuration.
type Declaration struct {
	Name       string
	Attributes Attributes
}

// MessageAttribute is one of a message's attributes, as SQS types it:
// DataType String, Number or Binary (with an optional ".label").
type MessageAttribute struct {
	DataType    string
	StringValue string
	BinaryValue []byte
}

// Size is what the attribute counts toward a message's size: its name,
// type and value.
func (m MessageAttribute) Size(name string) int {
	return len(name) + len(m.DataType) + len(m.StringValue) + len(m.BinaryValue)
}

// Outgoing is a message to send.
type Outgoing struct {
	Body       string
	Attributes map[string]MessageAttribute
	// Delay overrides the queue's; nil means the queue's.
	Delay *time.Duration
}

// Size is what a message counts toward MaxMessageBytes.
func (o Outgoing) Size() int {
	n := len(o.Body)
	for k, a := range o.Attributes {
		n += a.Size(k)
	}
	return n
}

// Sent identifies a message a store accepted.
type Sent struct {
	ID string
}

// Message is a received message.
type Message struct {
	ID string
	// ReceiptHandle identifies this receive: Delete and
	// ChangeVisibility take it.
	ReceiptHandle string
	Body          string
	Attributes    map[string]MessageAttribute
	// SentAt is when the message was first sent (kept by a redrive and a
	// move to the dead-letter queue).
	SentAt time.Time
	// FirstReceivedAt is when it was first received. An engine store
	// that does not keep it reports when this receive began instead:
	// never before SentAt, never after now.
	FirstReceivedAt time.Time
	// ReceiveCount counts its receives, this one included.
	ReceiveCount int
	// DeadLetterSource names the queue it was moved from, in a dead-letter
	// queue; empty otherwise.
	DeadLetterSource string
}

// ReceiveOptions are the parameters of one receive.
type ReceiveOptions struct {
	// Max is the most messages returned, 1 to 10. Zero means 1.
	Max int
	// Visibility overrides the queue's visibility timeout; nil means the queue's.
	Visibility *time.Duration
	// Wait is how long to wait for a message when none is visible (long
	// polling), bounded by MaxWait and ctx. Zero returns at once.
	Wait time.Duration
	// QueueWait makes the wait the queue's ReceiveWait
	// (ReceiveMessageWaitTimeSeconds), for a receive that names none;
	// Wait is then ignored.
	QueueWait bool
}

// Check reports the first option outside SQS's limits, wrapping
// ErrInvalid: Max 1 to 10 (or zero), Visibility 0 to 12h, Wait 0 to 20s
// (checked with QueueWait too). Store.Receive refuses what Check refuses.
func (o ReceiveOptions) Check() error {
	if o.Max < 0 || o.Max > MaxBatch {
		return fmt.Errorf("%w: MaxNumberOfMessages %d is not within 1 and 10", ErrInvalid, o.Max)
	}
	if o.Visibility != nil {
		if err := CheckVisibility(*o.Visibility); err != nil {
			return err
		}
	}
	if o.Wait < 0 || o.Wait > MaxWait {
		return fmt.Errorf("%w: WaitTimeSeconds %v is not within 0s and 20s", ErrInvalid, o.Wait)
	}
	return nil
}

// Info describes a queue for GetQueueAttributes, the CLI and the dashboard.
type Info struct {
	Name       string
	Attributes Attributes
	// Visible, InFlight and Delayed count its messages by state.
	Visible, InFlight, Delayed int
	// Sources are the queues whose dead-letter queue this is.
	Sources []string
	// CreatedAt is when the queue was declared.
	CreatedAt time.Time
}

// Store keeps queues and their messages. Every method is safe for
// concurrent use, and every one that can wait takes a context.
//
// A store is a node's own (memqueue) or lives in an engine that several
// nodes share (JetStream, Redis): there, every node that declares a queue
// serves the same messages, and a receipt handle issued on one node is
// good on every other. What an engine store cannot do exactly is said on
// each method; the conformance suite in queuetest checks what every store
// guarantees.
type Store interface {
	// Declare makes the store serve the queues of decls: new ones are
	// created, kept ones take their new attributes (for receives from now
	// on) and keep their messages. A dead-letter queue must be one of
	// decls. It refuses what Check refuses, changing nothing. Declaring
	// the same queues again, or from several nodes at once, is no error.
	//
	// A queue no longer declared is no longer served (Queues omits it,
	// every call on it answers ErrNotFound). A node's own store drops it
	// with its messages; an engine store keeps its messages, so that a
	// node still running an older configuration during a rolling deploy
	// does not delete a queue a newer node serves, and a later Declare
	// that names it again serves them again.
	Declare(ctx context.Context, decls []Declaration) error
	// Send adds msgs to queue. A message over the queue's size, or with
	// a delay outside 0 to 15m, fails the call with ErrInvalid before any
	// is sent. A full queue fails it with ErrFull: a node's own store
	// sends none of msgs then; an engine store may have stored the batch's
	// first messages, and may leave them, or remove them after a receive
	// saw them. A queue holds at most MaxMessages messages that are not
	// delayed on every store (an engine store may bound its delayed
	// messages apart).
	Send(ctx context.Context, queue string, msgs []Outgoing) ([]Sent, error)
	// Receive returns up to opts.Max visible messages, hiding each for the
	// visibility timeout and counting the receive; a message received
	// MaxReceiveCount times that comes due again moves to the dead-letter
	// queue instead and is not returned. It may return fewer messages
	// than are visible. With a wait (opts.Wait or opts.QueueWait) it
	// waits for a message until the wait ends, and returns none and no
	// error then; when ctx ends first it returns ctx's error. A delay
	// (the queue's or the message's) never counts as a receive.
	//
	// A receive whose ctx ends while an engine store hands it a message
	// may leave that message hidden, its receive counted, until the
	// visibility timeout, as a receive whose answer was lost does in SQS.
	Receive(ctx context.Context, queue string, opts ReceiveOptions) ([]Message, error)
	// Delete removes the message of receipt. A handle of a message
	// already deleted deletes nothing and is no error. A handle of an
	// earlier receive of a message received again since is no error
	// either: a node's own store deletes nothing then, as SQS does; an
	// engine store may delete the message.
	Delete(ctx context.Context, queue, receipt string) error
	// ChangeVisibility makes the message of receipt visible again after
	// timeout, from now (zero: at once, which wakes a waiting receive).
	// ErrNotInFlight when the message is gone (deleted, moved to the
	// dead-letter queue). When the receipt is stale (the message was
	// received again since, or its timeout ended) a node's own store
	// answers ErrNotInFlight too; an engine store may instead change the
	// visibility of the message's current receive.
	ChangeVisibility(ctx context.Context, queue, receipt string, timeout time.Duration) error
	// Info describes queue. Its counts are approximate, as SQS's are:
	// once no call is under way they settle on the exact figures, but a
	// message being moved (delayed to due, redriven, dead-lettered) may
	// be counted in neither or both of its states meanwhile.
	Info(ctx context.Context, queue string) (Info, error)
	// Queues lists the names of the queues the store serves, sorted.
	Queues(ctx context.Context) ([]string, error)
	// Peek returns up to max of queue's messages without receiving them,
	// oldest first (for listing dead letters), with no ReceiptHandle. An
	// engine store may leave ReceiveCount and FirstReceivedAt zero, and
	// omit a message that is delayed.
	Peek(ctx context.Context, queue string, max int) ([]Message, error)
	// Redrive moves the messages of the dead-letter queue dlq back to the
	// queues they came from, visible at once with their receive counts
	// reset (SentAt kept), and returns how many moved. ErrNoDeadLetter
	// when dlq is no declared queue's dead-letter queue.
	Redrive(ctx context.Context, dlq string) (int, error)
}
