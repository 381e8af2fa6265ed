package mgmtapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/bus/membus"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// node serves a gateway that is one node of a cluster; its $default route
// answers any message with the sender's connection ID.
func node(t *testing.T, engine *membus.Engine, dir *memreg.Registry, name string) (*gateway.Hub, string) {
	t.Helper()
	b := engine.NewBus()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hub, err := gateway.StartHub(ctx, gateway.HubOptions{Directory: dir, Bus: b, Node: name})
	if err != nil {
		t.Fatalf("StartHub(%s): %v", name, err)
	}
	var whoami integration.Func = func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		return &integration.Response{StatusCode: 200, Body: []byte(req.Conn.ID)}, nil
	}
	gw := gateway.New(hub, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]gateway.Route{"$default": {Integration: whoami, RouteResponse: true}},
	})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		hs.Close()
		_ = b.Close()
	})
	return hub, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// On a cluster, POST /@connections on one node reaches the connections of
// every node, and names those no node holds.
func TestPostToConnectionsAcrossNodes(t *testing.T) {
	t.Parallel()
	engine, dir := new(membus.Engine), memreg.New()
	hubA, urlA := node(t, engine, dir, "node-a")
	_, urlB := node(t, engine, dir, "node-b")
	mux := http.NewServeMux()
	mgmtapi.New(hubA, mgmtapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(mux)
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)

	var conns []string
	a := testutil.Dial(t, urlA, nil)
	b1 := testutil.Dial(t, urlB, nil)
	b2 := testutil.Dial(t, urlB, nil)
	testutil.Write(t, a, "who")
	testutil.Write(t, b1, "who")
	testutil.Write(t, b2, "who")
	conns = append(conns, testutil.ReadText(t, a), testutil.ReadText(t, b1), testutil.ReadText(t, b2))

	const unknown = "AAAAAAAAAAAAAAA="
	body, _ := json.Marshal(map[string]any{"connectionIds": append(slices.Clone(conns), unknown), "data": "to all three"})
	resp, err := http.Post(api.URL+"/@connections", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Delivered int      `json:"delivered"`
		Gone      []string `json:"gone"`
	}
	out, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(out, &res); err != nil || resp.StatusCode != 200 || res.Delivered != 3 || !slices.Equal(res.Gone, []string{unknown}) {
		t.Fatalf("POST /@connections = %d %s, want 3 delivered and %s gone", resp.StatusCode, out, unknown)
	}
	for name, c := range map[string]*websocket.Conn{"a": a, "b1": b1, "b2": b2} {
		if got := testutil.ReadText(t, c); got != "to all three" {
			t.Errorf("%s received %q", name, got)
		}
	}
}
