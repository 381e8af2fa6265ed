package redisbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/bus/bustest"
	"github.com/switchboard-gateway/switchboard/internal/bus/redisbus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var prefixSeq atomic.Int64

func client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestConformance(t *testing.T) {
	srv := testutil.StartRedis(t)
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		prefix := fmt.Sprintf("c%d:", prefixSeq.Add(1)) // each subtest its own cluster
		return func() bus.Bus {
			return redisbus.New(client(t, srv.Addr), redisbus.Options{Prefix: prefix})
		}
	})
}

// recorder is a bus.Handler that records publications.
type recorder struct {
	mu   sync.Mutex
	pubs []string
	bcs  []string
}

func (r *recorder) HandleSend(string, []byte) error { return conn.ErrGone }
func (r *recorder) HandleDisconnect(string) error   { return conn.ErrGone }
func (r *recorder) HandleDescribe(string) (conn.State, error) {
	return conn.State{}, conn.ErrGone
}

func (r *recorder) HandlePublish(topic string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubs = append(r.pubs, topic+"="+string(data))
}

func (r *recorder) HandleBroadcast(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bcs = append(r.bcs, string(data))
}

func (r *recorder) has(pub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pubs {
		if p == pub {
			return true
		}
	}
	return false
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func join(t *testing.T, addr, prefix, node string, opts redisbus.Options) (*redisbus.Bus, *recorder) {
	t.Helper()
	opts.Prefix = prefix
	b := redisbus.New(client(t, addr), opts)
	h := &recorder{}
	if err := b.Run(ctx(t), node, h); err != nil {
		t.Fatalf("Run(%s): %v", node, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, h
}

var fast = redisbus.Options{HealthInterval: 100 * time.Millisecond, CallTimeout: time.Second}

// TestRestart kills redis-server mid-traffic and starts it again on the
// same port: calls during the outage fail and are counted, Health reports
// the outage, and afterwards the bus delivers again, topic interest
// included, with no new Subscribe.
func TestRestart(t *testing.T) {
	srv := testutil.StartRedis(t)
	a, _ := join(t, srv.Addr, "r:", "a", fast)
	b, hb := join(t, srv.Addr, "r:", "b", fast)
	if err := b.Subscribe(ctx(t), "orders"); err != nil {
		t.Fatal(err)
	}
	n := 0
	publish := func() (string, error) {
		n++
		msg := fmt.Sprintf("m%d", n)
		return "orders=" + msg, a.Publish(ctx(t), "orders", []byte(msg))
	}
	want, err := publish()
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return hb.has(want) }, "publication before the outage")

	srv.Kill()
	testutil.Eventually(t, 10*time.Second, func() bool { return a.Health(ctx(t)) != nil }, "Health still nil with Redis down")
	before := a.Stats().Failed
	if _, err := publish(); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish with Redis down = %v, want ErrUnavailable", err)
	}
	if err := a.Broadcast(ctx(t), []byte("x")); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Broadcast with Redis down = %v, want ErrUnavailable", err)
	}
	if err := a.Send(ctx(t), "b", "c1", []byte("x")); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Send with Redis down = %v, want ErrUnavailable", err)
	}
	if got := a.Stats().Failed - before; got != 3 {
		t.Errorf("Stats().Failed grew by %d during the outage, want 3", got)
	}
	if err := a.Health(ctx(t)); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Health with Redis down = %v, want ErrUnavailable", err)
	}
	// Interest declared during the outage fails now and holds afterwards.
	if err := b.Subscribe(ctx(t), "late"); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Subscribe with Redis down = %v, want ErrUnavailable", err)
	}

	srv.Start()
	for _, x := range []*redisbus.Bus{a, b} {
		testutil.Eventually(t, 15*time.Second, func() bool { return x.Health(ctx(t)) == nil }, "Health after Redis came back")
	}
	// b declared its interest again by itself.
	testutil.Eventually(t, 10*time.Second, func() bool {
		want, err := publish()
		if err != nil {
			return false
		}
		return hb.has(want)
	}, "publication after the restart")
	testutil.Eventually(t, 10*time.Second, func() bool {
		return a.Publish(ctx(t), "late", []byte("x")) == nil && hb.has("late=x")
	}, "publication to a topic subscribed during the outage")
	// Addressed calls work again: b answers that it does not hold c1.
	if err := a.Send(ctx(t), "b", "c1", []byte("x")); !errors.Is(err, conn.ErrGone) {
		t.Errorf("Send after the restart = %v, want b's answer ErrGone", err)
	}
}

// TestSilentStop freezes redis-server (connections stay open, nothing is
// delivered): Health must fail although no connection dropped, and recover.
func TestSilentStop(t *testing.T) {
	srv := testutil.StartRedis(t)
	a, _ := join(t, srv.Addr, "s:", "a", fast)
	if err := a.Health(ctx(t)); err != nil {
		t.Fatalf("Health once joined = %v", err)
	}
	srv.Stop()
	testutil.Eventually(t, 10*time.Second, func() bool { return a.Health(ctx(t)) != nil }, "Health still nil with Redis frozen")
	srv.Cont()
	testutil.Eventually(t, 10*time.Second, func() bool { return a.Health(ctx(t)) == nil }, "Health after Redis resumed")
}

// TestMalformed sends garbage to a node's channels: it is counted and
// dropped, and the node keeps serving.
func TestMalformed(t *testing.T) {
	srv := testutil.StartRedis(t)
	a, _ := join(t, srv.Addr, "m:", "a", redisbus.Options{})
	b, hb := join(t, srv.Addr, "m:", "b", redisbus.Options{})
	raw := client(t, srv.Addr)
	for _, p := range []string{"", "\x01", "\x01\x03\x01\xff", "\x01\x01\x00\x00\x05ab", "not an envelope at all"} {
		for _, ch := range []string{"m:broadcast", "m:node:Yg"} { // Yg: node "b" base64url
			if err := raw.Publish(ctx(t), ch, p).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Subscribe(ctx(t), "t"); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx(t), "t", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return hb.has("t=ok") }, "delivery after garbage")
	if got := b.Stats().Malformed; got != 10 {
		t.Errorf("Stats().Malformed = %d, want 10", got)
	}
}

// TestPrefixIsolation runs two clusters on one server with the same node names.
func TestPrefixIsolation(t *testing.T) {
	srv := testutil.StartRedis(t)
	a1, _ := join(t, srv.Addr, "one:", "a", redisbus.Options{})
	_, h1 := join(t, srv.Addr, "one:", "b", redisbus.Options{})
	_, h2 := join(t, srv.Addr, "two:", "b", redisbus.Options{})
	if err := a1.Broadcast(ctx(t), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := a1.Broadcast(ctx(t), []byte("marker")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		h1.mu.Lock()
		defer h1.mu.Unlock()
		return len(h1.bcs) == 2
	}, "broadcasts within the cluster")
	h2.mu.Lock()
	defer h2.mu.Unlock()
	if len(h2.bcs) != 0 {
		t.Errorf("another cluster's node got %q", h2.bcs)
	}
}

func TestNotRunning(t *testing.T) {
	srv := testutil.StartRedis(t)
	b := redisbus.New(client(t, srv.Addr), redisbus.Options{})
	if err := b.Publish(ctx(t), "t", nil); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish before Run = %v, want ErrUnavailable", err)
	}
	if err := b.Health(ctx(t)); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Health before Run = %v, want ErrUnavailable", err)
	}
	if err := b.Run(ctx(t), "", nil); err == nil {
		t.Error("Run without a node: no error")
	}
	// Run against a server that is not there gives up when ctx ends.
	dead := redisbus.New(client(t, "127.0.0.1:1"), redisbus.Options{})
	c, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := dead.Run(c, "n", &recorder{}); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Run with no server = %v, want ErrUnavailable", err)
	}
}

// TestSubscribeBeforeRun: interest declared before joining holds once joined.
func TestSubscribeBeforeRun(t *testing.T) {
	srv := testutil.StartRedis(t)
	a, _ := join(t, srv.Addr, "p:", "a", redisbus.Options{})
	b := redisbus.New(client(t, srv.Addr), redisbus.Options{Prefix: "p:"})
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Subscribe(ctx(t), "early"); err != nil {
		t.Fatalf("Subscribe before Run: %v", err)
	}
	hb := &recorder{}
	if err := b.Run(ctx(t), "b", hb); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx(t), "early", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return hb.has("early=x") }, "publication to a topic subscribed before Run")
}
