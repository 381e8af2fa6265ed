package mgmtapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/auth"
	"github.com/switchboard-gateway/switchboard/internal/bus/membus"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// userNode serves one node of a cluster (bus non-nil) or a node alone
// whose $connect names the user of the "user" query parameter in
// X-Switchboard-User, and whose $default answers the sender's connection
// ID after subscribing it to the message's topic when it reads "sub <topic>".
func userNode(t *testing.T, engine *membus.Engine, dir *memreg.Registry, name string, announce ...string) (*gateway.Hub, string) {
	t.Helper()
	o := gateway.HubOptions{Directory: dir, Node: name}
	if len(announce) > 0 {
		o.Announce = func(topic string) bool { return slices.Contains(announce, topic) }
	}
	if engine != nil {
		b := engine.NewBus()
		t.Cleanup(func() { _ = b.Close() })
		o.Bus = b
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hub, err := gateway.StartHub(ctx, o)
	if err != nil {
		t.Fatalf("StartHub(%s): %v", name, err)
	}
	var connect integration.Func = func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		resp := &integration.Response{StatusCode: 200}
		if u := req.Conn.Query.Get("user"); u != "" {
			resp.Headers = map[string]string{integration.UserHeader: u}
		}
		return resp, nil
	}
	var def integration.Func = func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		if topic, ok := strings.CutPrefix(string(req.Body), "sub "); ok {
			if err := hub.Subscribe(ctx, req.Conn.ID, topic, -1); err != nil {
				return nil, err
			}
		}
		return &integration.Response{StatusCode: 200, Body: []byte(req.Conn.ID)}, nil
	}
	gw := gateway.New(hub, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]gateway.Route{"$connect": {Integration: connect}, "$default": {Integration: def, RouteResponse: true}},
	})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		hs.Close()
	})
	return hub, "ws" + strings.TrimPrefix(hs.URL, "http")
}

func apiFor(t *testing.T, hub mgmtapi.Hub) string {
	t.Helper()
	mux := http.NewServeMux()
	mgmtapi.New(hub, mgmtapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(mux)
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	return api.URL
}

// call makes a request and decodes its JSON answer into out.
func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// whoami subscribes c to topic (none when empty) and returns its ID.
func whoami(t *testing.T, c *websocket.Conn, topic string) string {
	t.Helper()
	msg := "who"
	if topic != "" {
		msg = "sub " + topic
	}
	testutil.Write(t, c, msg)
	return testutil.ReadText(t, c)
}

type userBody struct {
	UserID      string `json:"userId"`
	Connections []struct {
		ConnectionID, Node, ConnectedAt string
	} `json:"connections"`
}

type deliveryBody struct {
	Delivered          int
	Gone, Slow, Failed []string
}

type presenceBody struct {
	Topic      string `json:"topic"`
	Count      int    `json:"count"`
	NextCursor string `json:"nextCursor"`
	Items      []struct {
		ConnectionID, UserID, Node string
	} `json:"items"`
}

// A user with a connection on each of two nodes gets one copy of a POST
// /@users/{id} on each, is listed with both, shows in GET /@users and in
// a topic's presence with its node, and DELETE closes both.
func TestUsersAcrossNodes(t *testing.T) {
	t.Parallel()
	engine, dir := new(membus.Engine), memreg.New()
	hubA, urlA := userNode(t, engine, dir, "node-a")
	_, urlB := userNode(t, engine, dir, "node-b")
	api := apiFor(t, hubA)

	a := testutil.Dial(t, urlA+"?user=alice", nil)
	b := testutil.Dial(t, urlB+"?user=alice", nil)
	other := testutil.Dial(t, urlB+"?user=bob", nil)
	anon := testutil.Dial(t, urlA, nil)
	idA, idB := whoami(t, a, "room"), whoami(t, b, "room")
	idOther, idAnon := whoami(t, other, ""), whoami(t, anon, "room")

	var d deliveryBody
	if code := call(t, "POST", api+"/@users/alice", "hello alice", &d); code != 200 || d.Delivered != 2 || len(d.Gone)+len(d.Slow)+len(d.Failed) != 0 {
		t.Fatalf("POST /@users/alice = %d %+v, want 200 delivered 2", code, d)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := testutil.ReadText(t, c); got != "hello alice" {
			t.Errorf("alice's connection got %q, want hello alice", got)
		}
	}
	var u userBody
	if code := call(t, "GET", api+"/@users/alice", "", &u); code != 200 || len(u.Connections) != 2 {
		t.Fatalf("GET /@users/alice = %d %+v, want both connections", code, u)
	}
	nodes := map[string]string{}
	for _, c := range u.Connections {
		nodes[c.ConnectionID] = c.Node
		if c.ConnectedAt == "" {
			t.Errorf("connection %s listed without connectedAt", c.ConnectionID)
		}
	}
	if nodes[idA] != "node-a" || nodes[idB] != "node-b" {
		t.Errorf("GET /@users/alice nodes = %v, want %s on node-a and %s on node-b", nodes, idA, idB)
	}
	var users struct {
		Count int
		Items []string
	}
	if call(t, "GET", api+"/@users", "", &users); users.Count != 2 || !slices.Equal(users.Items, []string{"alice", "bob"}) {
		t.Errorf("GET /@users = %+v, want alice and bob", users)
	}
	var p presenceBody
	if code := call(t, "GET", api+"/@topics/room/presence", "", &p); code != 200 || p.Count != 3 || len(p.Items) != 3 {
		t.Fatalf("GET presence = %d %+v, want 3 members", code, p)
	}
	for _, m := range p.Items {
		want := map[string]string{idA: "alice/node-a", idB: "alice/node-b", idAnon: "/node-a"}[m.ConnectionID]
		if got := m.UserID + "/" + m.Node; got != want {
			t.Errorf("presence member %s = %s, want %s", m.ConnectionID, got, want)
		}
	}
	if call(t, "GET", api+"/@topics/room/presence?limit=2", "", &p); len(p.Items) != 2 || p.Count != 3 || p.NextCursor == "" {
		t.Errorf("GET presence?limit=2 = %+v, want 2 of 3 and a cursor", p)
	}
	var p2 presenceBody
	if call(t, "GET", api+"/@topics/room/presence?limit=2&cursor="+url.QueryEscape(p.NextCursor), "", &p2); len(p2.Items) != 1 || p2.NextCursor != "" {
		t.Errorf("GET presence's second page = %+v, want the last member", p2)
	}

	if code := call(t, "DELETE", api+"/@users/alice", "", &d); code != 200 || d.Delivered != 2 {
		t.Fatalf("DELETE /@users/alice = %d %+v, want 200 delivered 2", code, d)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusNormalClosure {
			t.Errorf("alice's connection closed with %d, want 1000", code)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		p = presenceBody{}
		call(t, "GET", api+"/@topics/room/presence", "", &p)
		return p.Count == 1 && p.Items[0].ConnectionID == idAnon
	}, "alice's connections still in the topic's presence: %+v", p)
	u = userBody{}
	if call(t, "GET", api+"/@users/alice", "", &u); len(u.Connections) != 0 {
		t.Errorf("GET /@users/alice after DELETE = %+v, want none", u)
	}
	// An unsubscribe leaves the presence too.
	if err := hubA.Unsubscribe(t.Context(), idAnon, "room"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	p = presenceBody{}
	if call(t, "GET", api+"/@topics/room/presence", "", &p); p.Count != 0 {
		t.Errorf("presence after the last member unsubscribed = %+v, want none", p)
	}
	_ = idOther
}

// A node alone answers the same routes from its own index; bad user IDs
// are refused.
func TestUsersAlone(t *testing.T) {
	t.Parallel()
	hub, wsURL := userNode(t, nil, memreg.New(), "")
	api := apiFor(t, hub)
	c := testutil.Dial(t, wsURL+"?user=carol", nil)
	id := whoami(t, c, "news")
	var p presenceBody
	if call(t, "GET", api+"/@topics/news/presence", "", &p); p.Count != 1 || p.Items[0].ConnectionID != id || p.Items[0].UserID != "carol" || p.Items[0].Node != "" {
		t.Errorf("presence on a node alone = %+v, want %s of carol, no node", p, id)
	}
	var d deliveryBody
	if call(t, "POST", api+"/@users/carol", "hi", &d); d.Delivered != 1 {
		t.Errorf("POST /@users/carol = %+v, want delivered 1", d)
	}
	if got := testutil.ReadText(t, c); got != "hi" {
		t.Errorf("carol got %q", got)
	}
	if call(t, "POST", api+"/@users/nobody", "hi", &d); d.Delivered != 0 {
		t.Errorf("POST /@users/nobody = %+v, want delivered 0", d)
	}
	var e struct{ Message string }
	long := strings.Repeat("x", integration.MaxUserBytes+1)
	if code := call(t, "GET", api+"/@users/"+long, "", &e); code != 400 || e.Message == "" {
		t.Errorf("GET /@users/<too long> = %d %+v, want 400 with a message", code, e)
	}
	// A $connect naming a user with a control character is refused.
	if code := testutil.DialStatus(t, wsURL+"?user=a%01b", nil); code != http.StatusBadGateway {
		t.Errorf("dial with a bad user = %d, want 502", code)
	}
}

// Without X-Switchboard-User, or with it empty, a connection belongs to
// its authorizer's principal; the header, when set, wins.
func TestUserFromPrincipal(t *testing.T) {
	t.Parallel()
	hub := gateway.NewHub(memreg.New(), "", nil)
	var connect integration.Func = func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		return &integration.Response{StatusCode: 200, Headers: map[string]string{integration.UserHeader: req.Conn.Query.Get("user")}}, nil
	}
	gw := gateway.New(hub, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorizer: auth.Func(func(context.Context, *auth.ConnectRequest) (*auth.Identity, error) {
			return &auth.Identity{Principal: "grace"}, nil
		}),
		Routes: map[string]gateway.Route{"$connect": {Integration: connect}},
	})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		hs.Close()
	})
	ws := "ws" + strings.TrimPrefix(hs.URL, "http")
	api := apiFor(t, hub)
	testutil.Dial(t, ws, nil)
	testutil.Dial(t, ws+"?user=henry", nil)
	var users struct{ Items []string }
	testutil.Eventually(t, 5*time.Second, func() bool {
		call(t, "GET", api+"/@users", "", &users)
		return slices.Equal(users.Items, []string{"grace", "henry"})
	}, "GET /@users = %q, want grace (the principal) and henry (the header)", users.Items)
}

// An announced topic's join and leave messages reach its subscribers on
// every node.
func TestAnnounceAcrossNodes(t *testing.T) {
	t.Parallel()
	engine, dir := new(membus.Engine), memreg.New()
	_, urlA := userNode(t, engine, dir, "node-a", "chat")
	_, urlB := userNode(t, engine, dir, "node-b", "chat")
	x := testutil.Dial(t, urlA+"?user=xena", nil)
	y := testutil.Dial(t, urlB+"?user=yves", nil)
	// subscribe answers, after the join it caused, with the subscriber's ID.
	testutil.Write(t, x, "sub chat")
	var own gateway.PresenceEvent
	if err := json.Unmarshal([]byte(testutil.ReadText(t, x)), &own); err != nil || own.Event != "join" || own.UserID != "xena" {
		t.Fatalf("xena's own join = %+v, %v", own, err)
	}
	if id := testutil.ReadText(t, x); id != own.ConnectionID {
		t.Fatalf("xena's ID %q, its join names %q", id, own.ConnectionID)
	}
	testutil.Write(t, y, "sub chat")
	var got gateway.PresenceEvent
	if err := json.Unmarshal([]byte(testutil.ReadText(t, y)), &got); err != nil || got.UserID != "yves" {
		t.Fatalf("yves's own join = %+v, %v", got, err)
	}
	idY := testutil.ReadText(t, y)
	want := gateway.PresenceEvent{Type: "presence", Event: "join", Topic: "chat", ConnectionID: idY, UserID: "yves"}
	if err := json.Unmarshal([]byte(testutil.ReadText(t, x)), &got); err != nil || got != want {
		t.Fatalf("xena on node-a got %+v, %v; want %+v", got, err, want)
	}
	y.Close(websocket.StatusNormalClosure, "")
	want.Event = "leave"
	if err := json.Unmarshal([]byte(testutil.ReadText(t, x)), &got); err != nil || got != want {
		t.Errorf("xena on node-a got %+v, %v; want %+v", got, err, want)
	}
}
