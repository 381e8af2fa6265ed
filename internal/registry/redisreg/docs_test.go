package redisreg

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the keys of this directory as the code makes them,
// with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	d := New(nil, Options{})
	testutil.DocContains(t, "../../../docs/cluster.md",
		"key `"+d.key("conn:")+"<id>`",
		"key `"+d.key("conns")+"`",
		"key `"+d.key("nodeconns:")+"<node>`",
		"key `"+d.key("lease:")+"<node>`",
		"key `"+d.key("nodes")+"`",
		"`"+d.key("conn:", "R1kmxc2VNjMCFIA=")+"`",
		"`"+d.key("nodeconns:", "gw1")+"`",
		"`"+d.key("lease:", "gw1")+"`",
	)
}
