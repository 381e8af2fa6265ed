package eventbridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// QueueTarget sends each event to a queue as one message whose body is the
// event, as EventBridge's SQS target does. A queue that does not exist or
// an event over its message size fails at once; a full queue is retried.
type QueueTarget struct {
	Store queue.Store
	Queue string
}

// Deliver implements Target.
func (q QueueTarget) Deliver(ctx context.Context, event []byte) error {
	_, err := q.Store.Send(ctx, q.Queue, []queue.Outgoing{{Body: string(event)}})
	if errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrInvalid) {
		return fmt.Errorf("%w: queue %s: %v", ErrPermanent, q.Queue, err)
	}
	return err
}
