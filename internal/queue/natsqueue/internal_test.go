package natsqueue

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// TestFetchPastDeadline: a long poll whose wait has ended by the time it
// asks the server (a moment after the receive saw time left) gets no
// message and no error, as a wait that ends empty.
func TestFetchPastDeadline(t *testing.T) {
	t.Parallel()
	engine, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	nc, err := nats.Connect(engine.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, js, Options{Prefix: "past"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Declare(ctx, []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	q, err := s.queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.fetch(ctx, q, 1, time.Now().Add(-time.Millisecond), nil); err != nil || len(out) != 0 {
		t.Errorf("fetch(until a moment ago) = %+v, %v; want no message and no error", out, err)
	}
}
