package natsreg

import (
	"os"
	"strings"
	"testing"
)

// docs/cluster.md names the buckets and keys of this directory as the code
// makes them, with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{}.withDefaults()
	for _, want := range []string{
		"bucket `" + o.Bucket + "_conns`",
		"bucket `" + o.Bucket + "_nodes`",
		"`R1kmxc2VNjMCFIA=`: key `" + key("R1kmxc2VNjMCFIA=") + "`",
		"node `gw1`: key `" + key("gw1") + "`",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cluster.md lacks %q", want)
		}
	}
}
