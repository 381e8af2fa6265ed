package redisreg_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/redisreg"
	"github.com/switchboard-gateway/switchboard/internal/registry/registrytest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func TestDirectoryConformance(t *testing.T) {
	srv := testutil.StartRedis(t)
	registrytest.RunDirectory(t, func(t *testing.T) registry.Directory {
		d, _ := newDir(t, srv)
		// Records count only while their holder holds a lease: lease the
		// nodes the suite names, as every node of a cluster does at start.
		for i := range 3 {
			keepAlive(t, d, fmt.Sprintf("node-%d", i), time.Hour)
		}
		return d
	})
}

func TestLeaserConformance(t *testing.T) {
	srv := testutil.StartRedis(t)
	registrytest.RunLeaser(t, func(t *testing.T) func() registrytest.Leased {
		prefix := fmt.Sprintf("t%d:", prefixSeq.Add(1))
		return func() registrytest.Leased {
			return redisreg.New(clientFor(t, srv), redisreg.Options{Prefix: prefix})
		}
	})
}
