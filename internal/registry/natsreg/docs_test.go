package natsreg

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the buckets and keys of this directory as the code
// makes them, with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	o := Options{}.withDefaults()
	testutil.DocContains(t, "../../../docs/cluster.md",
		"bucket `"+o.Bucket+"_conns`",
		"bucket `"+o.Bucket+"_nodes`",
		"`R1kmxc2VNjMCFIA=`: key `"+key("R1kmxc2VNjMCFIA=")+"`",
		"node `gw1`: key `"+key("gw1")+"`",
	)
}
