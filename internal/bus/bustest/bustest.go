// Package bustest checks that a bus.Bus behaves as the gateway expects:
// addressed calls reach the named node and bring back its answer, publish
// and broadcast reach each other interested node once, and every call is
// bounded by its context.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// wait bounds how long the suite waits for a delivery before failing.
const wait = 10 * time.Second

// Run runs the conformance suite. newEngine is called once per subtest: it
// starts (or reuses, isolated from every other subtest) one engine and
// returns a function that connects a new bus to it, one per node. The suite
// closes every bus it creates; newEngine may register cleanups on t.
func Run(t *testing.T, newEngine func(t *testing.T) func() bus.Bus) {
	t.Run("SendReachesHolder", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		data := []byte(`{"hello":"world"}`)
		if err := a.bus.Send(ctxFor(t), b.name, "conn-1", data); err != nil {
			t.Fatalf("Send to %s: %v", b.name, err)
		}
		if got := b.h.sends(); len(got) != 1 || got[0] != (call{"conn-1", string(data)}) {
			t.Errorf("%s's handler got sends %q, want one of %q to conn-1", b.name, got, data)
		}
		if got := a.h.sends(); len(got) != 0 {
			t.Errorf("the sender's own handler got sends %q, want none", got)
		}
	})

	t.Run("HolderAnswersComeBack", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		b.h.set(func(r *recorder) {
			r.answer = func(connID string) error {
				switch connID {
				case "gone":
					return conn.ErrGone
				case "slow":
					return conn.ErrSlowConsumer
				case "other":
					return errors.New("something else")
				}
				return nil
			}
		})
		ctx := ctxFor(t)
		for _, tc := range []struct {
			connID string
			want   error
		}{{"gone", conn.ErrGone}, {"slow", conn.ErrSlowConsumer}} {
			if err := a.bus.Send(ctx, b.name, tc.connID, []byte("x")); !errors.Is(err, tc.want) {
				t.Errorf("Send(%s): err = %v, want errors.Is %v", tc.connID, err, tc.want)
			}
			if err := a.bus.Disconnect(ctx, b.name, tc.connID); !errors.Is(err, tc.want) {
				t.Errorf("Disconnect(%s): err = %v, want errors.Is %v", tc.connID, err, tc.want)
			}
			if _, err := a.bus.Describe(ctx, b.name, tc.connID); !errors.Is(err, tc.want) {
				t.Errorf("Describe(%s): err = %v, want errors.Is %v", tc.connID, err, tc.want)
			}
		}
		err := a.bus.Send(ctx, b.name, "other", []byte("x"))
		if err == nil || errors.Is(err, conn.ErrGone) || errors.Is(err, conn.ErrSlowConsumer) {
			t.Errorf("Send(other): err = %v, want an error that is neither ErrGone nor ErrSlowConsumer", err)
		}
		if err := a.bus.Send(ctx, b.name, "fine", []byte("x")); err != nil {
			t.Errorf("Send(fine) = %v, want nil", err)
		}
	})

	t.Run("DisconnectReachesHolder", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		if err := a.bus.Disconnect(ctxFor(t), b.name, "conn-9"); err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
		if got := b.h.disconnects(); !slices.Equal(got, []string{"conn-9"}) {
			t.Errorf("%s's handler got disconnects %q, want [conn-9]", b.name, got)
		}
	})

	t.Run("DescribeRoundTrip", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		want := conn.State{
			LastActiveAt: time.Date(2026, 3, 4, 5, 6, 7, 123_000_000, time.FixedZone("UTC+2", 2*3600)),
			Topics:       []string{"a.b", "orders", "ünï"},
			Truncated:    true,
		}
		b.h.set(func(r *recorder) { r.state = want })
		got, err := a.bus.Describe(ctxFor(t), b.name, "conn-1")
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		if !got.LastActiveAt.Equal(want.LastActiveAt) || !slices.Equal(got.Topics, want.Topics) || got.Truncated != want.Truncated {
			t.Errorf("Describe = %+v, want %+v", got, want)
		}
		b.h.set(func(r *recorder) { r.state = conn.State{LastActiveAt: want.LastActiveAt} })
		got, err = a.bus.Describe(ctxFor(t), b.name, "conn-1")
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		if len(got.Topics) != 0 || got.Truncated {
			t.Errorf("Describe of a connection without topics = %+v, want no topics", got)
		}
	})

	t.Run("BinaryPayloads", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		big := make([]byte, 128<<10) // API Gateway's largest message
		for i := range big {
			big[i] = byte(i * 7)
		}
		ctx := ctxFor(t)
		if err := b.bus.Subscribe(ctx, "bin"); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		for _, data := range [][]byte{{}, {0, 0xff, '\n', '\r'}, big} {
			if err := a.bus.Send(ctx, b.name, "c", data); err != nil {
				t.Fatalf("Send(%d bytes): %v", len(data), err)
			}
			if err := a.bus.Publish(ctx, "bin", data); err != nil {
				t.Fatalf("Publish(%d bytes): %v", len(data), err)
			}
			if err := a.bus.Broadcast(ctx, data); err != nil {
				t.Fatalf("Broadcast(%d bytes): %v", len(data), err)
			}
		}
		testutil.Eventually(t, wait, func() bool {
			return len(b.h.publishes()) == 3 && len(b.h.broadcasts()) == 3
		}, "%s got %d publishes and %d broadcasts, want 3 each", b.name, len(b.h.publishes()), len(b.h.broadcasts()))
		for i, want := range []string{"", "\x00\xff\n\r", string(big)} {
			if got := b.h.sends()[i].data; got != want {
				t.Errorf("send %d arrived as %d bytes, want %d bytes intact", i, len(got), len(want))
			}
			if got := b.h.publishes()[i].data; got != want {
				t.Errorf("publish %d arrived as %d bytes, want %d bytes intact", i, len(got), len(want))
			}
			if got := b.h.broadcasts()[i]; got != want {
				t.Errorf("broadcast %d arrived as %d bytes, want %d bytes intact", i, len(got), len(want))
			}
		}
	})

	t.Run("UnknownNode", func(t *testing.T) {
		t.Parallel()
		a := start(t, newEngine, 1)[0]
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, conn.ErrGone) && !errors.Is(err, bus.ErrUnavailable) {
				t.Errorf("%s to a node nobody serves: err = %v, want ErrGone or ErrUnavailable", op, err)
			}
		}
		check("Send", a.bus.Send(ctx, "no-such-node", "c", []byte("x")))
		check("Disconnect", a.bus.Disconnect(ctx, "no-such-node", "c"))
		_, err := a.bus.Describe(ctx, "no-such-node", "c")
		check("Describe", err)
	})

	t.Run("ContextBoundsCalls", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		b.h.set(func(r *recorder) {
			r.block = func() {
				select {
				case started <- struct{}{}:
				default:
				}
				<-release
			}
		})
		defer close(release)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := a.bus.Send(ctx, b.name, "c", []byte("x"))
		if err == nil || errors.Is(err, conn.ErrGone) || errors.Is(err, conn.ErrSlowConsumer) {
			t.Errorf("Send to a holder that does not answer before the deadline: err = %v, want a deadline or ErrUnavailable", err)
		}
		cancelled, cancel2 := context.WithCancel(t.Context())
		cancel2()
		if err := a.bus.Publish(cancelled, "t", []byte("x")); err == nil {
			t.Errorf("Publish with a cancelled context = nil, want an error")
		}
		if err := a.bus.Subscribe(cancelled, "t"); err == nil {
			t.Errorf("Subscribe with a cancelled context = nil, want an error")
		}
	})

	t.Run("PublishReachesInterestedNodesOnce", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 4)
		a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
		ctx := ctxFor(t)
		mustSubscribe(ctx, t, a, "orders") // the publisher's own interest: it delivers locally itself
		mustSubscribe(ctx, t, b, "orders")
		mustSubscribe(ctx, t, b, "orders") // twice is once
		mustSubscribe(ctx, t, c, "orders")
		mustSubscribe(ctx, t, d, "other")
		if err := a.bus.Publish(ctx, "orders", []byte("o1")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := a.bus.Publish(ctx, "other", []byte("end")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		// Markers published after o1 on each node's own topic: once a node
		// has its marker, o1 would have arrived already.
		if err := a.bus.Publish(ctx, "orders", []byte("end")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		for _, n := range []*node{b, c, d} {
			waitPublish(t, n, "end")
		}
		for _, n := range []*node{b, c} {
			if got := n.h.publishes(); !slices.Equal(got, []call{{"orders", "o1"}, {"orders", "end"}}) {
				t.Errorf("%s got publishes %q, want o1 then end on orders, once each", n.name, got)
			}
		}
		if got := d.h.publishes(); !slices.Equal(got, []call{{"other", "end"}}) {
			t.Errorf("%s (interested in other only) got %q, want only end on other", d.name, got)
		}
		if got := a.h.publishes(); len(got) != 0 {
			t.Errorf("the publisher's own handler got %q, want none", got)
		}
	})

	t.Run("TopicsAreLiteral", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		ctx := ctxFor(t)
		// Characters engines give meaning to (subject tokens, wildcards,
		// glob patterns) must match only themselves.
		subscribed := []string{"a.*", "a.>", "a?", "a[bc]", "x y", "ünï", "end"}
		for _, topic := range subscribed {
			mustSubscribe(ctx, t, b, topic)
		}
		published := []string{"a.b", "a.b.c", "ab", "ac", "a", "x", "ünï", "a.*", "end"}
		for _, topic := range published {
			if err := a.bus.Publish(ctx, topic, []byte(topic)); err != nil {
				t.Fatalf("Publish(%q): %v", topic, err)
			}
		}
		waitPublish(t, b, "end")
		want := []call{{"ünï", "ünï"}, {"a.*", "a.*"}, {"end", "end"}}
		if got := b.h.publishes(); !slices.Equal(got, want) {
			t.Errorf("subscribed to %q, publishing to %q delivered %q, want %q", subscribed, published, got, want)
		}
	})

	t.Run("UnsubscribeStopsDelivery", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		ctx := ctxFor(t)
		mustSubscribe(ctx, t, b, "t")
		mustSubscribe(ctx, t, b, "marker")
		if err := b.bus.Unsubscribe(ctx, "t"); err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
		if err := b.bus.Unsubscribe(ctx, "t"); err != nil {
			t.Errorf("Unsubscribe a second time = %v, want nil", err)
		}
		if err := b.bus.Unsubscribe(ctx, "never-subscribed"); err != nil {
			t.Errorf("Unsubscribe of an unknown topic = %v, want nil", err)
		}
		if err := a.bus.Publish(ctx, "t", []byte("after")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := a.bus.Publish(ctx, "marker", []byte("end")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		waitPublish(t, b, "end")
		if got := b.h.publishes(); !slices.Equal(got, []call{{"marker", "end"}}) {
			t.Errorf("after Unsubscribe(t), %s got %q, want only the marker", b.name, got)
		}
		// Interest can be declared again.
		mustSubscribe(ctx, t, b, "t")
		if err := a.bus.Publish(ctx, "t", []byte("again")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		waitPublish(t, b, "again")
	})

	t.Run("BroadcastReachesEveryOtherNodeOnce", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 3)
		a, b, c := nodes[0], nodes[1], nodes[2]
		ctx := ctxFor(t)
		for _, msg := range []string{"b1", "end"} {
			if err := a.bus.Broadcast(ctx, []byte(msg)); err != nil {
				t.Fatalf("Broadcast: %v", err)
			}
		}
		for _, n := range []*node{b, c} {
			testutil.Eventually(t, wait, func() bool { return slices.Contains(n.h.broadcasts(), "end") },
				"%s did not get the broadcast; got %q", n.name, n.h.broadcasts())
			if got := n.h.broadcasts(); !slices.Equal(got, []string{"b1", "end"}) {
				t.Errorf("%s got broadcasts %q, want b1 then end, once each", n.name, got)
			}
		}
		// a hears b's broadcast, sent after a's reached b, but never its own.
		if err := b.bus.Broadcast(ctx, []byte("from-b")); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
		testutil.Eventually(t, wait, func() bool { return slices.Contains(a.h.broadcasts(), "from-b") },
			"%s did not get %s's broadcast; got %q", a.name, b.name, a.h.broadcasts())
		if got := a.h.broadcasts(); !slices.Equal(got, []string{"from-b"}) {
			t.Errorf("%s got broadcasts %q, want only from-b (never its own)", a.name, got)
		}
	})

	t.Run("ConcurrentCalls", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 3)
		a, b, c := nodes[0], nodes[1], nodes[2]
		ctx := ctxFor(t)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errc := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				from, to := a, b
				if w%2 == 1 {
					from, to = c, b
				}
				for i := range each {
					if err := from.bus.Send(ctx, to.name, fmt.Sprintf("w%d-%d", w, i), []byte("x")); err != nil {
						errc <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatalf("Send: %v", err)
		}
		if n := len(b.h.sends()); n != workers*each {
			t.Errorf("%s got %d sends, want %d", b.name, n, workers*each)
		}
	})

	t.Run("CloseWaitsForHandlers", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newEngine, 2)
		a, b := nodes[0], nodes[1]
		started := make(chan struct{})
		var once sync.Once
		var done atomic.Bool
		b.h.set(func(r *recorder) {
			r.block = func() {
				once.Do(func() { close(started) })
				time.Sleep(200 * time.Millisecond) // a window in which a Close that does not wait returns
				done.Store(true)
			}
		})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_ = a.bus.Send(ctx, b.name, "c", []byte("x"))
		}()
		select {
		case <-started:
		case <-time.After(wait):
			t.Fatalf("%s's handler was not called", b.name)
		}
		if err := b.close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !done.Load() {
			t.Errorf("Close returned while a handler call was running")
		}
		calls := b.h.count()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if err := a.bus.Send(ctx, b.name, "c", []byte("y")); !errors.Is(err, conn.ErrGone) && !errors.Is(err, bus.ErrUnavailable) {
			t.Errorf("Send to a closed node: err = %v, want ErrGone or ErrUnavailable", err)
		}
		_ = a.bus.Broadcast(ctx, []byte("late"))
		if got := b.h.count(); got != calls {
			t.Errorf("a closed node's handler was called %d more times", got-calls)
		}
	})
}

// node is one bus joined to the engine, with the handler recording what reached it.
type node struct {
	name string
	bus  bus.Bus
	h    *recorder

	closeOnce sync.Once
	closeErr  error
}

func (n *node) close() error {
	n.closeOnce.Do(func() { n.closeErr = n.bus.Close() })
	return n.closeErr
}

// start joins n buses of one engine as nodes named after the test.
func start(t *testing.T, newEngine func(t *testing.T) func() bus.Bus, n int) []*node {
	t.Helper()
	newBus := newEngine(t)
	nodes := make([]*node, n)
	for i := range nodes {
		nd := &node{name: fmt.Sprintf("node-%c", 'a'+i), bus: newBus(), h: &recorder{}}
		t.Cleanup(func() {
			if err := nd.close(); err != nil {
				t.Errorf("Close(%s): %v", nd.name, err)
			}
		})
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		err := nd.bus.Run(ctx, nd.name, nd.h)
		cancel()
		if err != nil {
			t.Fatalf("Run(%s): %v", nd.name, err)
		}
		nodes[i] = nd
	}
	return nodes
}

// ctxFor bounds a test's calls.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

func mustSubscribe(ctx context.Context, t *testing.T, n *node, topic string) {
	t.Helper()
	if err := n.bus.Subscribe(ctx, topic); err != nil {
		t.Fatalf("Subscribe(%s, %q): %v", n.name, topic, err)
	}
}

func waitPublish(t *testing.T, n *node, data string) {
	t.Helper()
	testutil.Eventually(t, wait, func() bool {
		return slices.ContainsFunc(n.h.publishes(), func(c call) bool { return c.data == data })
	}, "%s did not get publish %q; got %q", n.name, data, n.h.publishes())
}

// call is one delivery: a connection or topic and the data.
type call struct{ to, data string }

// recorder is a bus.Handler that records every call. answer, state and
// block are set (through set) before the calls they affect.
type recorder struct {
	mu     sync.Mutex
	answer func(connID string) error
	state  conn.State
	block  func()
	calls  int
	send   []call
	disc   []string
	pub    []call
	bcast  []string
}

func (r *recorder) set(f func(*recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *recorder) enter() {
	r.mu.Lock()
	block := r.block
	r.mu.Unlock()
	if block != nil {
		block()
	}
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
}

func (r *recorder) reply(connID string) error {
	r.mu.Lock()
	answer := r.answer
	r.mu.Unlock()
	if answer != nil {
		return answer(connID)
	}
	return nil
}

func (r *recorder) HandleSend(connID string, data []byte) error {
	r.enter()
	r.mu.Lock()
	r.send = append(r.send, call{connID, string(data)})
	r.mu.Unlock()
	return r.reply(connID)
}

func (r *recorder) HandleDisconnect(connID string) error {
	r.enter()
	r.mu.Lock()
	r.disc = append(r.disc, connID)
	r.mu.Unlock()
	return r.reply(connID)
}

func (r *recorder) HandleDescribe(connID string) (conn.State, error) {
	r.enter()
	if err := r.reply(connID); err != nil {
		return conn.State{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, nil
}

func (r *recorder) HandlePublish(topic string, data []byte) {
	r.enter()
	r.mu.Lock()
	r.pub = append(r.pub, call{topic, string(data)})
	r.mu.Unlock()
}

func (r *recorder) HandleBroadcast(data []byte) {
	r.enter()
	r.mu.Lock()
	r.bcast = append(r.bcast, string(data))
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func (r *recorder) sends() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.send)
}

func (r *recorder) disconnects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.disc)
}

func (r *recorder) publishes() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pub)
}

func (r *recorder) broadcasts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bcast)
}
