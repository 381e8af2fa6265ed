package redisreg

import (
	"os"
	"strings"
	"testing"
)

// docs/cluster.md names the keys of this directory as the code makes them,
// with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	d := New(nil, Options{})
	for _, want := range []string{
		"key `" + d.key("conn:") + "<id>`",
		"key `" + d.key("conns") + "`",
		"key `" + d.key("nodeconns:") + "<node>`",
		"key `" + d.key("lease:") + "<node>`",
		"key `" + d.key("nodes") + "`",
		"`" + d.key("conn:", "R1kmxc2VNjMCFIA=") + "`",
		"`" + d.key("nodeconns:", "gw1") + "`",
		"`" + d.key("lease:", "gw1") + "`",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cluster.md lacks %q", want)
		}
	}
}
