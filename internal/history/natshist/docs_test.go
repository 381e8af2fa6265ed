package natshist

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the streams, subjects and header of this store as
// the code makes them, with an example computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	o := Options{}.withDefaults()
	k := newKept(o, history.Rule{Topics: "orders.>"})
	testutil.DocContains(t, "../../../docs/cluster.md",
		"stream `"+o.Prefix+"_hist_<rule>`",
		"subjects `"+o.Prefix+".hist.<rule>.<topic>`",
		"header `"+HeaderPrev+"`",
		"rule `orders.>`: stream `"+k.name+"`, topic `orders.eu`: subject `"+k.subjectOf("orders.eu")+"`",
	)
}
