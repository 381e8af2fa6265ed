package natsbus

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the subjects, headers and limits of this bus as the
// code makes them, with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	b := New(nil, Options{})
	testutil.DocContains(t, "../../../docs/cluster.md",
		"`"+strings.TrimSuffix(b.nodeSubject(""), encode(""))+"<node>`",
		"`"+strings.TrimSuffix(b.topicSubject(""), encode(""))+"<topic>`",
		"`"+b.allSubject()+"`",
		"node `gw1`: `"+b.nodeSubject("gw1")+"`",
		"topic `orders`: `"+b.topicSubject("orders")+"`",
		"header `"+hdrOp+"`: "+strings.Join([]string{opSend, opDisconnect, opDescribe, opPing}, ", "),
		fmt.Sprintf("NATS: more than %d waiting", b.opts.QueueLen),
	)
}
