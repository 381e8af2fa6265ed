package redishist

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the keys of this store as the code makes them,
// with an example computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	s, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.DocContains(t, "../../../docs/cluster.md",
		"key `"+s.key("epoch")+"`, `"+s.key("seq")+"`",
		"key `"+s.key("t", "<topic>")+"`",
		"`"+s.key("last", "<topic>")+"`",
		"key `"+s.key("log")+"`",
		"topic `orders`: `"+s.key("t", enc.EncodeToString([]byte("orders")))+"`",
	)
}
