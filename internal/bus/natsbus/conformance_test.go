package natsbus_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/bus/bustest"
	"github.com/switchboard-gateway/switchboard/internal/bus/natsbus"
)

// TestConformance runs the bus suite against one engine of each kind; each
// subtest is isolated by its own subject prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			var n atomic.Int64
			bustest.Run(t, func(t *testing.T) func() bus.Bus {
				prefix := fmt.Sprintf("conf%d", n.Add(1))
				return func() bus.Bus {
					nc, err := natsbus.Connect(url, natsbus.ConnectOptions{})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(nc.Close)
					return natsbus.New(nc, natsbus.Options{Prefix: prefix})
				}
			})
		})
	}
}
