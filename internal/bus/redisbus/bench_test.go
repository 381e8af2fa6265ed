package redisbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/bus/redisbus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// counter is a Handler that accepts every send and counts deliveries.
type counter struct{ sends, pubs atomic.Int64 }

func (c *counter) HandleSend(string, []byte) error           { c.sends.Add(1); return nil }
func (c *counter) HandleDisconnect(string) error             { return nil }
func (c *counter) HandleDescribe(string) (conn.State, error) { return conn.State{}, nil }
func (c *counter) HandlePublish(string, []byte)              { c.pubs.Add(1) }
func (c *counter) HandleBroadcast([]byte)                    {}

func benchJoin(b *testing.B, addr, node string, h *counter) *redisbus.Bus {
	b.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	bs := redisbus.New(rdb, redisbus.Options{Prefix: "bench:"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bs.Run(ctx, node, h); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bs.Close(); _ = rdb.Close() })
	return bs
}

// BenchmarkSend measures one addressed call to another node and its answer
// (PostToConnection through a node that does not hold the connection).
func BenchmarkSend(b *testing.B) {
	srv := testutil.StartRedis(b)
	a := benchJoin(b, srv.Addr, "a", &counter{})
	hb := &counter{}
	benchJoin(b, srv.Addr, "b", hb)
	data := make([]byte, 128)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := a.Send(ctx, "b", "conn", data); err != nil {
			b.Fatal(err)
		}
	}
	if got := hb.sends.Load(); got < int64(b.N) {
		b.Fatalf("b got %d sends, want %d", got, b.N)
	}
}

// BenchmarkPublish measures publishing a 128-byte message to a topic one
// other node subscribed, until that node received every one.
func BenchmarkPublish(b *testing.B) {
	srv := testutil.StartRedis(b)
	a := benchJoin(b, srv.Addr, "a", &counter{})
	hb := &counter{}
	sub := benchJoin(b, srv.Addr, "b", hb)
	ctx := context.Background()
	if err := sub.Subscribe(ctx, "t"); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if err := a.Publish(ctx, "t", data); err != nil {
			b.Fatal(err)
		}
		n++
	}
	testutil.Eventually(b, 30*time.Second, func() bool { return hb.pubs.Load() == int64(n) }, "%d of %d publications received", hb.pubs.Load(), n)
}
