package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// clusterNode is one gateway of a cluster served in this process.
type clusterNode struct {
	srv  *server.Server
	hs   *httptest.Server
	log  *testutil.Buffer
	HTTP string
	WS   string
}

// startCluster builds one server per YAML config at once (nodes on embedded
// NATS wait for each other's JetStream quorum) and serves each until the
// end of the test.
func startCluster(t *testing.T, yamls ...string) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, len(yamls))
	errs := make([]error, len(yamls))
	var wg sync.WaitGroup
	for i, y := range yamls {
		path := filepath.Join(t.TempDir(), "switchboard.yaml")
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
		if err != nil {
			t.Fatalf("load config %d: %v", i, err)
		}
		n := &clusterNode{hs: httptest.NewUnstartedServer(nil), log: &testutil.Buffer{}}
		nodes[i] = n
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.srv, errs[i] = server.New(cfg, server.Options{
				Logger: slog.New(slog.NewTextHandler(n.log, nil)),
				Addr:   n.hs.Listener.Addr().String(),
			})
		}()
	}
	wg.Wait()
	for i, n := range nodes {
		if errs[i] != nil {
			for _, n := range nodes {
				n.hs.Close()
				if n.srv != nil {
					_ = n.srv.Close()
				}
			}
			t.Fatalf("server.New(node %d): %v", i, errs[i])
		}
		n.hs.Config.Handler = n.srv.Handler()
		n.srv.ConfigureHTTP(n.hs.Config)
		n.hs.Start()
		n.srv.SetReady(true)
		n.HTTP, n.WS = n.hs.URL, "ws"+strings.TrimPrefix(n.hs.URL, "http")
		t.Cleanup(n.stop)
	}
	return nodes
}

// stop drains and closes the node; stopping twice is harmless.
func (n *clusterNode) stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.srv.Drain(ctx)
	n.hs.Close()
	_ = n.srv.Close()
	n.srv = nil
}

// call sends a management request and returns its status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// connect connects a client to n and returns it with its connection ID.
func connect(t *testing.T, n *clusterNode) (*websocket.Conn, string) {
	t.Helper()
	before := map[string]bool{}
	for _, r := range n.srv.Gateway().Hub().LocalRecords() {
		before[r.ConnID] = true
	}
	c := testutil.Dial(t, n.WS, nil)
	// The record is written before the 101.
	for _, r := range n.srv.Gateway().Hub().LocalRecords() {
		if !before[r.ConnID] {
			return c, r.ConnID
		}
	}
	t.Fatalf("no new connection on %s", n.HTTP)
	return nil, ""
}

// yaml of a node on engine url.
func nodeYAML(url, node string, extra ...string) string {
	return fmt.Sprintf("listen: 127.0.0.1:0\ntls: {disable: true}\ncluster:\n  url: %q\n  node: %s\n%s", url, node, strings.Join(extra, "\n"))
}

func health(t *testing.T, n *clusterNode) (int, map[string]any) {
	t.Helper()
	code, body := testutil.Get(t, n.HTTP+"/healthz")
	var h map[string]any
	if code == http.StatusOK || strings.HasPrefix(body, "{") {
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("healthz body %q: %v", body, err)
		}
	}
	return code, h
}

// engines start each engine for a test and return the nodes' configs.
var engines = map[string]func(t *testing.T, ttl string) []string{
	"nats": func(t *testing.T, ttl string) []string {
		url := testutil.StartNATS(t).URL
		return []string{nodeYAML(url, "a", "  ttl: "+ttl), nodeYAML(url, "b", "  ttl: "+ttl)}
	},
	"redis": func(t *testing.T, ttl string) []string {
		url := "redis://" + testutil.StartRedis(t).Addr
		return []string{nodeYAML(url, "a", "  ttl: "+ttl), nodeYAML(url, "b", "  ttl: "+ttl)}
	},
	"embedded": func(t *testing.T, ttl string) []string {
		routes := []string{fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))}
		var out []string
		for i, name := range []string{"a", "b"} {
			out = append(out, nodeYAML("embedded", name, "  ttl: "+ttl, "  embedded:",
				"    cluster: "+routes[i], fmt.Sprintf("    peers: [%s, %s]", routes[0], routes[1]),
				"    storeDir: "+t.TempDir()))
		}
		return out
	},
}

// TestClusterAcrossNodes: two gateways on each engine answer for each
// other's connections: PostToConnection, GetConnection, broadcast and
// DeleteConnection through the node that does not hold the connection.
func TestClusterAcrossNodes(t *testing.T) {
	for name, engine := range engines {
		t.Run(name, func(t *testing.T) {
			nodes := startCluster(t, engine(t, "3s")...)
			a, b := nodes[0], nodes[1]
			ca, id := connect(t, a)

			if code, body := call(t, "POST", b.HTTP+"/@connections/"+id, "through b"); code != http.StatusOK {
				t.Fatalf("PostToConnection through b = %d %s, want 200", code, body)
			}
			if got := testutil.ReadText(t, ca); got != "through b" {
				t.Fatalf("client on a got %q, want %q", got, "through b")
			}
			if code, body := call(t, "GET", b.HTTP+"/@connections/"+id, ""); code != http.StatusOK || !strings.Contains(body, "connectedAt") {
				t.Fatalf("GetConnection through b = %d %s, want 200 with connectedAt", code, body)
			}
			if code, body := call(t, "POST", b.HTTP+"/@broadcast", "to all"); code != http.StatusOK {
				t.Fatalf("broadcast through b = %d %s, want 200", code, body)
			}
			if got := testutil.ReadText(t, ca); got != "to all" {
				t.Fatalf("client on a got %q, want %q", got, "to all")
			}
			testutil.Eventually(t, 10*time.Second, func() bool {
				code, h := health(t, b)
				cl, _ := h["cluster"].(map[string]any)
				return code == http.StatusOK && cl["node"] == "b" && cl["state"] == "ok" && cl["nodes"] == float64(2)
			}, "b's /healthz names b, state ok, 2 nodes")
			if code, body := call(t, "DELETE", b.HTTP+"/@connections/"+id, ""); code != http.StatusNoContent {
				t.Fatalf("DeleteConnection through b = %d %s, want 204", code, body)
			}
			if code, _ := testutil.CloseCode(t, ca, 5*time.Second); code != websocket.StatusNormalClosure {
				t.Fatalf("close code = %d, want 1000", code)
			}
			testutil.Eventually(t, 5*time.Second, func() bool {
				code, _ := call(t, "POST", b.HTTP+"/@connections/"+id, "late")
				return code == http.StatusGone
			}, "a deleted connection is 410 through b")
		})
	}
}

// TestClusterBanner: the banner names the engine, its password hidden, the
// node and its lease.
func TestClusterBanner(t *testing.T) {
	r := testutil.StartRedis(t, "--requirepass", "s3cret")
	nodes := startCluster(t, nodeYAML("redis://:s3cret@"+r.Addr, "a", "  ttl: 20s"))
	banner := nodes[0].srv.Banner("127.0.0.1:1", "127.0.0.1:1", false)
	want := fmt.Sprintf("  Cluster:        redis://:xxxxx@%s as node a (ttl 20s)\n", r.Addr)
	if !strings.Contains(banner, want) {
		t.Fatalf("banner lacks %q:\n%s", want, banner)
	}
	if strings.Contains(banner, "s3cret") {
		t.Fatalf("banner shows the password:\n%s", banner)
	}
}

// TestClusterDrainLeaves: a drained node's clients get 1001 and its
// connections are gone for the others at once, well within the lease.
func TestClusterDrainLeaves(t *testing.T) {
	nodes := startCluster(t, engines["redis"](t, "1m")...)
	a, b := nodes[0], nodes[1]
	ca, id := connect(t, a)
	a.stop()
	if code, _ := testutil.CloseCode(t, ca, 5*time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("close code = %d, want 1001", code)
	}
	if code, body := call(t, "POST", b.HTTP+"/@connections/"+id, "x"); code != http.StatusGone {
		t.Fatalf("PostToConnection after a drained = %d %s, want 410", code, body)
	}
	if code, body := call(t, "GET", b.HTTP+"/@connections", ""); code != http.StatusOK || strings.Contains(body, id) {
		t.Fatalf("listing through b after a drained = %d %s, want 200 without %s", code, body, id)
	}
}

// TestClusterCutOff: with the engine down, local traffic keeps working, a
// broadcast is 503 with the recipients it reached and counted, /healthz
// turns 503 after cluster.grace, and all comes back with the engine,
// including the node's records on an engine that restarted empty.
func TestClusterCutOff(t *testing.T) {
	type engine struct {
		url        string
		stop, back func()
	}
	for name, start := range map[string]func(t *testing.T) engine{
		"nats": func(t *testing.T) engine {
			p := testutil.StartNATS(t)
			return engine{p.URL, p.Stop, p.Start}
		},
		"redis": func(t *testing.T) engine { // no persistence: it comes back empty
			r := testutil.StartRedis(t)
			return engine{"redis://" + r.Addr, r.Kill, r.Start}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := start(t)
			nodes := startCluster(t,
				nodeYAML(e.url, "a", "  ttl: 3s", "  grace: 1s", "  callTimeout: 1s"),
				nodeYAML(e.url, "b", "  ttl: 3s", "  grace: 1s", "  callTimeout: 1s"))
			a, b := nodes[0], nodes[1]
			ca, id := connect(t, a)
			if code, h := health(t, a); code != http.StatusOK || h["status"] != "ok" {
				t.Fatalf("healthz before = %d %v, want 200 ok", code, h)
			}

			e.stop()
			testutil.Eventually(t, 15*time.Second, func() bool {
				code, h := health(t, a)
				cl, _ := h["cluster"].(map[string]any)
				return code == http.StatusServiceUnavailable && h["status"] == "cut off" && cl["state"] == "degraded"
			}, "healthz 503 cut off once the engine is gone longer than grace")
			// Local traffic goes on.
			if code, body := call(t, "POST", a.HTTP+"/@connections/"+id, "local"); code != http.StatusOK {
				t.Fatalf("local PostToConnection while cut off = %d %s, want 200", code, body)
			}
			if got := testutil.ReadText(t, ca); got != "local" {
				t.Fatalf("client got %q, want %q", got, "local")
			}
			code, body := call(t, "POST", a.HTTP+"/@broadcast", "partial")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, `"recipients":1`) || !strings.Contains(body, "could not be reached") {
				t.Fatalf("broadcast while cut off = %d %s, want 503 with recipients 1", code, body)
			}
			if got := testutil.ReadText(t, ca); got != "partial" {
				t.Fatalf("client got %q, want %q", got, "partial")
			}
			_, m := testutil.Get(t, a.HTTP+"/metrics")
			for _, want := range []string{`switchboard_cluster_undelivered_total{op="broadcast"} 1`, `switchboard_cluster_call_failures_total{op="bus_broadcast"} 1`, "switchboard_cluster_engine_up 0"} {
				if !strings.Contains(m, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			testutil.Eventually(t, 5*time.Second, func() bool {
				return strings.Contains(a.log.String(), "not delivered to the other nodes")
			}, "the undelivered broadcast is logged")

			e.back()
			testutil.Eventually(t, 20*time.Second, func() bool {
				code, h := health(t, a)
				return code == http.StatusOK && h["status"] == "ok"
			}, "healthz 200 once the engine is back")
			testutil.Eventually(t, 20*time.Second, func() bool {
				code, _ := call(t, "POST", b.HTTP+"/@connections/"+id, "again")
				return code == http.StatusOK
			}, "b reaches a's connection again")
			if got := testutil.ReadTextAfter(t, ca, "again"); got != "again" {
				t.Fatalf("client got %q, want %q", got, "again")
			}
		})
	}
}

// TestClusterReloadNeedsRestart: a reload keeps the node's engine and name
// and logs that a restart is needed for the cluster settings.
func TestClusterReloadNeedsRestart(t *testing.T) {
	r := testutil.StartRedis(t)
	n := startCluster(t, nodeYAML("redis://"+r.Addr, "a"))[0]
	next := loadYAML(t, t.TempDir(), nodeYAML("nats://127.0.0.1:1", "other"))
	if err := n.srv.Reload(next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !strings.Contains(n.log.String(), "changes only with a restart") || !strings.Contains(n.log.String(), "setting=cluster") {
		t.Errorf("log lacks the restart warning for cluster:\n%s", n.log)
	}
	if code, h := health(t, n); code != http.StatusOK || h["cluster"].(map[string]any)["node"] != "a" {
		t.Errorf("healthz after reload = %d %v, want node a", code, h)
	}
}
