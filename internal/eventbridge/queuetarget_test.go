package eventbridge_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/memqueue"
)

// TestQueueTarget: the event is one message's body; a full queue is
// retried, a missing queue or an event over the message size is not.
func TestQueueTarget(t *testing.T) {
	t.Parallel()
	s := memqueue.New(memqueue.Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q", Attributes: queue.Attributes{MaxMessages: 1, MaxMessageBytes: 1024}}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	event := []byte(`{"version":"0","detail":{}}`)
	if err := (eventbridge.QueueTarget{Store: s, Queue: "q"}).Deliver(ctx, event); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got, err := s.Receive(ctx, "q", queue.ReceiveOptions{})
	if err != nil || len(got) != 1 || got[0].Body != string(event) {
		t.Fatalf("the queue holds %+v, %v; want the event", got, err)
	}
	if err := (eventbridge.QueueTarget{Store: s, Queue: "q"}).Deliver(ctx, event); err == nil || errors.Is(err, eventbridge.ErrPermanent) {
		t.Errorf("Deliver(full queue) = %v, want an error to retry", err)
	}
	if err := (eventbridge.QueueTarget{Store: s, Queue: "nope"}).Deliver(ctx, event); !errors.Is(err, eventbridge.ErrPermanent) {
		t.Errorf("Deliver(missing queue) = %v, want ErrPermanent", err)
	}
	big := make([]byte, 2048)
	for i := range big {
		big[i] = 'x'
	}
	if err := (eventbridge.QueueTarget{Store: s, Queue: "q"}).Deliver(ctx, big); !errors.Is(err, eventbridge.ErrPermanent) {
		t.Errorf("Deliver(too large) = %v, want ErrPermanent", err)
	}
}
