package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// consumerEngine is an engine the consumers' test runs the cluster on,
// with the stream the consumers read.
type consumerEngine struct {
	name string
	// setup starts the engine and returns the cluster's flavour, the
	// consumer's source settings, a function that adds events, and one
	// that tells how many events a node has taken and not acknowledged,
	// where the engine says so per node (known is false where it does not).
	setup func(t *testing.T) (f flavour, source string, add func(t *testing.T, events []string), held heldFunc)
}

// heldFunc tells how many events node has taken and not acknowledged.
type heldFunc func(t *testing.T, node string) (n int64, known bool)

var consumerEngines = []consumerEngine{
	{"nats", func(t *testing.T) (flavour, string, func(*testing.T, []string), heldFunc) {
		n := testutil.StartNATS(t)
		nc, err := nats.Connect(n.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(bounded(t), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
			t.Fatal(err)
		}
		f := flavour{"nats", func(*testing.T) (func(int) []string, *engine) {
			return func(int) []string { return []string{"--cluster", n.URL} }, nil
		}}
		add := func(t *testing.T, events []string) {
			futures := make([]jetstream.PubAckFuture, 0, len(events))
			for _, e := range events {
				pf, err := js.PublishAsync("events.feed", []byte(e))
				if err != nil {
					t.Fatal(err)
				}
				futures = append(futures, pf)
			}
			for _, pf := range futures {
				select {
				case <-pf.Ok():
				case err := <-pf.Err():
					t.Fatal(err)
				case <-time.After(10 * time.Second):
					t.Fatal("no acknowledgement from JetStream within 10s")
				}
			}
		}
		return f, "nats: {stream: EVENTS, subjects: [events.>], ackWait: 2s}", add,
			func(*testing.T, string) (int64, bool) { return 0, false } // one durable consumer for every node
	}},
	{"redis", func(t *testing.T) (flavour, string, func(*testing.T, []string), heldFunc) {
		r := testutil.StartRedis(t)
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
		t.Cleanup(func() { _ = rdb.Close() })
		f := flavour{"redis", func(*testing.T) (func(int) []string, *engine) {
			return func(int) []string { return []string{"--cluster", "redis://" + r.Addr} }, nil
		}}
		add := func(t *testing.T, events []string) {
			p := rdb.Pipeline()
			for _, e := range events {
				p.XAdd(bounded(t), &redis.XAddArgs{Stream: "events", Values: map[string]any{"data": e}})
			}
			if _, err := p.Exec(bounded(t)); err != nil {
				t.Fatal(err)
			}
		}
		held := func(t *testing.T, node string) (int64, bool) {
			p, err := rdb.XPending(bounded(t), "events", "switchboard-feed").Result()
			if err != nil {
				t.Fatal(err)
			}
			return p.Consumers[node], true
		}
		return f, "redis: {stream: events, minIdle: 2s}", add, held
	}},
}

// TestConsumerNodeKilled: three gateways consume one stream into a topic
// whose subscriber is on node-b. node-a is SIGKILLed while events flow:
// the events it had taken and not acknowledged come back to node-b or
// node-c, and the subscriber receives every event, each once (one more
// copy at most: the event node-a was publishing when it died).
func TestConsumerNodeKilled(t *testing.T) {
	for _, ce := range consumerEngines {
		t.Run(ce.name, func(t *testing.T) {
			f, source, add, heldBy := ce.setup(t)
			cl := startClusterConfig(t, f, fmt.Sprintf(`consumers:
  - name: feed
    %s
    topic: ${room}
    data: $.body
    idempotencyKey: $.id
    publishTimeout: 1s
    batch: 50
    backoff: [100ms]
`, source))
			a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
			sub := dial(t, b, "sub")
			sub.send(t, `{"action":"subscribe","entityId":"feed"}`)
			// The subscription reaches every node's interest: probe until
			// an event published through the stream arrives.
			polls := 0
			testutil.Eventually(t, 30*time.Second, func() bool {
				if polls%20 == 0 { // a new probe every 20 polls (200ms) until one arrives
					add(t, []string{fmt.Sprintf(`{"id":"probe-%d","room":"feed","body":"probe"}`, polls)})
				}
				polls++
				return sub.has("probe")
			}, "a probe event reaches the subscriber on node-b")

			const n = 3000
			events := make([]string, n)
			for i := range events {
				events[i] = fmt.Sprintf(`{"id":"ev-%d","room":"feed","body":"e-%d"}`, i, i)
			}
			add(t, events)
			testutil.Eventually(t, 30*time.Second, func() bool { return received(sub) >= n/10 }, "a tenth of the events arrive")
			if err := a.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			a.wait(t)
			// Read before the others claim node-a's events (minIdle 2s).
			held, known := heldBy(t, "node-a")
			atKill := received(sub)
			testutil.Eventually(t, 60*time.Second, func() bool { return received(sub) == n },
				"every event reaches the subscriber after node-a's death; %d of %d", lazy(func() string { return fmt.Sprint(received(sub)) }), n)
			redelivered := 0
			for _, nd := range []*node{b, c} {
				redelivered += counter(t, metricsOf(t, nd), `switchboard_consumer_redeliveries_total{consumer="feed"}`)
			}
			switch {
			case redelivered == 0 && (!known || held > 0):
				t.Errorf("node-b and node-c counted no redelivery: node-a's %d pending events did not come back to them", held)
			case redelivered == 0:
				t.Logf("node-a held no pending event when it was killed: nothing to redeliver")
			}
			dups := 0
			counts := map[string]int{}
			sub.mu.Lock()
			for _, m := range sub.got {
				if strings.HasPrefix(m, "e-") {
					if counts[m]++; counts[m] > 1 {
						dups++
					}
				}
			}
			sub.mu.Unlock()
			if dups > 1 {
				t.Errorf("the subscriber received %d copies beyond the first, want at most 1", dups)
			}
			t.Logf("%s: node-a SIGKILLed after %d of %d events; all arrived, %d redelivered to node-b and node-c, %d duplicate(s)",
				ce.name, atKill, n, redelivered, dups)
		})
	}
}

// received counts the distinct events c received.
func received(c *client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, m := range c.got {
		if strings.HasPrefix(m, "e-") {
			seen[m] = true
		}
	}
	return len(seen)
}
