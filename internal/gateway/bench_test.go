package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
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
				if err := hub.Subscribe(ctx, c.ConnID, "bench"); err != nil {
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
