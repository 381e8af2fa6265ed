package redisbus

import (
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the channels of this bus as the code makes them,
// with examples computed here, and the period of its health ping.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	b := New(nil, Options{})
	testutil.DocContains(t, "../../../docs/cluster.md",
		"channel `"+b.nodeChan("")+"<node>`",
		"channel `"+b.replyChan("")+"<node>`",
		"channel `"+b.topicChan("")+"<topic>`",
		"channel `"+b.broadcastChan()+"`",
		"node `gw1`: `"+b.nodeChan("gw1")+"`",
		"node `gw1`: `"+b.replyChan("gw1")+"`",
		"topic `orders`: `"+b.topicChan("orders")+"`",
		"checks every second that its own subscription delivers",
	)
	if b.opts.HealthInterval != time.Second {
		t.Errorf("HealthInterval = %v; docs/cluster.md says the check runs every second", b.opts.HealthInterval)
	}
}
