package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// BenchmarkBroadcast measures one broadcast of a 100-byte message to N local
// connections, until every client has read it: the encode-once fan-out path.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			gw, url := startGatewayTB(b, gateway.Options{})
			received := make(chan struct{}, n*64)
			for range n {
				c := testutil.Dial(b, url, nil)
				go func() {
					for {
						if _, _, err := c.Read(context.Background()); err != nil {
							return
						}
						received <- struct{}{}
					}
				}()
			}
			testutil.Eventually(b, 10*time.Second, func() bool { return gw.Hub().Count() == n }, "%d connections", n)
			msg := []byte(strings.Repeat("x", 100))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := gw.Hub().Broadcast(context.Background(), msg); err != nil {
					b.Fatal(err)
				}
				for range n {
					<-received
				}
			}
			b.ReportMetric(float64(n), "deliveries/op")
		})
	}
}

// BenchmarkRoundTrip measures one message routed to a two-way route and its
// answer read back by the client: the per-message path (route selection,
// the route table, the invocation), inline and on a drainer.
func BenchmarkRoundTrip(b *testing.B) {
	for _, inline := range []bool{true, false} {
		b.Run(fmt.Sprintf("inline=%v", inline), func(b *testing.B) {
			echo := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
				return &integration.Response{Body: req.Body}, nil
			})
			_, url := startGatewayTB(b, gateway.Options{Routes: map[string]gateway.Route{
				"echo": {Integration: echo, RouteResponse: true, Inline: inline},
			}})
			c := testutil.Dial(b, url, nil)
			msg := []byte(`{"action":"echo","data":"0123456789"}`)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublish measures one publish of a 100-byte message to a topic
// with N local subscribers (and as many connections that are not), until
// every subscriber has read it.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			gw, url := startGatewayTB(b, gateway.Options{})
			received := make(chan struct{}, n*64)
			for range 2 * n {
				c := testutil.Dial(b, url, nil)
				go func() {
					for {
						if _, _, err := c.Read(context.Background()); err != nil {
							return
						}
						received <- struct{}{}
					}
				}()
			}
			hub, ctx := gw.Hub(), context.Background()
			testutil.Eventually(b, 10*time.Second, func() bool { return hub.Count() == 2*n }, "%d connections", 2*n)
			conns, _, err := hub.List(ctx, "", 2*n)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range conns[:n] {
				if err := hub.Subscribe(ctx, c.ConnID, "bench", -1); err != nil {
					b.Fatal(err)
				}
			}
			msg := []byte(strings.Repeat("x", 100))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := hub.Publish(ctx, "bench", msg); err != nil {
					b.Fatal(err)
				}
				for range n {
					<-received
				}
			}
			b.ReportMetric(float64(n), "deliveries/op")
		})
	}
}

// BenchmarkPublishHistory measures publish-to-deliver latency (one publish
// of 100 bytes until each of 10 subscribers read it) on two gateways of
// the same run, one op of each per iteration, in turn first, so that both
// see the same machine: history off (plain subscribers), and history on with every
// subscriber taking the envelope. It reports each one's mean and their
// ratio (on ÷ off).
func BenchmarkPublishHistory(b *testing.B) {
	const n = 10
	type side struct {
		hub      *gateway.Hub
		received chan struct{}
		total    time.Duration
	}
	setup := func(kept bool) *side {
		var rules []history.Rule
		subscribe := `{"action":"subscribe","topic":"bench"}`
		if kept {
			rules = []history.Rule{{Topics: "bench"}}
			subscribe = `{"action":"subscribe","topic":"bench","history":true}`
		}
		hub, url := startHistoryGateway(b, rules...)
		s := &side{hub: hub, received: make(chan struct{}, n*64)}
		for range n {
			c := testutil.Dial(b, url, nil)
			if kept {
				subscribeKept(b, c, subscribe)
			} else {
				testutil.Write(b, c, subscribe)
			}
			go func() {
				for {
					if _, _, err := c.Read(context.Background()); err != nil {
						return
					}
					s.received <- struct{}{}
				}
			}()
		}
		testutil.Eventually(b, 10*time.Second, func() bool {
			got, err := hub.Publish(context.Background(), "bench", []byte("warm-up"))
			if err != nil {
				b.Fatal(err)
			}
			for range got {
				<-s.received
			}
			return got == n
		}, "%d subscribers", n)
		return s
	}
	off, on := setup(false), setup(true)
	msg := []byte(strings.Repeat("x", 100))
	ctx := context.Background()
	b.ReportAllocs()
	order := []*side{off, on}
	for b.Loop() {
		order[0], order[1] = order[1], order[0] // neither always goes first
		for _, s := range order {
			start := time.Now()
			if _, err := s.hub.Publish(ctx, "bench", msg); err != nil {
				b.Fatal(err)
			}
			for range n {
				<-s.received
			}
			s.total += time.Since(start)
		}
	}
	b.ReportMetric(float64(off.total.Nanoseconds())/float64(b.N), "off-ns/publish")
	b.ReportMetric(float64(on.total.Nanoseconds())/float64(b.N), "on-ns/publish")
	b.ReportMetric(float64(on.total)/float64(off.total), "on/off")
}
