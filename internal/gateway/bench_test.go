package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
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
