package redisqueue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/redisqueue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// BenchmarkSendReceiveDelete measures a batch of ten messages sent,
// received and deleted, one call at a time, on a queue that holds a
// backlog of delayed messages (the receive script skips them by score).
func BenchmarkSendReceiveDelete(b *testing.B) {
	for _, backlog := range []int{0, 10000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			r := testutil.StartRedis(b)
			s := node(b, r.Addr, "", redisqueue.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Declare(ctx, []queue.Declaration{{Name: "q"}}); err != nil {
				b.Fatal(err)
			}
			later := queue.MaxDelay
			batch := make([]queue.Outgoing, queue.MaxBatch)
			for i := range batch {
				batch[i] = queue.Outgoing{Body: fmt.Sprintf("message %d", i), Delay: &later}
			}
			for range backlog / queue.MaxBatch {
				if _, err := s.Send(ctx, "q", batch); err != nil {
					b.Fatal(err)
				}
			}
			for i := range batch {
				batch[i].Delay = nil
			}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Send(ctx, "q", batch); err != nil {
					b.Fatal(err)
				}
				got, err := s.Receive(ctx, "q", queue.ReceiveOptions{Max: queue.MaxBatch})
				if err != nil || len(got) != queue.MaxBatch {
					b.Fatalf("Receive = %d messages, %v", len(got), err)
				}
				for _, m := range got {
					if err := s.Delete(ctx, "q", m.ReceiptHandle); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*queue.MaxBatch), "µs/msg")
		})
	}
}
