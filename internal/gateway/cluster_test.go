package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/bus/membus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// startNode serves a gateway that is one node of a cluster on engine and
// dir. Its $default route answers a message "sub:T" by subscribing the
// sender to T, and any message with the sender's connection ID.
func startNode(t *testing.T, engine *membus.Engine, dir registry.Directory, node string) (*gateway.Hub, string) {
	t.Helper()
	hub, url, _ := startNodeOn(t, engine.NewBus(), dir, node)
	return hub, url
}

// startNodeOn is startNode on a given bus; it also returns the node's drain.
func startNodeOn(t *testing.T, b bus.Bus, dir registry.Directory, node string) (*gateway.Hub, string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hub, err := gateway.StartHub(ctx, gateway.HubOptions{Directory: dir, Bus: b, Node: node})
	if err != nil {
		t.Fatalf("StartHub(%s): %v", node, err)
	}
	var subscriber integration.Func = func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		if topic, ok := strings.CutPrefix(string(req.Body), "sub:"); ok {
			if err := hub.Subscribe(ctx, req.Conn.ID, topic, -1); err != nil {
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
	var once sync.Once
	drain := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = gw.Drain(ctx)
			hs.Close()
			_ = b.Close()
		})
	}
	t.Cleanup(drain)
	return hub, "ws" + strings.TrimPrefix(hs.URL, "http"), drain
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

// deadlines counts the calls made with and without a deadline.
type deadlines struct{ bounded, unbounded, lookups atomic.Int64 }

func (d *deadlines) see(ctx context.Context) {
	if _, ok := ctx.Deadline(); ok && ctx.Err() == nil {
		d.bounded.Add(1)
	} else {
		d.unbounded.Add(1)
	}
}

type checkedDir struct {
	registry.Directory
	d *deadlines
}

func (c checkedDir) Add(ctx context.Context, rec registry.Record) error {
	c.d.see(ctx)
	return c.Directory.Add(ctx, rec)
}

func (c checkedDir) Remove(ctx context.Context, id string) error {
	c.d.see(ctx)
	return c.Directory.Remove(ctx, id)
}

func (c checkedDir) Lookup(ctx context.Context, id string) (registry.Record, error) {
	c.d.see(ctx)
	c.d.lookups.Add(1)
	return c.Directory.Lookup(ctx, id)
}

func (c checkedDir) List(ctx context.Context, cursor string, limit int) (registry.Page, error) {
	c.d.see(ctx)
	return c.Directory.List(ctx, cursor, limit)
}

type checkedBus struct {
	bus.Bus
	d *deadlines
}

func (c checkedBus) Send(ctx context.Context, node, id string, data []byte) error {
	c.d.see(ctx)
	return c.Bus.Send(ctx, node, id, data)
}

func (c checkedBus) Disconnect(ctx context.Context, node, id string) error {
	c.d.see(ctx)
	return c.Bus.Disconnect(ctx, node, id)
}

func (c checkedBus) Describe(ctx context.Context, node, id string) (conn.State, error) {
	c.d.see(ctx)
	return c.Bus.Describe(ctx, node, id)
}

func (c checkedBus) Subscribe(ctx context.Context, topic string) error {
	c.d.see(ctx)
	return c.Bus.Subscribe(ctx, topic)
}

func (c checkedBus) Unsubscribe(ctx context.Context, topic string) error {
	c.d.see(ctx)
	return c.Bus.Unsubscribe(ctx, topic)
}

func (c checkedBus) Publish(ctx context.Context, topic string, data []byte) error {
	c.d.see(ctx)
	return c.Bus.Publish(ctx, topic, data)
}

func (c checkedBus) Broadcast(ctx context.Context, data []byte) error {
	c.d.see(ctx)
	return c.Bus.Broadcast(ctx, data)
}

// Every directory and bus call the hub makes carries a deadline and a live
// context, also at a disconnect and during a drain, when the callers'
// contexts carry none (context.Background) or are cancelled.
func TestHubBoundsEveryClusterCall(t *testing.T) {
	t.Parallel()
	engine, mem, d := new(membus.Engine), memreg.New(), new(deadlines)
	dir := checkedDir{mem, d}
	hubA, urlA, _ := startNodeOn(t, checkedBus{engine.NewBus(), d}, dir, "node-a")
	_, urlB, drainB := startNodeOn(t, checkedBus{engine.NewBus(), d}, dir, "node-b")

	a1, _ := dialAs(t, urlA, "sub:t")
	b1, b1ID := dialAs(t, urlB, "sub:t")
	_, b2ID := dialAs(t, urlB, "sub:u")
	ctx := context.Background() // no deadline of its own
	if _, err := hubA.Publish(ctx, "t", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := hubA.Broadcast(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := hubA.Send(ctx, b1ID, []byte("s")); err != nil {
		t.Fatal(err)
	}
	if _, err := hubA.Conn(ctx, b1ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := hubA.List(ctx, "", 10); err != nil {
		t.Fatal(err)
	}
	if err := hubA.Disconnect(ctx, b2ID); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p", "b", "s"} {
		if got := testutil.ReadText(t, b1); got != want {
			t.Fatalf("b1 received %q, want %q", got, want)
		}
	}
	a1.Close(websocket.StatusNormalClosure, "") // its disconnect withdraws interest in t
	drainB()                                    // b1's removal runs during the drain
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, _ := mem.Count(t.Context())
		return n == 0
	}, "the directory still holds records after every connection closed")
	if d.unbounded.Load() != 0 || d.bounded.Load() < 12 {
		t.Errorf("%d directory and bus calls without a deadline (or cancelled), %d with one; want none without, 12 or more with",
			d.unbounded.Load(), d.bounded.Load())
	}
}

// A connection ID carries its node's tag: once a node has seen a holder's
// tag, it sends to that holder's connections without a directory lookup.
// Two nodes that share a tag cost lookups, never a lost delivery.
func TestNodeTagSkipsTheDirectory(t *testing.T) {
	t.Parallel()
	x, y := twoNamesOneTag()
	engine, d := new(membus.Engine), new(deadlines)
	dir := checkedDir{memreg.New(), d}
	hubA, _ := startNode(t, engine, dir, "node-sender")
	_, urlX := startNode(t, engine, dir, x)
	_, urlY := startNode(t, engine, dir, y)
	cx, xID := dialAs(t, urlX, "hello")
	cy, yID := dialAs(t, urlY, "hello")
	if xID[:2] != yID[:2] {
		t.Fatalf("IDs of two nodes with one tag start %q and %q, want the same two characters", xID[:2], yID[:2])
	}
	ctx := t.Context()
	send := func(id string, c *websocket.Conn, msg string) int64 {
		t.Helper()
		before := d.lookups.Load()
		if err := hubA.Send(ctx, id, []byte(msg)); err != nil {
			t.Fatalf("Send(%s): %v", msg, err)
		}
		if got := testutil.ReadText(t, c); got != msg {
			t.Fatalf("received %q, want %q", got, msg)
		}
		return d.lookups.Load() - before
	}
	if n := send(xID, cx, "first"); n != 1 {
		t.Errorf("first send to %s's connection made %d lookups, want 1", x, n)
	}
	if n := send(xID, cx, "second"); n != 0 {
		t.Errorf("second send to %s's connection made %d lookups, want none: the tag names the holder", x, n)
	}
	if n := send(yID, cy, "to-y"); n != 1 {
		t.Errorf("send to %s's connection, whose tag names %s too, made %d lookups, want 1", y, x, n)
	}
	if n := send(xID, cx, "again"); n != 1 {
		t.Errorf("send after the tag proved ambiguous made %d lookups, want 1", n)
	}
}

// twoNamesOneTag returns two node names whose connection IDs carry one tag.
func twoNamesOneTag() (x, y string) {
	byTag := map[uint16]string{}
	for i := 0; x == ""; i++ {
		name := fmt.Sprintf("node-%d", i)
		if other, ok := byTag[apigw.NodeTag(name)]; ok {
			x, y = other, name
		}
		byTag[apigw.NodeTag(name)] = name
	}
	return x, y
}

// stuckTo is a bus on which, once stuck is set, every addressed call to
// one node fails as to a node that does not answer.
type stuckTo struct {
	bus.Bus
	node  string
	stuck atomic.Bool
}

func (b *stuckTo) Send(ctx context.Context, node, id string, data []byte) error {
	if b.stuck.Load() && node == b.node {
		return fmt.Errorf("%w: %s does not answer", bus.ErrUnavailable, node)
	}
	return b.Bus.Send(ctx, node, id, data)
}

// A node that the tag names but that does not answer costs a directory
// lookup, never the delivery to the real holder: a tag two nodes share must
// not let a stuck node stand for the other.
func TestStuckGuessedHolderFallsBackToTheDirectory(t *testing.T) {
	t.Parallel()
	x, y := twoNamesOneTag()
	engine, dir := new(membus.Engine), memreg.New()
	sender := &stuckTo{Bus: engine.NewBus(), node: x}
	hubA, _, _ := startNodeOn(t, sender, dir, "node-sender")
	_, urlX := startNode(t, engine, dir, x)
	_, urlY := startNode(t, engine, dir, y)
	cx, xID := dialAs(t, urlX, "hello")
	cy, yID := dialAs(t, urlY, "hello")
	ctx := t.Context()
	if err := hubA.Send(ctx, xID, []byte("learn")); err != nil { // the sender learns x's tag
		t.Fatalf("Send to %s's connection: %v", x, err)
	}
	if got := testutil.ReadText(t, cx); got != "learn" {
		t.Fatalf("received %q", got)
	}
	sender.stuck.Store(true)
	if err := hubA.Send(ctx, yID, []byte("to-y")); err != nil {
		t.Fatalf("Send to %s's connection while %s, which its tag names too, is stuck: %v", y, x, err)
	}
	if got := testutil.ReadText(t, cy); got != "to-y" {
		t.Errorf("received %q, want to-y", got)
	}
	if err := hubA.Send(ctx, xID, []byte("to-x")); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Send to the stuck node's own connection: err = %v, want ErrUnavailable", err)
	}
}

// refusingBus cannot declare interest.
type refusingBus struct{ bus.Bus }

func (refusingBus) Subscribe(context.Context, string) error { return bus.ErrUnavailable }

// A subscription whose interest the bus refused is refused too, not kept
// where other nodes' publications would never reach it.
func TestSubscribeRefusedWhenTheBusIs(t *testing.T) {
	t.Parallel()
	hub, url, _ := startNodeOn(t, refusingBus{new(membus.Engine).NewBus()}, memreg.New(), "node-a")
	c := testutil.Dial(t, url, nil)
	testutil.Write(t, c, "hello")
	id := testutil.ReadText(t, c)
	if err := hub.Subscribe(t.Context(), id, "t", -1); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Subscribe on a bus that refuses: err = %v, want ErrUnavailable", err)
	}
	if n, _ := hub.Publish(t.Context(), "t", []byte("x")); n != 0 {
		t.Errorf("Publish after a refused subscription reached %d connections, want 0", n)
	}
	info, err := hub.Conn(t.Context(), id)
	if err != nil || len(info.Topics) != 0 {
		t.Errorf("Conn = %+v, %v; want no topics", info, err)
	}
}

// electingDirectory is a directory whose presence writes fail a number of
// times first, as a replicated directory's do while its replicas elect a
// leader.
type electingDirectory struct {
	*memreg.Registry
	failures atomic.Int32 // writes left to fail
	joins    atomic.Int32 // writes tried
}

func (d *electingDirectory) Join(ctx context.Context, topic string, m registry.Member) error {
	d.joins.Add(1)
	if d.failures.Add(-1) >= 0 {
		return errors.New("directory: no leader")
	}
	return d.Registry.Join(ctx, topic, m)
}

// TestSubscribeWaitsForTheDirectory: a subscribe whose presence write fails
// for a moment succeeds once the directory takes it, and a subscribe the
// directory refuses throughout the call's bound is answered with an error
// and leaves no subscription behind.
func TestSubscribeWaitsForTheDirectory(t *testing.T) {
	t.Parallel()
	engine := new(membus.Engine)
	dir := &electingDirectory{Registry: memreg.New()}
	dir.failures.Store(3)
	hub, url := startNode(t, engine, dir, "a")
	_, id := dialAs(t, url, "sub:news")
	if n := dir.joins.Load(); n != 4 {
		t.Errorf("presence written %d times, want 4 (three refused, then taken)", n)
	}
	members, err := dir.Members(t.Context(), "news")
	if err != nil || len(members) != 1 || members[0].ConnID != id {
		t.Fatalf("members of news = %v, %v; want the subscriber %s", members, err, id)
	}

	dir.failures.Store(1 << 30)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = hub.Subscribe(ctx, id, "sports", -1)
	if err == nil || !strings.Contains(err.Error(), "record presence") {
		t.Fatalf("Subscribe while the directory refuses = %v, want a presence error", err)
	}
	info, err := hub.Conn(t.Context(), id)
	if err != nil || slices.Contains(info.Topics, "sports") {
		t.Errorf("Conn = %+v, %v; the refused subscription was kept", info, err)
	}
}
