package membus_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/bus/bustest"
	"github.com/switchboard-gateway/switchboard/internal/bus/membus"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	bustest.Run(t, func(*testing.T) func() bus.Bus {
		e := new(membus.Engine)
		return func() bus.Bus { return e.NewBus() }
	})
}
