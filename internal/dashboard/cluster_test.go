package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var (
	started = time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)
	seen    = time.Date(2026, 12, 5, 9, 45, 0, 0, time.UTC)
	nodes   = []dashboard.Node{
		{ID: "n-a", Name: "gw-a", StartedAt: started, LastSeen: seen, Self: true},
		{ID: "n-b", Name: "gw-b", StartedAt: started, LastSeen: seen},
		{ID: "n-c", Name: "gw-c", StartedAt: started, LastSeen: seen},
	}
)

func TestCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cluster func(context.Context) dashboard.Cluster
		want    dashboard.Cluster
	}{
		{"a node alone", nil, dashboard.Cluster{Nodes: []dashboard.Node{}}},
		{"three nodes", func(context.Context) dashboard.Cluster {
			return dashboard.Cluster{Engine: "nats", Node: "n-a", Nodes: nodes}
		}, dashboard.Cluster{Engine: "nats", Node: "n-a", Nodes: nodes}},
		{"engine down", func(context.Context) dashboard.Cluster {
			return dashboard.Cluster{Engine: "redis", Node: "n-a", EngineError: "bus: unavailable", NodesError: "dial tcp: refused"}
		}, dashboard.Cluster{Engine: "redis", Node: "n-a", EngineError: "bus: unavailable", NodesError: "dial tcp: refused", Nodes: []dashboard.Node{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, dashboard.New(dashboard.Options{Cluster: tt.cluster}), "/_/api/cluster", nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var got dashboard.Cluster
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GET /_/api/cluster = %+v, want %+v", got, tt.want)
			}
			for _, field := range []string{`"engine"`, `"nodes"`} {
				if !strings.Contains(body, field) {
					t.Errorf("body %s lacks %s", body, field)
				}
			}
		})
	}
}

// The nodes are read under a deadline: a stuck engine cannot hold the
// dashboard's request.
func TestClusterIsBounded(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{
		ClusterTimeout: 50 * time.Millisecond,
		Cluster: func(ctx context.Context) dashboard.Cluster {
			if _, ok := ctx.Deadline(); !ok {
				return dashboard.Cluster{Engine: "nats", NodesError: "no deadline"}
			}
			<-ctx.Done() // a stuck engine
			return dashboard.Cluster{Engine: "nats", NodesError: ctx.Err().Error()}
		},
	})
	var got dashboard.Cluster
	if err := json.Unmarshal([]byte(readAll(t, get(t, h, "/_/api/cluster", nil))), &got); err != nil {
		t.Fatal(err)
	}
	if got.NodesError != context.DeadlineExceeded.Error() {
		t.Errorf("NodesError = %q, want the deadline's %q", got.NodesError, context.DeadlineExceeded)
	}
}

// On a node of a cluster the connections table shows each connection's
// node by name, and the cluster panel lists the nodes with this one marked,
// their connections, and the engine's state; a node alone shows neither.
func TestBrowserCluster(t *testing.T) {
	state := make(chan dashboard.Cluster, 1)
	state <- dashboard.Cluster{Engine: "embedded NATS", Node: "n-a", Nodes: nodes}
	current := func(context.Context) dashboard.Cluster {
		c := <-state
		state <- c
		return c
	}
	setState := func(c dashboard.Cluster) {
		<-state
		state <- c
	}
	dash := dashboard.New(dashboard.Options{Stage: "dev", Routes: testRoutes, Cluster: current})
	listing := `{"items":[` +
		`{"connectionId":"AAAAAAAAAAAAAAA=","connectedAt":"2026-12-05T09:31:00.000Z","identity":{"sourceIp":"127.0.0.1"},"lastActiveAt":"2026-12-05T09:31:00.000Z","node":"n-a"},` +
		`{"connectionId":"BBBBBBBBBBBBBBB=","connectedAt":"2026-12-05T09:31:00.000Z","identity":{"sourceIp":"127.0.0.1"},"lastActiveAt":"2026-12-05T09:31:00.000Z","node":"n-c"},` +
		`{"connectionId":"CCCCCCCCCCCCCCC=","connectedAt":"2026-12-05T09:31:00.000Z","identity":{"sourceIp":"127.0.0.1"},"lastActiveAt":"2026-12-05T09:31:00.000Z","node":"n-c"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_/api/connections" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, listing)
			return
		}
		dash.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	page := newBrowser(t, "dashboard")
	page.do("open the dashboard", chromedp.Navigate(srv.URL+"/_/"),
		chromedp.WaitVisible(chromedp.CSS(`#cluster-body tr[data-node-id="n-c"]`)))
	page.waitJS("the connections' nodes by name", `(() => {
		const cell = (id) => document.querySelector('tr[data-connection-id="' + id + '"] td.node');
		return cell('AAAAAAAAAAAAAAA=') && cell('AAAAAAAAAAAAAAA=').textContent === 'gw-a'
			&& cell('CCCCCCCCCCCCCCC=').textContent === 'gw-c' && cell('CCCCCCCCCCCCCCC=').offsetParent !== null;
	})()`)
	page.waitJS("two connections counted on gw-c", `document.querySelector('#cluster-body tr[data-node-id="n-c"] .count').textContent === '2'`)
	for _, tt := range []struct{ sel, want string }{
		{`#cluster-body tr[data-self="true"]`, "this node"},
		{`#cluster-body tr[data-self="true"]`, "gw-a"},
		{`#cluster-engine`, "embedded NATS"},
		{`#cluster-state`, "engine ok"},
	} {
		if got := page.text(tt.sel); !strings.Contains(got, tt.want) {
			t.Errorf("%s = %q, want %q in it", tt.sel, got, tt.want)
		}
	}
	if rows := page.count(`#cluster-body tr`); rows != 3 {
		t.Errorf("cluster panel rows = %d, want 3", rows)
	}
	page.screenshot("dashboard-cluster.png")

	setState(dashboard.Cluster{Engine: "embedded NATS", Node: "n-a", EngineError: "bus: unavailable: no delivery through own channel",
		Nodes: nodes[:1], NodesError: "context deadline exceeded"})
	page.do("wait for the engine's failure", chromedp.WaitVisible(chromedp.CSS(`#cluster-state[data-state="closed"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#cluster-error`)))
	if got := page.text("#cluster-error"); !strings.Contains(got, "context deadline exceeded") {
		t.Errorf("cluster error = %q, want the nodes' error", got)
	}
	page.waitJS("the lapsed nodes gone", `document.querySelectorAll('#cluster-body tr').length === 1`)

	setState(dashboard.Cluster{})
	page.waitJS("a node alone: no cluster panel, no node column", `document.querySelector('#cluster-panel').hidden
		&& document.querySelector('#connections th.node-col').offsetParent === null`)
}

// count returns how many elements match the CSS selector.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel))))
	if err != nil {
		tb.t.Fatalf("tab %s: count %s: %v", tb.name, sel, err)
	}
	return n
}

// A gateway on a cluster (here one node on its embedded NATS) serves its
// nodes to the dashboard, and its listing names each connection's node.
func TestClusterMountedInServer(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "cluster: {url: embedded, node: gw-one}")
	testutil.Dial(t, srv.WS, nil)
	var c dashboard.Cluster
	testutil.Eventually(t, waitTimeout, func() bool {
		status, body := testutil.Get(t, srv.HTTP+"/_/api/cluster")
		if status != http.StatusOK {
			t.Fatalf("GET /_/api/cluster: %d %s", status, body)
		}
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			t.Fatalf("GET /_/api/cluster: %q: %v", body, err)
		}
		return len(c.Nodes) == 1
	}, "the cluster's one node is not listed")
	if c.Engine != "embedded" || c.Node != "gw-one" || c.EngineError != "" || c.NodesError != "" {
		t.Errorf("cluster = %+v, want embedded, node gw-one, no errors", c)
	}
	if n := c.Nodes[0]; n.ID != "gw-one" || !n.Self || n.StartedAt.IsZero() || n.LastSeen.IsZero() {
		t.Errorf("node = %+v, want gw-one, self, with its start and its last renewal", n)
	}
	testutil.Eventually(t, waitTimeout, func() bool {
		status, body := testutil.Get(t, srv.HTTP+"/@connections")
		return status == http.StatusOK && strings.Contains(body, `"node":"gw-one"`)
	}, `the listing does not name the connection's node`)

	alone := servertest.StartYAML(t, "")
	testutil.Dial(t, alone.WS, nil)
	if status, body := testutil.Get(t, alone.HTTP+"/_/api/cluster"); status != http.StatusOK || !strings.Contains(body, `"engine":""`) {
		t.Errorf("GET /_/api/cluster on a node alone: %d %s, want engine \"\"", status, body)
	}
	if _, body := testutil.Get(t, alone.HTTP+"/@connections"); strings.Contains(body, `"node"`) {
		t.Errorf("the listing of a node alone names a node: %s", body)
	}
}

// clusterOf reads GET /_/api/cluster.
func clusterOf(t *testing.T, base string) dashboard.Cluster {
	t.Helper()
	status, body := testutil.Get(t, base+"/_/api/cluster")
	var c dashboard.Cluster
	if err := json.Unmarshal([]byte(body), &c); status != http.StatusOK || err != nil {
		t.Fatalf("GET /_/api/cluster: %d %q: %v", status, body, err)
	}
	return c
}

// With its NATS server gone, a node's dashboard says why: the engine's
// state and the nodes that could not be read; both clear once NATS is back.
func TestClusterEngineDown(t *testing.T) {
	t.Parallel()
	nats := testutil.StartNATS(t)
	srv := servertest.StartYAML(t, fmt.Sprintf("tls: {disable: true}\ncluster: {url: %q, node: gw-a, grace: 1s, callTimeout: 1s}\n", nats.URL))
	if c := clusterOf(t, srv.HTTP); c.Engine != "nats" || c.EngineError != "" || len(c.Nodes) != 1 {
		t.Fatalf("cluster before = %+v, want nats, no error, one node", c)
	}
	nats.Stop()
	testutil.Eventually(t, 20*time.Second, func() bool {
		c := clusterOf(t, srv.HTTP)
		return c.EngineError != "" && c.NodesError != "" && len(c.Nodes) == 0
	}, "the engine's failure and the unreadable nodes shown")
	nats.Start()
	testutil.Eventually(t, 30*time.Second, func() bool {
		c := clusterOf(t, srv.HTTP)
		return c.EngineError == "" && c.NodesError == "" && len(c.Nodes) == 1 && c.Nodes[0].ID == "gw-a"
	}, "the engine's state clear and the node listed once NATS is back")
}
