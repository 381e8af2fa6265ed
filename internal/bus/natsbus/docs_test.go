package natsbus

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// docs/cluster.md names the subjects, headers and limits of this bus as the
// code makes them, with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	b := New(nil, Options{})
	for _, want := range []string{
		"`" + strings.TrimSuffix(b.nodeSubject(""), encode("")) + "<node>`",
		"`" + strings.TrimSuffix(b.topicSubject(""), encode("")) + "<topic>`",
		"`" + b.allSubject() + "`",
		"node `gw1`: `" + b.nodeSubject("gw1") + "`",
		"topic `orders`: `" + b.topicSubject("orders") + "`",
		"header `" + hdrOp + "`: " + strings.Join([]string{opSend, opDisconnect, opDescribe, opPing}, ", "),
		fmt.Sprintf("NATS: more than %d waiting", b.opts.QueueLen),
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cluster.md lacks %q", want)
		}
	}
}
