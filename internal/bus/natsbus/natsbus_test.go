package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/bus/natsbus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// engines are testutil.NATSEngines: a nats-server process and the
// embedded server.
var engines = testutil.NATSEngines

// handler records what the bus delivers to one node.
type handler struct {
	mu         sync.Mutex
	sends      map[string][]string
	published  map[string][]string
	broadcasts []string
	held       map[string]error // connID -> answer; absent: conn.ErrGone
}

func newHandler(held map[string]error) *handler {
	return &handler{sends: map[string][]string{}, published: map[string][]string{}, held: held}
}

func (h *handler) answer(id string) error {
	if err, ok := h.held[id]; ok {
		return err
	}
	return conn.ErrGone
}

func (h *handler) HandleSend(id string, data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.answer(id); err != nil {
		return err
	}
	h.sends[id] = append(h.sends[id], string(data))
	return nil
}
func (h *handler) HandleDisconnect(id string) error { return h.answer(id) }
func (h *handler) HandleDescribe(id string) (conn.State, error) {
	if err := h.answer(id); err != nil {
		return conn.State{}, err
	}
	return conn.State{LastActiveAt: time.Unix(1700000000, 0).UTC(), Topics: []string{"a", "b"}}, nil
}
func (h *handler) HandlePublish(topic string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published[topic] = append(h.published[topic], string(data))
}
func (h *handler) HandleBroadcast(data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcasts = append(h.broadcasts, string(data))
}

func (h *handler) topic(t string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.published[t]...)
}

func (h *handler) bcasts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.broadcasts...)
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// within is a context that ends after d or with the test.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// join connects a node to the engine at url and runs its bus.
func join(t *testing.T, url, node string, h bus.Handler, opts natsbus.Options) *natsbus.Bus {
	t.Helper()
	nc, err := natsbus.Connect(url, natsbus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b := natsbus.New(nc, opts)
	if err := b.Run(ctx5(t), node, h); err != nil {
		t.Fatalf("run %s: %v", node, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestAddressedCalls(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			a := join(t, url, "node-a", newHandler(nil), natsbus.Options{})
			hb := newHandler(map[string]error{"ok": nil, "slow": conn.ErrSlowConsumer, "odd": errors.New("disk on fire")})
			join(t, url, "node-b", hb, natsbus.Options{})
			ctx := ctx5(t)

			if err := a.Send(ctx, "node-b", "ok", []byte("hi")); err != nil {
				t.Fatalf("Send to held = %v, want nil", err)
			}
			if got := hb.sends["ok"]; len(got) != 1 || got[0] != "hi" {
				t.Errorf("holder got %q, want [hi]", got)
			}
			for _, tc := range []struct {
				id   string
				want error
			}{{"missing", conn.ErrGone}, {"slow", conn.ErrSlowConsumer}} {
				if err := a.Send(ctx, "node-b", tc.id, nil); !errors.Is(err, tc.want) {
					t.Errorf("Send(%s) = %v, want %v", tc.id, err, tc.want)
				}
				if err := a.Disconnect(ctx, "node-b", tc.id); !errors.Is(err, tc.want) {
					t.Errorf("Disconnect(%s) = %v, want %v", tc.id, err, tc.want)
				}
			}
			if err := a.Send(ctx, "node-b", "odd", nil); err == nil || errors.Is(err, conn.ErrGone) || !strings.Contains(err.Error(), "disk on fire") {
				t.Errorf("Send(odd) = %v, want the holder's message", err)
			}
			st, err := a.Describe(ctx, "node-b", "ok")
			if err != nil || !st.LastActiveAt.Equal(time.Unix(1700000000, 0)) || fmt.Sprint(st.Topics) != "[a b]" {
				t.Errorf("Describe = %+v, %v", st, err)
			}
			if err := a.Disconnect(ctx, "node-b", "ok"); err != nil {
				t.Errorf("Disconnect(ok) = %v", err)
			}
			// No node serves that subject: the engine says so at once.
			if err := a.Send(ctx, "node-z", "ok", nil); !errors.Is(err, conn.ErrGone) {
				t.Errorf("Send to absent node = %v, want conn.ErrGone", err)
			}
			// A deadline that passes is unavailability, not gone.
			dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			defer cancel()
			if err := a.Send(dctx, "node-b", "ok", nil); !errors.Is(err, bus.ErrUnavailable) {
				t.Errorf("Send past deadline = %v, want bus.ErrUnavailable", err)
			}
			if err := a.Health(ctx); err != nil {
				t.Errorf("Health = %v, want nil", err)
			}
		})
	}
}

// TestPublishReachesInterestedNodesOnce publishes to topics whose names
// would be wildcards or several tokens if put into a subject as they are.
func TestPublishReachesInterestedNodesOnce(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			ha, hb, hc, hd := newHandler(nil), newHandler(nil), newHandler(nil), newHandler(nil)
			a := join(t, url, "a", ha, natsbus.Options{})
			b := join(t, url, "b", hb, natsbus.Options{})
			c := join(t, url, "c", hc, natsbus.Options{})
			d := join(t, url, "d", hd, natsbus.Options{})
			ctx := ctx5(t)
			topics := []string{"room.1", "*", ">", "room.>", "", "with space", "ünï"}
			for _, tp := range topics {
				for _, n := range []*natsbus.Bus{a, b, c} {
					if err := n.Subscribe(ctx, tp); err != nil {
						t.Fatal(err)
					}
				}
				if err := b.Subscribe(ctx, tp); err != nil { // idempotent
					t.Fatal(err)
				}
			}
			if err := d.Subscribe(ctx, "other"); err != nil {
				t.Fatal(err)
			}
			for _, tp := range topics {
				if err := a.Publish(ctx, tp, []byte("m:"+tp)); err != nil {
					t.Fatal(err)
				}
			}
			// A last message on every topic: once it is in, nothing earlier
			// from a is still on its way (NATS keeps a publisher's order).
			for _, tp := range topics {
				if err := a.Publish(ctx, tp, []byte("end")); err != nil {
					t.Fatal(err)
				}
			}
			for _, h := range []*handler{hb, hc} {
				for _, tp := range topics {
					testutil.Eventually(t, 5*time.Second, func() bool { return len(h.topic(tp)) == 2 }, "topic %q: %q", tp, h.topic(tp))
					if got := h.topic(tp); got[0] != "m:"+tp || got[1] != "end" {
						t.Errorf("topic %q got %q, want [m:%s end]", tp, got, tp)
					}
				}
			}
			if got := ha.topic("*"); len(got) != 0 {
				t.Errorf("publisher got its own publish back: %q", got)
			}
			hd.mu.Lock()
			if len(hd.published) != 0 {
				t.Errorf("uninterested node got %v", hd.published)
			}
			hd.mu.Unlock()

			// Unsubscribe withdraws the interest.
			if err := c.Unsubscribe(ctx, "room.1"); err != nil {
				t.Fatal(err)
			}
			if err := c.Unsubscribe(ctx, "room.1"); err != nil {
				t.Fatalf("second Unsubscribe = %v", err)
			}
			if err := a.Publish(ctx, "room.1", []byte("after")); err != nil {
				t.Fatal(err)
			}
			if err := a.Publish(ctx, "other", []byte("marker")); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return len(hb.topic("room.1")) == 3 && len(hd.topic("other")) == 1 }, "after unsubscribe")
			// c's connection is flushed by a round trip: whatever a sent
			// before has reached c's server side by now.
			if err := c.Health(ctx); err != nil {
				t.Fatal(err)
			}
			if got := hc.topic("room.1"); len(got) != 2 {
				t.Errorf("unsubscribed node got %q", got)
			}
		})
	}
}

func TestBroadcastReachesOthersOnce(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			ha, hb, hc := newHandler(nil), newHandler(nil), newHandler(nil)
			a := join(t, url, "a", ha, natsbus.Options{})
			join(t, url, "b", hb, natsbus.Options{})
			join(t, url, "c", hc, natsbus.Options{})
			// Another cluster on the same engine, under its own prefix.
			hx := newHandler(nil)
			join(t, url, "a", hx, natsbus.Options{Prefix: "other"})
			ctx := ctx5(t)
			for i := range 3 {
				if err := a.Broadcast(ctx, []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			for _, h := range []*handler{hb, hc} {
				testutil.Eventually(t, 5*time.Second, func() bool { return len(h.bcasts()) == 3 }, "broadcasts: %q", h.bcasts())
				if got := fmt.Sprint(h.bcasts()); got != "[0 1 2]" {
					t.Errorf("got %s, want [0 1 2]", got)
				}
			}
			if err := a.Health(ctx); err != nil {
				t.Fatal(err)
			}
			if got := ha.bcasts(); len(got) != 0 {
				t.Errorf("sender got its own broadcast: %q", got)
			}
			if got := hx.bcasts(); len(got) != 0 {
				t.Errorf("other prefix got %q", got)
			}
		})
	}
}

// TestEngineRestart stops the nats-server under two nodes: publishing
// fails and is counted rather than buffered, health turns red, and once the
// server is back the nodes' interest is declared again by itself.
func TestEngineRestart(t *testing.T) {
	t.Parallel()
	p := testutil.StartNATS(t)
	ha, hb := newHandler(nil), newHandler(nil)
	a := join(t, p.URL, "a", ha, natsbus.Options{})
	b := join(t, p.URL, "b", hb, natsbus.Options{})
	ctx := ctx5(t)
	if err := b.Subscribe(ctx, "t"); err != nil {
		t.Fatal(err)
	}

	p.Stop()
	testutil.Eventually(t, 5*time.Second, func() bool { return a.Health(within(t, time.Second)) != nil }, "health still green with the engine down")
	if err := a.Health(within(t, time.Second)); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Health = %v, want bus.ErrUnavailable", err)
	}
	if err := a.Publish(ctx5(t), "t", []byte("lost")); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish while down = %v, want bus.ErrUnavailable", err)
	}
	if err := a.Broadcast(ctx5(t), []byte("lost")); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Broadcast while down = %v, want bus.ErrUnavailable", err)
	}
	if got := a.Dropped(); got != 2 {
		t.Errorf("Dropped = %d, want 2", got)
	}

	p.Start()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return a.Health(within(t, time.Second)) == nil && b.Health(within(t, time.Second)) == nil
	}, "health back after restart")
	ctx = ctx5(t)
	if err := a.Publish(ctx, "t", []byte("after")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(hb.topic("t")) == 1 }, "publish after restart: %q", hb.topic("t"))
	if got := hb.topic("t"); got[0] != "after" {
		t.Errorf("got %q, want [after]: nothing sent while down arrives late", got)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		args      []string
		good, bad natsbus.ConnectOptions
	}{
		{"user", []string{"--user", "gw", "--pass", "s3cret"},
			natsbus.ConnectOptions{User: "gw", Password: "s3cret"}, natsbus.ConnectOptions{User: "gw", Password: "nope"}},
		{"token", []string{"--auth", "t0ken"},
			natsbus.ConnectOptions{Token: "t0ken"}, natsbus.ConnectOptions{Token: "wrong"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testutil.StartNATS(t, tc.args...)
			if nc, err := natsbus.Connect(p.URL, tc.bad); err == nil {
				nc.Close()
				t.Fatal("connected with bad credentials")
			} else if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("bad credentials: %v, want an authorization error", err)
			}
			if nc, err := natsbus.Connect(p.URL, natsbus.ConnectOptions{}); err == nil {
				nc.Close()
				t.Fatal("connected without credentials")
			}
			nc, err := natsbus.Connect(p.URL, tc.good)
			if err != nil {
				t.Fatalf("good credentials: %v", err)
			}
			nc.Close()
		})
	}
	if _, err := natsbus.Connect("nats://127.0.0.1:1", natsbus.ConnectOptions{User: "u", Token: "t"}); err == nil {
		t.Error("Connect with two kinds of credentials: nil error")
	}
}

func TestNotRunning(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	nc, err := natsbus.Connect(url, natsbus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := natsbus.New(nc, natsbus.Options{})
	if err := b.Subscribe(ctx5(t), "t"); !errors.Is(err, natsbus.ErrNotRunning) {
		t.Errorf("Subscribe before Run = %v, want ErrNotRunning", err)
	}
	if err := b.Run(ctx5(t), "n", nil); err == nil {
		t.Error("Run with nil handler: nil error")
	}
	for _, p := range []string{"a.*", "a..b", "a b", ">", "a."} {
		if err := natsbus.New(nc, natsbus.Options{Prefix: p}).Run(ctx5(t), "n", newHandler(nil)); err == nil {
			t.Errorf("Run with prefix %q: nil error", p)
		}
	}
}

// TestClosedNodeIsGone: once a node closed its bus, calls to it answer
// conn.ErrGone at once, also while the server still routes to it.
func TestClosedNodeIsGone(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	a := join(t, url, "a", newHandler(nil), natsbus.Options{})
	b := join(t, url, "b", newHandler(map[string]error{"x": nil}), natsbus.Options{})
	ctx := ctx5(t)
	if err := a.Send(ctx, "b", "x", nil); err != nil {
		t.Fatalf("Send while b runs = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, "b", "x", nil); !errors.Is(err, conn.ErrGone) {
		t.Errorf("Send to a closed node = %v, want conn.ErrGone", err)
	}
}

// blocker is a handler whose broadcasts wait until release is closed.
type blocker struct {
	*handler
	release chan struct{}
}

func (b blocker) HandleBroadcast(data []byte) {
	<-b.release
	b.handler.HandleBroadcast(data)
}

// TestQueueOverflowIsCounted: a node whose handler falls behind by more
// than QueueLen drops what does not fit and says how many.
func TestQueueOverflowIsCounted(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	a := join(t, url, "a", newHandler(nil), natsbus.Options{})
	h := blocker{newHandler(nil), make(chan struct{})}
	b := join(t, url, "b", h, natsbus.Options{QueueLen: 4})
	ctx := ctx5(t)
	const sent = 50
	for i := range sent {
		if err := a.Broadcast(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return b.Missed() > 0 }, "no drops counted")
	close(h.release)
	testutil.Eventually(t, 5*time.Second, func() bool { return uint64(len(h.bcasts()))+b.Missed() == sent }, "delivered + missed != %d", sent)
	if a.Missed() != 0 {
		t.Errorf("sender Missed = %d, want 0", a.Missed())
	}
}

// TestMissedNeverDecreases: drops counted on a topic stay counted once the
// topic is withdrawn and once the bus is closed.
func TestMissedNeverDecreases(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	a := join(t, url, "a", newHandler(nil), natsbus.Options{})
	h := blocker{newHandler(nil), make(chan struct{})}
	b := join(t, url, "b", h, natsbus.Options{QueueLen: 4})
	var once sync.Once
	release := func() { once.Do(func() { close(h.release) }) }
	t.Cleanup(release) // before b's Close, which waits for the handler
	ctx := ctx5(t)
	if err := b.Subscribe(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := a.Broadcast(ctx, []byte("holds the handler")); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := a.Publish(ctx, "t", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return b.Missed() > 0 }, "no drops counted")
	// Let the last drops land: the count is stable once it stays put.
	var before uint64
	testutil.Eventually(t, 5*time.Second, func() bool {
		n := b.Missed()
		stable := n == before
		before = n
		return stable
	}, "drops still counting")
	if err := b.Unsubscribe(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if got := b.Missed(); got < before {
		t.Fatalf("Missed after Unsubscribe = %d, want at least %d", got, before)
	}
	release()
	_ = b.Close()
	if got := b.Missed(); got < before {
		t.Fatalf("Missed after Close = %d, want at least %d", got, before)
	}
}
