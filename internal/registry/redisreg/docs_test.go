package redisreg

import (
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docs/cluster.md names the keys of this directory as the code makes them,
// with examples computed here.
func TestDocsClusterNames(t *testing.T) {
	t.Parallel()
	d := New(nil, Options{})
	testutil.DocContains(t, "../../../docs/cluster.md",
		"key `"+d.key("conn:")+"<id>`",
		"key `"+d.key("conns")+"`",
		"key `"+d.key("nodeconns:")+"<node>`",
		"key `"+d.key("lease:")+"<node>`",
		"key `"+d.key("nodes")+"`",
		"`"+d.key("conn:", "R1kmxc2VNjMCFIA=")+"`",
		"`"+d.key("nodeconns:", "gw1")+"`",
		"`"+d.key("lease:", "gw1")+"`",
	)
}

// docs/users-presence.md names the user and presence keys as the code
// makes them, under the default prefix.
func TestDocsUsersPresenceNames(t *testing.T) {
	t.Parallel()
	d := New(nil, Options{})
	p := d.opts.Prefix
	testutil.DocContains(t, "../../../docs/users-presence.md",
		"`"+strings.TrimPrefix(d.key("user:"), p)+"<user>`",
		"`"+strings.TrimPrefix(d.key("users"), p)+"`",
		"`"+strings.TrimPrefix(d.key("members:"), p)+"<topic>`",
		"under the prefix `"+p+"`",
	)
	testutil.DocContains(t, "../../../docs/cluster.md",
		"key `"+d.key("user:")+"<user>`",
		"key `"+d.key("users")+"`",
		"key `"+d.key("members:")+"<topic>`",
		"key `"+d.key("nodemembers:")+"<node>`",
		"`"+d.key("user:", "alice")+"`",
		"`"+d.key("nodemembers:", "gw1")+"`",
	)
}
