package memreg_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/registry/registrytest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	registrytest.Run(t, func(*testing.T) registry.Registry { return memreg.New() })
}

func BenchmarkSubscribers(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			r := memreg.New()
			for i := range n {
				id := fmt.Sprintf("conn-%06d", i)
				if err := r.Add(ctx, registry.Record{ConnID: id, ConnectedAt: time.Now()}); err != nil {
					b.Fatal(err)
				}
				if err := r.Subscribe(ctx, id, "topic"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				ids, err := r.Subscribers(ctx, "topic")
				if err != nil || len(ids) != n {
					b.Fatalf("Subscribers = %d IDs, %v; want %d", len(ids), err, n)
				}
			}
		})
	}
}

func BenchmarkAddRemove(b *testing.B) {
	ctx := context.Background()
	r := memreg.New()
	rec := registry.Record{ConnID: "R1kmxc2VNjMCFIA=", Node: "node-1", ConnectedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Add(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if err := r.Subscribe(ctx, rec.ConnID, "topic"); err != nil {
			b.Fatal(err)
		}
		if err := r.Remove(ctx, rec.ConnID); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDirectoryConformance(t *testing.T) {
	t.Parallel()
	registrytest.RunDirectory(t, func(*testing.T) registry.Directory { return memreg.New() })
}

func TestLeaserConformance(t *testing.T) {
	t.Parallel()
	registrytest.RunLeaser(t, func(*testing.T) func() registrytest.Leased {
		r := memreg.New()
		return func() registrytest.Leased { return r }
	})
}
