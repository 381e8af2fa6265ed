package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// BenchmarkClusterPublishHistory measures publish-to-deliver latency on a
// cluster of two gateways, history off against on in the same run: one
// POST /@topics/{topic} of 100 bytes to node A, until each of 10
// subscribers on node B read it. "off" is a topic no rule keeps (over the
// bus), "on" one kept in the engine, its subscribers taking the envelope.
// One op of each per iteration, in turn first. It reports each one's mean
// and their ratio (on ÷ off), per engine: embedded NATS (JetStream) and a
// redis-server process.
func BenchmarkClusterPublishHistory(b *testing.B) {
	engines := map[string]func(b *testing.B) string{
		"nats": func(b *testing.B) string {
			s, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			return s.ClientURL()
		},
		"redis": func(b *testing.B) string { return "redis://" + testutil.StartRedis(b).Addr },
	}
	for _, name := range []string{"nats", "redis"} {
		b.Run("engine="+name, func(b *testing.B) {
			url := engines[name](b)
			cfg := fmt.Sprintf("cluster: {url: %q}\nhistory: [{topics: kept, size: 1000}]\n", url)
			a, sb := servertest.StartYAML(b, cfg), servertest.StartYAML(b, cfg)
			const n = 10
			type side struct {
				topic    string
				received chan struct{}
				total    time.Duration
			}
			client := &http.Client{Timeout: 10 * time.Second}
			publish := func(topic string, body string) {
				resp, err := client.Post(a.HTTP+"/@topics/"+topic, "text/plain", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("publish to %s: status %d", topic, resp.StatusCode)
				}
			}
			setup := func(topic, subscribe string) *side {
				s := &side{topic: topic, received: make(chan struct{}, n*64)}
				for range n {
					c := testutil.Dial(b, sb.WS, nil)
					testutil.Write(b, c, subscribe)
					if strings.Contains(subscribe, "history") {
						testutil.ReadText(b, c) // the subscribed message
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
				// Ready once a publication reaches every subscriber.
				got := 0
				testutil.Eventually(b, 10*time.Second, func() bool {
					publish(topic, "warm-up")
					deadline := time.After(time.Second) // how long one warm-up may take to arrive
					for got < n {
						select {
						case <-s.received:
							got++
						case <-deadline:
							return false
						}
					}
					return true
				}, "%d subscribers of %s", n, topic)
				for len(s.received) > 0 { // warm-ups that arrived late
					<-s.received
				}
				return s
			}
			off := setup("plain", `{"action":"subscribe","topic":"plain"}`)
			on := setup("kept", `{"action":"subscribe","topic":"kept","history":true}`)
			msg := strings.Repeat("x", 100)
			order := []*side{off, on}
			for b.Loop() {
				order[0], order[1] = order[1], order[0] // neither always goes first
				for _, s := range order {
					start := time.Now()
					publish(s.topic, msg)
					for range n {
						<-s.received
					}
					s.total += time.Since(start)
				}
			}
			b.ReportMetric(float64(off.total.Nanoseconds())/float64(b.N), "off-ns/publish")
			b.ReportMetric(float64(on.total.Nanoseconds())/float64(b.N), "on-ns/publish")
			b.ReportMetric(float64(on.total)/float64(off.total), "on/off")
		})
	}
}
