package natsqueue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/natsqueue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// longPoll starts a receive of q that waits up to MaxWait, and returns
// where its answer comes.
func longPoll(t *testing.T, s *natsqueue.Store) <-chan []queue.Message {
	t.Helper()
	got := make(chan []queue.Message, 1)
	go func() {
		msgs, err := s.Receive(ctxFor(t), "q", queue.ReceiveOptions{Wait: queue.MaxWait})
		if err != nil {
			t.Errorf("Receive = %v, want it to wait on", err)
		}
		got <- msgs
	}()
	return got
}

// pulling waits until the consumer of stream has n pulls waiting.
func pulling(t *testing.T, js jetstream.JetStream, stream string, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool {
		c, err := js.Consumer(ctxFor(t), stream, "receivers")
		if err != nil {
			return false
		}
		info, err := c.Info(ctxFor(t))
		return err == nil && info.NumWaiting >= n
	}, "%d pulls waiting at %s's consumer", n, stream)
}

// received fails the test unless the long poll answers with one message
// whose body is want.
func received(t *testing.T, got <-chan []queue.Message, want string) {
	t.Helper()
	select {
	case msgs := <-got:
		if len(msgs) != 1 || msgs[0].Body != want {
			t.Errorf("the long poll got %+v, want %s", msgs, want)
		}
	case <-time.After(queue.MaxWait + 10*time.Second):
		t.Fatal("the long poll did not answer")
	}
}

// TestLongPollServerShutdown: a long poll whose server shuts down (its
// pending pulls told "409 Server Shutdown") waits on, and gets the
// message sent once the server is back.
func TestLongPollServerShutdown(t *testing.T) {
	t.Parallel()
	o := natsembed.Options{Listen: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), StoreDir: t.TempDir()}
	engine, err := natsembed.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	nc, err := nats.Connect(engine.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, js, natsqueue.Options{Prefix: "down"}, queue.Declaration{Name: "q"})

	got := longPoll(t, s)
	pulling(t, js, "down_queue_q", 1)
	engine.Close()
	if engine, err = natsembed.Start(o); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, nc.IsConnected, "the client is back")
	send(t, s, "after")
	received(t, got, "after")
}

// TestLongPollLeaderChange: a long poll whose queue's consumer changes
// leader (its pending pulls told "409 Leadership Change") waits on, and
// gets the message sent after the change, on three servers.
func TestLongPollLeaderChange(t *testing.T) {
	t.Parallel()
	servers := cluster(t)
	js := connect(t, servers[0].ClientURL())
	var s *natsqueue.Store
	testutil.Eventually(t, 30*time.Second, func() bool { // while the servers choose a meta leader
		st, err := natsqueue.New(ctxFor(t), js, natsqueue.Options{Prefix: "lead", Replicas: 3})
		if err != nil {
			return false
		}
		if err := st.Declare(ctxFor(t), []queue.Declaration{{Name: "q"}}); err != nil {
			_ = st.Close()
			return false
		}
		s = st
		return true
	}, "a store on three servers")
	t.Cleanup(func() { _ = s.Close() })

	got := longPoll(t, s)
	pulling(t, js, "lead_queue_q", 1)
	c, err := js.Consumer(ctxFor(t), "lead_queue_q", "receivers")
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Info(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := js.Conn().Request("$JS.API.CONSUMER.LEADER.STEPDOWN.lead_queue_q.receivers", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Data), `"success":true`) {
		t.Fatalf("consumer leader stepdown: %s", resp.Data)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		ictx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := c.Info(ictx) // unanswered while the consumer has no leader
		return err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != before.Cluster.Leader
	}, "a new leader of the consumer")
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := s.Send(ctxFor(t), "q", []queue.Outgoing{{Body: "after"}})
		return err == nil
	}, "a send after the change")
	received(t, got, "after")
}

// cluster starts three routed servers, each given the same list of routes.
func cluster(t *testing.T) []*natsembed.Server {
	t.Helper()
	var listen, routes []string
	for range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		listen = append(listen, addr)
		routes = append(routes, "nats-route://"+addr)
	}
	var all []*natsembed.Server
	for i := range 3 {
		s, err := natsembed.Start(natsembed.Options{Name: fmt.Sprintf("s%d", i), ClusterListen: listen[i], Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		all = append(all, s)
	}
	return all
}
