package redisbus

import (
	"os"
	"strings"
	"testing"
	"time"
)

// docs/cluster.md names the channels of this bus as the code makes them,
// with examples computed here, and the period of its health ping.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	b := New(nil, Options{})
	for _, want := range []string{
		"channel `" + b.nodeChan("") + "<node>`",
		"channel `" + b.replyChan("") + "<node>`",
		"channel `" + b.topicChan("") + "<topic>`",
		"channel `" + b.broadcastChan() + "`",
		"node `gw1`: `" + b.nodeChan("gw1") + "`",
		"node `gw1`: `" + b.replyChan("gw1") + "`",
		"topic `orders`: `" + b.topicChan("orders") + "`",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cluster.md lacks %q", want)
		}
	}
	if b.opts.HealthInterval != time.Second || !strings.Contains(string(doc), "checks every second that its own subscription delivers") {
		t.Errorf("HealthInterval = %v; docs/cluster.md says the check runs every second", b.opts.HealthInterval)
	}
}
