package memreg_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/registry/registrytest"
)

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
