package natsqueue

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startEngine starts an embedded server for t and returns its URL.
func startEngine(t *testing.T) string {
	t.Helper()
	engine, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	return engine.ClientURL()
}

// newStore opens a store with prefix on its own connection to url, that
// serves queue q until the end of t.
func newStore(t *testing.T, url, prefix string) *Store {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(testContext(t), js, Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Declare(testContext(t), []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFetchPastDeadline: a long poll whose wait has ended by the time it
// asks the server (a moment after the receive saw time left) gets no
// message and no error, as a wait that ends empty.
func TestFetchPastDeadline(t *testing.T) {
	t.Parallel()
	s := newStore(t, startEngine(t), "past")
	q, err := s.queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s.fetch(testContext(t), q, 1, time.Now().Add(-time.Millisecond), nil); err != nil || len(out) != 0 {
		t.Errorf("fetch(until a moment ago) = %+v, %v; want no message and no error", out, err)
	}
}

// TestReceiptHandles: a receipt handle whose acknowledgement subject was
// changed to another message's sequence is refused, and that message
// stays; a handle is accepted by another store of the engine (another
// node), and by a store opened after its own closed (a restart).
func TestReceiptHandles(t *testing.T) {
	t.Parallel()
	url := startEngine(t)
	a, b := newStore(t, url, "rh"), newStore(t, url, "rh")
	ctx := testContext(t)
	if _, err := a.Send(ctx, "q", []queue.Outgoing{{Body: "first"}, {Body: "second"}}); err != nil {
		t.Fatal(err)
	}
	first := receiveOne(t, a)
	if first.Body != "first" {
		t.Fatalf("received %s, want first", first.Body)
	}
	forged := withNextSequence(t, first.ReceiptHandle)
	if err := a.Delete(ctx, "q", forged); !errors.Is(err, queue.ErrReceiptHandle) {
		t.Errorf("Delete(a handle with the next sequence) = %v, want ErrReceiptHandle", err)
	}
	if err := a.ChangeVisibility(ctx, "q", forged, 0); !errors.Is(err, queue.ErrReceiptHandle) {
		t.Errorf("ChangeVisibility(a handle with the next sequence) = %v, want ErrReceiptHandle", err)
	}
	second := receiveOne(t, a)
	if second.Body != "second" {
		t.Fatalf("received %s, want second: it stays after the forged Delete", second.Body)
	}

	if err := b.Delete(ctx, "q", first.ReceiptHandle); err != nil {
		t.Errorf("another store's Delete(a's handle) = %v", err)
	}
	_ = a.Close()
	c := newStore(t, url, "rh")
	if err := c.Delete(ctx, "q", second.ReceiptHandle); err != nil {
		t.Errorf("a store opened later: Delete(a's handle) = %v", err)
	}
	if err := c.Delete(ctx, "q", second.ReceiptHandle[:len(second.ReceiptHandle)-1]); !errors.Is(err, queue.ErrReceiptHandle) {
		t.Errorf("Delete(a truncated handle) = %v, want ErrReceiptHandle", err)
	}
	if err := newStore(t, url, "other").Delete(ctx, "q", second.ReceiptHandle); !errors.Is(err, queue.ErrReceiptHandle) {
		t.Errorf("a store of another prefix (another key, another stream): Delete(a's handle) = %v, want ErrReceiptHandle", err)
	}
	info, err := c.Info(ctx, "q")
	if err != nil || info.Visible+info.InFlight != 0 {
		t.Errorf("Info = %+v, %v; want the queue empty", info, err)
	}
}

func receiveOne(t *testing.T, s *Store) queue.Message {
	t.Helper()
	got, err := s.Receive(testContext(t), "q", queue.ReceiveOptions{})
	if err != nil || len(got) != 1 {
		t.Fatalf("Receive = %+v, %v; want one message", got, err)
	}
	return got[0]
}

// withNextSequence returns handle with its acknowledgement subject's
// stream sequence one more, and the MAC it had.
func withNextSequence(t *testing.T, handle string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil || len(raw) <= sha256.Size {
		t.Fatalf("handle %q: %v", handle, err)
	}
	tokens := strings.Split(string(raw[sha256.Size:]), ".")
	i := 5 // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...
	if len(tokens) > 9 {
		i = 7 // with a domain and an account hash after ACK
	}
	seq, err := strconv.ParseUint(tokens[i], 10, 64)
	if err != nil {
		t.Fatalf("subject %q: %v", raw[sha256.Size:], err)
	}
	tokens[i] = strconv.FormatUint(seq+1, 10)
	return base64.RawURLEncoding.EncodeToString(append(raw[:sha256.Size:sha256.Size], strings.Join(tokens, ".")...))
}
