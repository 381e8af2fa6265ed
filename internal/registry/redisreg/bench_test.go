package redisreg_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/redisreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// benchDir fills a directory with n records over three live nodes.
func benchDir(b *testing.B, n int) *redisreg.Directory {
	b.Helper()
	srv := testutil.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	d := redisreg.New(rdb, redisreg.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 3 {
		if err := d.KeepAlive(ctx, registry.Node{ID: fmt.Sprintf("n%d", i)}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		r := registry.Record{ConnID: fmt.Sprintf("conn-%06d", i), Node: fmt.Sprintf("n%d", i%3), ConnectedAt: time.Now()}
		if err := d.Add(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

func BenchmarkLookup(b *testing.B) {
	d := benchDir(b, 10000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := d.Lookup(ctx, fmt.Sprintf("conn-%06d", i%10000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkListPage reads one page of 100 from the middle of 10,000 records.
func BenchmarkListPage(b *testing.B) {
	d := benchDir(b, 10000)
	ctx := context.Background()
	for b.Loop() {
		p, err := d.List(ctx, "conn-005000", 100)
		if err != nil || len(p.Records) != 100 {
			b.Fatalf("List = %d records, %v", len(p.Records), err)
		}
	}
}
