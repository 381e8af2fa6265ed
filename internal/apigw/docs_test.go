package apigw

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// docs/cluster.md gives the node tag's cost in random bits and the chance
// that two nodes share a tag as the code makes them.
func TestDocsNodeTag(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	tags := 1 << NodeTagBits
	three := 100 * float64(3*3) / float64(2*tags) // n²/(2·tags): two of n nodes on one tag
	for _, want := range []string{
		fmt.Sprintf("(%d\nbits)", NodeTagBits),
		fmt.Sprintf("the other %d bits random", idBytes*8-NodeTagBits),
		fmt.Sprintf("a node alone keeps %d random bits", idBytes*8),
		fmt.Sprintf("costs %d of the %d\nrandom bits", NodeTagBits, idBytes*8),
		fmt.Sprintf("about n²/%d for n\nnodes (three nodes: about %.1f%%)", 2*tags, three),
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cluster.md lacks %q", want)
		}
	}
}
