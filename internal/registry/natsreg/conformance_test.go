package natsreg_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/natsreg"
	"github.com/switchboard-gateway/switchboard/internal/registry/registrytest"
)

// TestConformance runs the directory and lease suites against one engine
// of each kind; each subtest gets its own buckets.
func TestConformance(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			var n atomic.Int64
			opts := func() natsreg.Options {
				return natsreg.Options{Bucket: fmt.Sprintf("conf%d", n.Add(1)), MaxTTL: 10 * time.Minute, SweepInterval: 100 * time.Millisecond}
			}
			t.Run("Directory", func(t *testing.T) {
				registrytest.RunDirectory(t, func(t *testing.T) registry.Directory {
					d := open(t, url, opts())
					// The suite's records name node-0 to node-2: give them
					// leases, which RunLeaser is about.
					for i := range 3 {
						if err := d.KeepAlive(ctx10(t), registry.Node{ID: fmt.Sprintf("node-%d", i)}, 10*time.Minute); err != nil {
							t.Fatal(err)
						}
					}
					return d
				})
			})
			t.Run("Leaser", func(t *testing.T) {
				registrytest.RunLeaser(t, func(t *testing.T) func() registrytest.Leased {
					o := opts()
					return func() registrytest.Leased { return open(t, url, o) }
				})
			})
		})
	}
}
