package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/cluster"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/redisurl"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestStartRefuses: a URL the cluster cannot use is a clear start error.
func TestStartRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, want string
		is              error
	}{
		{"redis cluster", "redis://127.0.0.1:1,127.0.0.1:2", "Redis Cluster", redisurl.ErrUnsupported},
		{"sentinel", "redis+sentinel://127.0.0.1:26379", "Sentinel is not supported", redisurl.ErrUnsupported},
		{"unknown scheme", "amqp://127.0.0.1:5672", "scheme \"amqp\" not supported", nil},
		{"nats unreachable", fmt.Sprintf("nats://127.0.0.1:%d", testutil.FreePort(t)), "natsbus: connect", nil},
		{"password hidden", "redis://u:hunter2@127.0.0.1:1,127.0.0.1:2", "xxxxx", redisurl.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := cluster.Start(t.Context(), cluster.Options{URL: tt.url, Logger: quiet(), JoinTimeout: 3 * time.Second})
			if err == nil {
				_ = c.Close()
				t.Fatalf("Start(%q) = nil error, want one", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Start(%q) = %v, want it to say %q (and no password)", tt.url, err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Start(%q) = %v, want it to wrap %v", tt.url, err, tt.is)
			}
		})
	}
}

// TestDefaultNode: unnamed nodes get distinct names.
func TestDefaultNode(t *testing.T) {
	t.Parallel()
	a, b := cluster.DefaultNode(), cluster.DefaultNode()
	if a == b || !strings.Contains(a, "-") {
		t.Fatalf("DefaultNode() = %q, %q: want two distinct host-suffix names", a, b)
	}
}

// loneNode is a gateway on a cluster whose background work (lease
// renewal) does not run until the test calls Run: its lease lapses.
type loneNode struct {
	c   *cluster.Cluster
	hub *gateway.Hub
	ws  string
}

func startLoneNode(t *testing.T, url, node string, ttl time.Duration) *loneNode {
	t.Helper()
	c, err := cluster.Start(t.Context(), cluster.Options{URL: url, Node: node, TTL: ttl, Logger: quiet()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hub, err := gateway.StartHub(ctx, gateway.HubOptions{Directory: c.Directory(), Bus: c.Bus(), Node: c.Node()})
	if err != nil {
		_ = c.Close()
		t.Fatalf("StartHub: %v", err)
	}
	gw := gateway.New(hub, gateway.Options{Logger: quiet()})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		hs.Close()
		_ = c.Close()
	})
	return &loneNode{c: c, hub: hub, ws: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

func postTo(t *testing.T, base, id, body string) int {
	t.Helper()
	resp, err := http.Post(base+"/@connections/"+id, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLeaseLapse: once a node stops renewing its lease, the other nodes
// answer 410 for its connections within the ttl; when it renews again it
// adds its records back and they are reachable again.
func TestLeaseLapse(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"nats":  func(t *testing.T) string { return testutil.StartNATS(t).URL },
		"redis": func(t *testing.T) string { return "redis://" + testutil.StartRedis(t).Addr },
	} {
		t.Run(name, func(t *testing.T) {
			u := url(t)
			a := startLoneNode(t, u, "a", time.Second)
			b := servertest.StartYAML(t, fmt.Sprintf("tls: {disable: true}\ncluster: {url: %q, node: b, ttl: 1s}\n", u))
			ca := testutil.Dial(t, a.ws, nil)
			recs := a.hub.LocalRecords()
			if len(recs) != 1 {
				t.Fatalf("a holds %d records, want 1", len(recs))
			}
			id := recs[0].ConnID

			// a's first lease lapses after 1s, since no renewal runs: the
			// directory hides its records. (b has not yet learned a's tag
			// from a record, so it asks the directory, as for a dead node.)
			testutil.Eventually(t, 10*time.Second, func() bool {
				_, err := a.c.Directory().Lookup(t.Context(), id)
				return errors.Is(err, registry.ErrNotFound)
			}, "a's record hidden once its lease lapsed")
			if code := postTo(t, b.HTTP, id, "x"); code != http.StatusGone {
				t.Fatalf("PostToConnection through b after a's lease lapsed = %d, want 410", code)
			}

			a.c.Run(a.hub)
			testutil.Eventually(t, 10*time.Second, func() bool {
				return postTo(t, b.HTTP, id, "back") == http.StatusOK
			}, "a's connection reachable through b once a renews")
			if got := testutil.ReadTextAfter(t, ca, "back"); got != "back" {
				t.Fatalf("client on a got %q, want %q", got, "back")
			}
			if st := a.c.Status(); st.State != cluster.StateOK || st.Nodes != 2 || st.Engine == "" {
				t.Errorf("Status() = %+v, want ok with 2 nodes", st)
			}
			// One NATS server holds one replica of each stream and bucket;
			// Redis has none.
			if got, want := a.c.Replicas(), map[string]int{"nats": 1, "redis": 0}[name]; got != want {
				t.Errorf("Replicas() = %d, want %d", got, want)
			}
		})
	}
}

// TestDefaults: the defaults the README lists, and a grace shorter than the
// lease, so that a node cut off turns unhealthy before the others drop its
// connections.
func TestDefaults(t *testing.T) {
	t.Parallel()
	if cluster.DefaultTTL != 15*time.Second || cluster.DefaultGrace != 10*time.Second || cluster.DefaultCallTimeout != 5*time.Second {
		t.Errorf("defaults ttl %v grace %v callTimeout %v, want 15s 10s 5s", cluster.DefaultTTL, cluster.DefaultGrace, cluster.DefaultCallTimeout)
	}
	if cluster.DefaultGrace >= cluster.DefaultTTL || cluster.DefaultGrace < 2*cluster.DefaultTTL/3 {
		t.Errorf("grace %v: want shorter than ttl %v and at least two renewal periods", cluster.DefaultGrace, cluster.DefaultTTL)
	}
}
