package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/bus/membus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// startNode serves a gateway that is one node of a cluster on engine and
// dir. Its $default route answers a message "sub:T" by subscribing the
// sender to T, and any message with the sender's connection ID.
func startNode(t *testing.T, engine *membus.Engine, dir *memreg.Registry, node string) (*gateway.Hub, string) {
	t.Helper()
	b := engine.NewBus()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hub, err := gateway.StartHub(ctx, gateway.HubOptions{Directory: dir, Bus: b, Node: node})
	if err != nil {
		t.Fatalf("StartHub(%s): %v", node, err)
	}
	var subscriber integration.Func = func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		if topic, ok := strings.CutPrefix(string(req.Body), "sub:"); ok {
			if err := hub.Subscribe(ctx, req.Conn.ID, topic); err != nil {
				return nil, err
			}
		}
		return &integration.Response{StatusCode: 200, Body: []byte(req.Conn.ID)}, nil
	}
	gw := gateway.New(hub, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]gateway.Route{"$default": {Integration: subscriber, RouteResponse: true}},
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

// dialAs connects to url, sends msg and returns the connection and its ID.
func dialAs(t *testing.T, url, msg string) (*websocket.Conn, string) {
	t.Helper()
	c := testutil.Dial(t, url, nil)
	testutil.Write(t, c, msg)
	return c, testutil.ReadText(t, c)
}

// Two nodes in one process: every delivery reaches a connection of the
// other node as it does a local one, publish and broadcast reach each
// recipient once, and listings cover both nodes with full pages.
func TestClusterOfTwoHubs(t *testing.T) {
	t.Parallel()
	engine, dir := new(membus.Engine), memreg.New()
	hubA, urlA := startNode(t, engine, dir, "node-a")
	_, urlB := startNode(t, engine, dir, "node-b")

	a1, a1ID := dialAs(t, urlA, "sub:news")
	b1, b1ID := dialAs(t, urlB, "sub:news")
	b2, b2ID := dialAs(t, urlB, "hello")
	ctx := t.Context()

	// Publish through node A reaches its subscriber and node B's, once each.
	if n, err := hubA.Publish(ctx, "news", []byte("p1")); err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1 local delivery", n, err)
	}
	if n, err := hubA.Broadcast(ctx, []byte("everyone")); err != nil || n != 1 {
		t.Fatalf("Broadcast = %d, %v; want 1 local delivery", n, err)
	}
	for _, tc := range []struct {
		name string
		c    *websocket.Conn
		want []string
	}{
		{"a1", a1, []string{"p1", "everyone"}},
		{"b1", b1, []string{"p1", "everyone"}},
		{"b2 (not subscribed)", b2, []string{"everyone"}},
	} {
		var got []string
		for range tc.want {
			got = append(got, testutil.ReadText(t, tc.c))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s received %q, want %q", tc.name, got, tc.want)
		}
	}

	// Send, Conn and Disconnect through node A act on node B's connections.
	if err := hubA.Send(ctx, b2ID, []byte("direct")); err != nil {
		t.Fatalf("Send to a connection of the other node: %v", err)
	}
	if got := testutil.ReadText(t, b2); got != "direct" {
		t.Errorf("b2 received %q, want direct", got)
	}
	info, err := hubA.Conn(ctx, b1ID)
	if err != nil {
		t.Fatalf("Conn of the other node's connection: %v", err)
	}
	if info.ConnID != b1ID || !slices.Equal(info.Topics, []string{"news"}) || info.SourceIP == "" || info.LastActiveAt.IsZero() {
		t.Errorf("Conn(%s) = %+v, want its ID, topics [news], source IP and last activity", b1ID, info)
	}
	if err := hubA.Send(ctx, apigw.NewID(), []byte("x")); !errors.Is(err, conn.ErrGone) {
		t.Errorf("Send to an unknown connection: err = %v, want ErrGone", err)
	}

	// A listing through node A covers both nodes, with full pages.
	var listed []string
	cursor := ""
	for range 4 {
		page, next, err := hubA.List(ctx, cursor, 2)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if next != "" && len(page) != 2 {
			t.Errorf("List(%q, 2) returned a short page of %d before the last", cursor, len(page))
		}
		for _, c := range page {
			listed = append(listed, c.ConnID)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if want := slices.Sorted(slices.Values([]string{a1ID, b1ID, b2ID})); !slices.Equal(listed, want) {
		t.Errorf("List through node A = %q, want %q", listed, want)
	}

	if err := hubA.Disconnect(ctx, b2ID); err != nil {
		t.Fatalf("Disconnect of the other node's connection: %v", err)
	}
	if code, _ := testutil.CloseCode(t, b2, 5*time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("b2 closed with %d, want 1000", code)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return errors.Is(hubA.Send(ctx, b2ID, []byte("x")), conn.ErrGone)
	}, "Send to a disconnected connection of the other node is not ErrGone")

	// Once node B's last subscriber leaves, a publication reaches only node A's.
	b1.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, err := hubA.Conn(ctx, b1ID)
		return errors.Is(err, conn.ErrGone)
	}, "b1 is still known after it closed")
	if n, err := hubA.Publish(ctx, "news", []byte("p2")); err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1 local delivery", n, err)
	}
	if got := testutil.ReadText(t, a1); got != "p2" {
		t.Errorf("a1 received %q, want p2", got)
	}
}
