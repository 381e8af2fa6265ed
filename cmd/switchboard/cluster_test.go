package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests in this file run three `switchboard serve` processes as one
// cluster, on each engine: a nats-server process, the gateways' embedded
// NATS servers joined by routes, and a redis-server process. One scenario
// runs on every engine; then each engine's failures.

// clusterTTL is cluster.ttl in these tests: short, so that a killed node's
// lease lapses quickly. clusterGrace is cluster.grace.
const (
	clusterTTL   = 3 * time.Second
	clusterGrace = time.Second
)

// engine is a cluster engine that runs as a process of its own, which a
// test stops and starts again on the same address.
type engine struct {
	stop, start func()
}

// flavour is one way to run the cluster.
type flavour struct {
	name string
	// setup starts the engine when it is a process of its own, and returns
	// the cluster flags of node i (0, 1, 2) and the engine (nil when the
	// gateways embed it).
	setup func(t *testing.T) (flags func(i int) []string, eng *engine)
}

var flavours = []flavour{
	{"nats", func(t *testing.T) (func(int) []string, *engine) {
		n := testutil.StartNATS(t)
		return func(int) []string { return []string{"--cluster", n.URL} }, &engine{stop: n.Stop, start: n.Start}
	}},
	{"embedded", func(t *testing.T) (func(int) []string, *engine) {
		var routes []string
		for range 3 {
			routes = append(routes, net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t))))
		}
		peers := strings.Join(routes, ",")
		return func(i int) []string {
			return []string{"--cluster", "embedded", "--cluster-listen", routes[i], "--cluster-peers", peers}
		}, nil
	}},
	{"redis", func(t *testing.T) (func(int) []string, *engine) {
		r := testutil.StartRedis(t)
		return func(int) []string { return []string{"--cluster", "redis://" + r.Addr} }, &engine{stop: r.Kill, start: r.Start}
	}},
}

// node is one gateway process of a cluster.
type node struct {
	*gatewayProcess
	name string

	mu      sync.Mutex
	clients []string // the names of the clients dialed to it
}

// held reports whether a client of this name was dialed to n.
func (n *node) held(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.clients, name)
}

// cluster is three gateway processes on one engine, and what their
// $disconnect routes reported.
type cluster struct {
	nodes  []*node
	engine *engine
	disc   *disconnectLog
}

// startCluster starts three gateways (node-a, node-b, node-c) on f's
// engine, together, since embedded servers wait for their peers. Each runs
// the built-in routes, and a $disconnect that reports to the test which
// node ran it.
func startCluster(t *testing.T, f flavour) *cluster {
	t.Helper()
	return startClusterConfig(t, f, "")
}

// startClusterConfig is startCluster with extra appended to each node's
// configuration file.
func startClusterConfig(t *testing.T, f flavour, extra string) *cluster {
	t.Helper()
	disc := &disconnectLog{byNode: map[string][]string{}}
	hs := httptest.NewServer(disc)
	t.Cleanup(hs.Close) // after the gateways, whose cleanups run first
	flags, eng := f.setup(t)
	cl := &cluster{engine: eng, disc: disc}
	dir := t.TempDir()
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		cfg := filepath.Join(dir, name+".yaml")
		writeFile(t, cfg, fmt.Sprintf(`tls: {disable: true}
cluster: {ttl: %s, grace: %s}
routes:
  sendMessage: {integration: {type: broadcast}}
  subscribe:   {integration: {type: subscribe}}
  unsubscribe: {integration: {type: unsubscribe}}
  publish:     {integration: {type: publish}}
  $disconnect: {integration: {type: http, url: "%s/disconnect/%s"}}
`, clusterTTL, clusterGrace, hs.URL, name)+extra)
		args := append([]string{"--config", cfg, "--node", name, "--log-format", "json"}, flags(i)...)
		// A data directory per node: an embedded server keeps its store there.
		env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, name)}
		cl.nodes = append(cl.nodes, &node{gatewayProcess: launchProcess(t, env, args...), name: name})
	}
	for _, n := range cl.nodes {
		n.awaitBanner(t)
	}
	return cl
}

// disconnectLog records the connection IDs each node's $disconnect ran for.
type disconnectLog struct {
	mu     sync.Mutex
	byNode map[string][]string
}

func (d *disconnectLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	node, ok := strings.CutPrefix(r.URL.Path, "/disconnect/")
	var ev struct {
		RequestContext struct {
			ConnectionID string `json:"connectionId"`
			EventType    string `json:"eventType"`
		} `json:"requestContext"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&ev); !ok || err != nil || ev.RequestContext.EventType != "DISCONNECT" {
		http.Error(w, "not a $disconnect event", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.byNode[node] = append(d.byNode[node], ev.RequestContext.ConnectionID)
	d.mu.Unlock()
	_, _ = io.WriteString(w, `{"statusCode":200}`)
}

// ranOn returns the nodes whose $disconnect ran for id.
func (d *disconnectLog) ranOn(id string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var nodes []string
	for n, ids := range d.byNode {
		for _, got := range ids {
			if got == id {
				nodes = append(nodes, n)
			}
		}
	}
	slices.Sort(nodes)
	return nodes
}

// client is a WebSocket client of one node that keeps every message it
// receives, and what the test expects it to have received.
type client struct {
	name string // also its User-Agent, by which listings name it
	node *node
	id   string
	ws   *websocket.Conn

	mu    sync.Mutex
	got   []string
	want  map[string]int // messages it must receive, and how many times
	maybe map[string]int // messages it may receive (at most this many times)
	// errorFrames: it may receive API Gateway's "Internal server error" frames.
	errorFrames bool

	done        chan struct{} // closed when the connection ended
	closeCode   websocket.StatusCode
	closeReason string
}

// dial connects a client named name to n. Its ID is found later, by name,
// in a listing (see identify).
func dial(t *testing.T, n *node, name string) *client {
	t.Helper()
	c := &client{name: name, node: n, want: map[string]int{}, maybe: map[string]int{}, done: make(chan struct{})}
	c.ws = testutil.Dial(t, n.ws, &websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {name}}})
	n.mu.Lock()
	n.clients = append(n.clients, name)
	n.mu.Unlock()
	go c.read()
	t.Cleanup(func() {
		_ = c.ws.CloseNow()
		<-c.done
	})
	return c
}

// read keeps what the client receives until the connection ends, which
// the test's cleanup makes sure of.
func (c *client) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				c.closeCode, c.closeReason = ce.Code, ce.Reason
			} else {
				c.closeCode = -1
			}
			return
		}
		c.mu.Lock()
		c.got = append(c.got, string(data))
		c.mu.Unlock()
	}
}

func (c *client) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.got {
		if m == msg {
			n++
		}
	}
	return n
}

func (c *client) has(msg string) bool { return c.count(msg) > 0 }

// closed waits for the connection to end and returns the close code the
// gateway sent (-1 for none).
func (c *client) closed(t *testing.T) websocket.StatusCode {
	t.Helper()
	select {
	case <-c.done:
		return c.closeCode
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: connection still open after 30s", c.name)
		return 0
	}
}

func (c *client) send(t *testing.T, msg string) { t.Helper(); testutil.Write(t, c.ws, msg) }

// expect records that each of clients must receive msg once more.
func expect(msg string, clients ...*client) {
	for _, c := range clients {
		c.mu.Lock()
		c.want[msg]++
		c.mu.Unlock()
	}
}

// allow records that each of clients may receive msg once, or not at all.
func allow(msg string, clients ...*client) {
	for _, c := range clients {
		c.mu.Lock()
		c.maybe[msg]++
		c.mu.Unlock()
	}
}

const errorFramePrefix = `{"message": "` + apigw.MsgInternalServerError + `"`

func (c *client) allowErrorFrames() {
	c.mu.Lock()
	c.errorFrames = true
	c.mu.Unlock()
}

// missing returns the expected messages c has not received yet.
func (c *client) missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]int{}
	for _, m := range c.got {
		got[m]++
	}
	var miss []string
	for m, n := range c.want {
		if got[m] < n {
			miss = append(miss, m)
		}
	}
	slices.Sort(miss)
	return miss
}

// unexpected returns what c received beyond what it was to receive:
// duplicates, and messages meant for others.
func (c *client) unexpected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]int{}
	for _, m := range c.got {
		got[m]++
	}
	var extra []string
	for m, n := range got {
		if c.errorFrames && strings.HasPrefix(m, errorFramePrefix) {
			continue
		}
		if n > c.want[m]+c.maybe[m] {
			extra = append(extra, fmt.Sprintf("%q ×%d", m, n))
		}
	}
	slices.Sort(extra)
	return extra
}

// settle checks that every client received what it was to receive exactly
// as many times, and nothing else. It first broadcasts a fence through via
// and waits for it everywhere, so that a duplicate or a stray message sent
// earlier has had the time to arrive.
func settle(t *testing.T, via *node, clients ...*client) {
	t.Helper()
	fence := "fence-" + apigw.NewID()
	expect(fence, clients...)
	if status, body := mgmt(t, http.MethodPost, via.http+"/@broadcast", fence); status != http.StatusOK {
		t.Fatalf("POST %s/@broadcast = %d %s", via.name, status, body)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, c := range clients {
			if len(c.missing()) > 0 {
				return false
			}
		}
		return true
	}, "every client receives what it was sent; missing: %s", describeMissing(clients))
	for _, c := range clients {
		if extra := c.unexpected(); len(extra) > 0 {
			t.Errorf("%s (on %s) received %s, more than it was sent", c.name, c.node.name, extra)
		}
	}
}

// lazy is a message argument evaluated when it is printed, so that a
// failed Eventually says what was true at the end.
type lazy func() string

func (l lazy) String() string { return l() }

// describeMissing lists what clients have not received yet.
func describeMissing(clients []*client) lazy {
	return func() string {
		var b strings.Builder
		for _, c := range clients {
			if miss := c.missing(); len(miss) > 0 {
				fmt.Fprintf(&b, "%s (on %s): %q; ", c.name, c.node.name, miss)
			}
		}
		return b.String()
	}
}

// mgmtClient is for management calls: every call is bounded.
var mgmtClient = &http.Client{Timeout: 20 * time.Second}

// mgmtCall makes one management call and returns its status and body; an
// error only when no answer came.
func mgmtCall(method, url, body string) (int, http.Header, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	resp, err := mgmtClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// mgmt is mgmtCall that fails the test when no answer came.
func mgmt(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	status, _, b, err := mgmtCall(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return status, b
}

// listed is one connection of a listing.
type listed struct {
	ConnectionID string   `json:"connectionId"`
	Topics       []string `json:"topics"`
	Identity     struct {
		UserAgent string `json:"userAgent"`
	} `json:"identity"`
}

// listAll pages through GET /@connections on n, limit at a time, and
// checks the pages (see listPages).
func listAll(t *testing.T, n *node, limit int) []listed {
	t.Helper()
	all, err := listPages(n, limit)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// listPages pages through GET /@connections on n, limit at a time, and
// checks the pages: full but for the last, the same page for the same
// cursor, no connection twice.
func listPages(n *node, limit int) ([]listed, error) {
	page := func(cursor string) ([]listed, string, error) {
		u := n.http + "/@connections?limit=" + strconv.Itoa(limit)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		status, _, body, err := mgmtCall(http.MethodGet, u, "")
		if err != nil {
			return nil, "", err
		}
		if status != http.StatusOK {
			return nil, "", fmt.Errorf("GET %s /@connections (cursor %q) = %d %s", n.name, cursor, status, body)
		}
		var p struct {
			Items      []listed `json:"items"`
			NextCursor string   `json:"nextCursor"`
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			return nil, "", fmt.Errorf("GET %s /@connections: %v in %q", n.name, err, body)
		}
		return p.Items, p.NextCursor, nil
	}
	ids := func(items []listed) []string {
		var s []string
		for _, it := range items {
			s = append(s, it.ConnectionID)
		}
		return s
	}
	var all []listed
	seen := map[string]bool{}
	cursor := ""
	for range 1000 {
		items, next, err := page(cursor)
		if err != nil {
			return nil, err
		}
		if next != "" && len(items) != limit {
			return nil, fmt.Errorf("listing through %s: a page of %d before the last, want %d", n.name, len(items), limit)
		}
		if cursor != "" {
			again, _, err := page(cursor)
			if err != nil {
				return nil, err
			}
			if !slices.Equal(ids(again), ids(items)) {
				return nil, fmt.Errorf("listing through %s: cursor %q gave %q, then %q", n.name, cursor, ids(items), ids(again))
			}
		}
		for _, it := range items {
			if seen[it.ConnectionID] {
				return nil, fmt.Errorf("listing through %s: %s listed twice", n.name, it.ConnectionID)
			}
			seen[it.ConnectionID] = true
		}
		all = append(all, items...)
		if cursor = next; cursor == "" {
			return all, nil
		}
	}
	return nil, fmt.Errorf("listing through %s did not end after 1000 pages", n.name)
}

// identify finds each client's connection ID by its User-Agent in a
// listing through n.
func identify(t *testing.T, n *node, clients ...*client) {
	t.Helper()
	byAgent := map[string]string{}
	for _, it := range listAll(t, n, 100) {
		byAgent[it.Identity.UserAgent] = it.ConnectionID
	}
	for _, c := range clients {
		if c.id = byAgent[c.name]; c.id == "" {
			t.Fatalf("%s (on %s) is not in the listing through %s", c.name, c.node.name, n.name)
		}
	}
}

// sdk is the AWS SDK for Go v2 management client of node n.
func sdk(n *node) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(n.http),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// health is what /healthz answers.
type health struct {
	Status  string `json:"status"`
	Cluster struct {
		Node   string `json:"node"`
		Engine string `json:"engine"`
		State  string `json:"state"`
	} `json:"cluster"`
}

// healthz returns n's /healthz status and, when it is JSON, its body.
func healthz(t *testing.T, n *node) (int, health) {
	t.Helper()
	status, body := mgmt(t, http.MethodGet, n.http+"/healthz", "")
	var h health
	_ = json.Unmarshal([]byte(body), &h) // a 503 may answer plain text
	return status, h
}

// goneEverywhere checks that every node in via answers for id as API
// Gateway does for a connection that is gone: 410 GoneException with an
// empty JSON body, to GET, POST and DELETE.
func goneEverywhere(t *testing.T, id string, via ...*node) {
	t.Helper()
	for _, n := range via {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			status, h, body, err := mgmtCall(method, n.http+"/@connections/"+id, "x")
			if err != nil {
				t.Fatalf("%s %s /@connections/%s: %v", method, n.name, id, err)
			}
			if status != http.StatusGone || h.Get("x-amzn-ErrorType") != apigw.ErrTypeGone || body != "{}" {
				t.Errorf("%s %s /@connections/%s = %d %s %q, want 410 GoneException {}", method, n.name, id, status, h.Get("x-amzn-ErrorType"), body)
			}
		}
	}
}

// answers reports whether n answers GET /@connections/id with status.
func answers(t *testing.T, n *node, id string, status int) bool {
	t.Helper()
	got, _ := mgmt(t, http.MethodGet, n.http+"/@connections/"+id, "")
	return got == status
}

func TestCluster(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cl := startCluster(t, f)
			t.Run("scenario", func(t *testing.T) { clusterScenario(t, cl) })
			if cl.engine != nil {
				t.Run("engine restart", func(t *testing.T) { engineRestart(t, cl) })
			}
			t.Run("SIGKILL", func(t *testing.T) { killNode(t, cl) })
		})
	}
}

// clusterScenario is issue #10's "what it must show" on three nodes:
// broadcast, topics, the management API and listings across nodes.
func clusterScenario(t *testing.T, cl *cluster) {
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	a1, a2 := dial(t, a, "a1"), dial(t, a, "a2")
	b1, b2 := dial(t, b, "b1"), dial(t, b, "b2")
	c1, c2, c3 := dial(t, c, "c1"), dial(t, c, "c2"), dial(t, c, "c3")
	everyone := []*client{a1, a2, b1, b2, c1, c2, c3}

	// A listing through any node pages through every connection of the
	// cluster, full pages and stable cursors.
	for _, n := range cl.nodes {
		var agents []string
		for _, it := range listAll(t, n, 2) {
			agents = append(agents, it.Identity.UserAgent)
		}
		slices.Sort(agents)
		if want := []string{"a1", "a2", "b1", "b2", "c1", "c2", "c3"}; !slices.Equal(agents, want) {
			t.Errorf("listing through %s: %q, want %q", n.name, agents, want)
		}
	}
	identify(t, b, everyone...)

	// A broadcast through C, and one sent by a client of B, reach everyone once.
	expect("bc-1", everyone...)
	if status, body := mgmt(t, http.MethodPost, c.http+"/@broadcast", "bc-1"); status != http.StatusOK {
		t.Fatalf("POST node-c /@broadcast = %d %s", status, body)
	}
	expect("chat-1", everyone...)
	b1.send(t, `{"action":"sendMessage","data":"chat-1"}`)
	settle(t, a, everyone...)

	// Topics: subscribers on every node, two on one node, and others.
	news := []*client{a1, b1, c1, c2}
	for _, s := range news {
		s.send(t, `{"action":"subscribe","entityId":"news"}`)
	}
	b2.send(t, `{"action":"subscribe","entityId":"sports"}`)
	a2.send(t, `{"action":"subscribe","entityId":"solo"}`)
	topics := map[string][]string{a1.id: {"news"}, b1.id: {"news"}, c1.id: {"news"}, c2.id: {"news"}, b2.id: {"sports"}, a2.id: {"solo"}}
	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, it := range listAll(t, a, 3) {
			if !slices.Equal(it.Topics, topics[it.ConnectionID]) {
				return false
			}
		}
		return true
	}, "the listing through node-a shows every connection's topics")

	expect("news-1", news...)
	if status, body := mgmt(t, http.MethodPost, b.http+"/@topics/news", "news-1"); status != http.StatusOK {
		t.Fatalf("POST node-b /@topics/news = %d %s", status, body)
	}
	expect("news-2", news...)
	c3.send(t, `{"action":"publish","entityId":"news","data":"news-2"}`) // c3 is no subscriber
	expect("sports-1", b2)
	if status, body := mgmt(t, http.MethodPost, a.http+"/@topics/sports", "sports-1"); status != http.StatusOK {
		t.Fatalf("POST node-a /@topics/sports = %d %s", status, body)
	}
	expect("solo-1", a2)
	if status, body := mgmt(t, http.MethodPost, c.http+"/@topics/solo", "solo-1"); status != http.StatusOK {
		t.Fatalf("POST node-c /@topics/solo = %d %s", status, body)
	}
	if status, body := mgmt(t, http.MethodPost, b.http+"/@topics/nobody", "nobody-1"); status != http.StatusOK {
		t.Fatalf("POST node-b /@topics/nobody = %d %s", status, body)
	}
	// What was published has arrived before c2 leaves the topic: c3's
	// publish and c2's unsubscribe come through different connections, and
	// the gateway may take them in either order.
	settle(t, c, everyone...)
	// c2 leaves the topic: node C still has c1 for it.
	c2.send(t, `{"action":"unsubscribe","entityId":"news"}`)
	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, it := range listAll(t, b, 100) {
			if it.ConnectionID == c2.id {
				return len(it.Topics) == 0
			}
		}
		return false
	}, "c2's topics empty after unsubscribe")
	expect("news-3", a1, b1, c1)
	if status, body := mgmt(t, http.MethodPost, a.http+"/@topics/news", "news-3"); status != http.StatusOK {
		t.Fatalf("POST node-a /@topics/news = %d %s", status, body)
	}
	settle(t, b, everyone...)

	// The AWS SDK through B reaches a connection of C; GetConnection through
	// A describes it as C does.
	api := sdk(b)
	ctx := bounded(t)
	expect("sdk-1", c1)
	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(c1.id), Data: []byte("sdk-1"),
	}); err != nil {
		t.Fatalf("PostToConnection through node-b to c1 on node-c: %v", err)
	}
	got, err := sdk(a).GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(c1.id)})
	if err != nil {
		t.Fatalf("GetConnection through node-a of c1 on node-c: %v", err)
	}
	if got.Identity == nil || aws.ToString(got.Identity.SourceIp) != "127.0.0.1" || aws.ToString(got.Identity.UserAgent) != "c1" ||
		got.ConnectedAt == nil || got.LastActiveAt == nil {
		t.Errorf("GetConnection through node-a = %+v %+v, want c1's identity and times", got, got.Identity)
	}
	local, err := sdk(c).GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(c1.id)})
	if err != nil {
		t.Fatalf("GetConnection through node-c, c1's holder: %v", err)
	}
	if !local.ConnectedAt.Equal(*got.ConnectedAt) || aws.ToString(local.Identity.UserAgent) != aws.ToString(got.Identity.UserAgent) {
		t.Errorf("GetConnection of c1: through node-a %v %+v, through its holder %v %+v", got.ConnectedAt, got.Identity, local.ConnectedAt, local.Identity)
	}
	if status, body := mgmt(t, http.MethodGet, a.http+"/@connections/"+c1.id, ""); status != http.StatusOK || !strings.Contains(body, `"lastActiveAt"`) {
		t.Errorf("GET node-a /@connections/c1 = %d %s, want 200 with lastActiveAt", status, body)
	}

	// DeleteConnection through B closes c3 on C with 1000, and $disconnect
	// runs on node C; from then on every node answers 410 for it.
	if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(c3.id)}); err != nil {
		t.Fatalf("DeleteConnection through node-b of c3 on node-c: %v", err)
	}
	if code := c3.closed(t); code != websocket.StatusNormalClosure {
		t.Errorf("c3 closed with %d %q, want 1000", code, c3.closeReason)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return len(cl.disc.ranOn(c3.id)) > 0 }, "$disconnect ran for c3")
	if on := cl.disc.ranOn(c3.id); !slices.Equal(on, []string{"node-c"}) {
		t.Errorf("$disconnect of c3 ran on %q, want only its holder node-c", on)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return answers(t, a, c3.id, http.StatusGone) },
		"node-a answers 410 for the deleted c3")
	goneEverywhere(t, c3.id, a, b, c)
	_, err = api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(c3.id), Data: []byte("x")})
	var gone *types.GoneException
	if !errors.As(err, &gone) {
		t.Errorf("PostToConnection through node-b to the deleted c3: err = %v, want *types.GoneException", err)
	}
	// A connection no node ever held is as gone through any node.
	goneEverywhere(t, apigw.NewID(), a, b, c)

	everyone = slices.DeleteFunc(everyone, func(x *client) bool { return x == c3 })
	if n := len(listAll(t, c, 2)); n != len(everyone) {
		t.Errorf("listing through node-c after the delete: %d connections, want %d", n, len(everyone))
	}
	settle(t, c, everyone...)
}

// killNode SIGKILLs node C: from the others, its connections answer 410
// once its lease lapses, and they keep serving each other.
func killNode(t *testing.T, cl *cluster) {
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	ka, kb := dial(t, a, "k-a"), dial(t, b, "k-b")
	kc1, kc2 := dial(t, c, "k-c1"), dial(t, c, "k-c2")
	identify(t, a, ka, kb, kc1, kc2)
	if !answers(t, a, kc1.id, http.StatusOK) {
		t.Fatalf("node-a does not describe k-c1 before the kill")
	}

	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.wait(t)
	// Generous: the lease lapses within the TTL; the rest is for a loaded machine.
	bound := 5*clusterTTL + 20*time.Second
	testutil.Eventually(t, bound, func() bool {
		return answers(t, a, kc1.id, http.StatusGone) && answers(t, b, kc2.id, http.StatusGone)
	}, "node-c's connections answer 410 from node-a and node-b after SIGKILL")
	t.Logf("node-c SIGKILLed: its connections answered 410 from the others after %v (cluster.ttl %v)",
		time.Since(killed).Round(10*time.Millisecond), clusterTTL)
	goneEverywhere(t, kc1.id, a, b)
	goneEverywhere(t, kc2.id, a, b)
	_, err := sdk(a).PostToConnection(bounded(t), &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(kc1.id), Data: []byte("x")})
	var gone *types.GoneException
	if !errors.As(err, &gone) {
		t.Errorf("PostToConnection through node-a to k-c1 of the killed node: err = %v, want *types.GoneException", err)
	}
	var lastErr error
	testutil.Eventually(t, bound, func() bool {
		// An engine that elects a new leader for the directory may fail a
		// listing meanwhile; it must answer again within the bound.
		all, err := listPages(b, 2)
		if lastErr = err; err != nil {
			return false
		}
		for _, it := range all {
			if c.held(it.Identity.UserAgent) {
				return false
			}
		}
		return true
	}, "the listing through node-b drops node-c's connections; last error: %v", lazy(func() string { return fmt.Sprint(lastErr) }))
	t.Logf("node-c SIGKILLed: the listing through node-b dropped its connections after %v", time.Since(killed).Round(10*time.Millisecond))

	// The others keep serving each other.
	expect("after-kill", ka, kb)
	if status, body := mgmt(t, http.MethodPost, a.http+"/@broadcast", "after-kill"); status != http.StatusOK {
		t.Errorf("POST node-a /@broadcast after the kill = %d %s", status, body)
	}
	expect("direct-after-kill", ka)
	if status, body := mgmt(t, http.MethodPost, b.http+"/@connections/"+ka.id, "direct-after-kill"); status != http.StatusOK {
		t.Errorf("POST node-b /@connections/k-a after the kill = %d %s", status, body)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return len(ka.missing())+len(kb.missing()) == 0 },
		"node-a and node-b deliver to each other after node-c's death; missing %s", describeMissing([]*client{ka, kb}))
	// A lease renewal that failed while the engine elected new leaders
	// marks a node degraded; the next renewal must bring it back.
	for _, n := range []*node{a, b} {
		var status int
		var h health
		testutil.Eventually(t, bound, func() bool {
			status, h = healthz(t, n)
			return status == http.StatusOK && h.Cluster.State == "ok"
		}, "%s /healthz after node-c's death returns to 200 and state ok; last %v", n.name, lazy(func() string { return fmt.Sprintf("%d %+v", status, h) }))
	}
}

// TestClusterDrain: a node drained with SIGTERM closes its clients with
// 1001 and runs their $disconnect; its records go at once, so the others
// answer 410 for them right away, and keep serving. Then, on an engine of
// its own, a node frozen with SIGSTOP: its connections answer 410 from the
// others once its lease lapses.
func TestClusterDrain(t *testing.T) {
	t.Parallel()
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cl := startCluster(t, f)
			a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
			a1, b1, b2, c1 := dial(t, a, "a1"), dial(t, b, "b1"), dial(t, b, "b2"), dial(t, c, "c1")
			identify(t, c, a1, b1, b2, c1)
			b1.send(t, `{"action":"subscribe","entityId":"news"}`)
			a1.send(t, `{"action":"subscribe","entityId":"news"}`)
			testutil.Eventually(t, 20*time.Second, func() bool {
				n := 0
				for _, it := range listAll(t, c, 100) {
					n += len(it.Topics)
				}
				return n == 2
			}, "the subscriptions are listed")

			b.signal(t, syscall.SIGTERM)
			for _, x := range []*client{b1, b2} {
				if code := x.closed(t); code != websocket.StatusGoingAway {
					t.Errorf("%s closed with %d %q on SIGTERM, want 1001", x.name, code, x.closeReason)
				}
			}
			if code := b.wait(t); code != 0 {
				t.Errorf("node-b exit code after SIGTERM = %d, want 0", code)
			}
			// Right away: not once a lease lapses.
			for _, x := range []*client{b1, b2} {
				goneEverywhere(t, x.id, a, c)
				if on := cl.disc.ranOn(x.id); !slices.Equal(on, []string{"node-b"}) {
					t.Errorf("$disconnect of %s ran on %q, want node-b", x.name, on)
				}
			}
			var agents []string
			for _, it := range listAll(t, a, 1) {
				agents = append(agents, it.Identity.UserAgent)
			}
			slices.Sort(agents)
			if !slices.Equal(agents, []string{"a1", "c1"}) {
				t.Errorf("listing through node-a after node-b's drain: %q, want [a1 c1]", agents)
			}

			expect("after-drain", a1, c1)
			if status, body := mgmt(t, http.MethodPost, c.http+"/@broadcast", "after-drain"); status != http.StatusOK {
				t.Errorf("POST node-c /@broadcast after the drain = %d %s", status, body)
			}
			expect("news-after-drain", a1)
			if status, body := mgmt(t, http.MethodPost, c.http+"/@topics/news", "news-after-drain"); status != http.StatusOK {
				t.Errorf("POST node-c /@topics/news after the drain = %d %s", status, body)
			}
			expect("direct-after-drain", c1)
			if status, body := mgmt(t, http.MethodPost, a.http+"/@connections/"+c1.id, "direct-after-drain"); status != http.StatusOK {
				t.Errorf("POST node-a /@connections/c1 after the drain = %d %s", status, body)
			}
			settle(t, a, a1, c1)
			for _, n := range []*node{a, c} {
				if status, h := healthz(t, n); status != http.StatusOK || h.Cluster.State != "ok" {
					t.Errorf("%s /healthz after node-b's drain = %d %+v, want 200 and state ok", n.name, status, h)
				}
			}
			if cl.engine == nil {
				return // node-a alone is no quorum for the embedded servers' directory
			}

			// A frozen node still holds its subscriptions, so nothing tells
			// the others it is gone but its lease: they answer 410 once it lapses.
			c.signal(t, syscall.SIGSTOP)
			defer c.signal(t, syscall.SIGCONT)
			frozen := time.Now()
			testutil.Eventually(t, 5*clusterTTL+20*time.Second, func() bool { return answers(t, a, c1.id, http.StatusGone) },
				"node-a answers 410 for c1 of the frozen node-c")
			t.Logf("node-c frozen: node-a answered 410 for its connection after %v (cluster.ttl %v)",
				time.Since(frozen).Round(10*time.Millisecond), clusterTTL)
			goneEverywhere(t, c1.id, a)
		})
	}
}

// engineRestart stops the engine mid-traffic and starts it again on the
// same address. Meanwhile local traffic keeps working, /healthz reports
// the engine's state, and what could not cross is reported to the caller;
// afterwards, cross-node delivery works again.
func engineRestart(t *testing.T, cl *cluster) {
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	ra1, ra2 := dial(t, a, "r-a1"), dial(t, a, "r-a2")
	rb := dial(t, b, "r-b")
	rc := dial(t, c, "r-c")
	all := []*client{ra1, ra2, rb, rc}
	identify(t, a, all...)
	for _, x := range []*client{ra1, rb, rc} {
		x.send(t, `{"action":"subscribe","entityId":"restart"}`)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		n := 0
		for _, it := range listAll(t, b, 100) {
			if slices.Contains(it.Topics, "restart") {
				n++
			}
		}
		return n == 3
	}, "the subscriptions are listed")
	for _, n := range cl.nodes {
		if status, h := healthz(t, n); status != http.StatusOK || h.Cluster.State != "ok" || h.Cluster.Node != n.name {
			t.Errorf("%s /healthz before the restart = %d %+v, want 200, state ok and its name", n.name, status, h)
		}
	}

	tr := startTraffic(t, c, rc)
	tr.waitSent(t, 3)
	tr.setPhase(phaseTransition)
	// The engine stops once what was sent while it was up has arrived. A
	// broadcast answered 200 was handed to the engine's client, which
	// writes it out a moment later: stopped in that moment, the engine
	// never sees it. That broadcast was in transit at the stop, not sent
	// while the engine was up, and the slower the machine, the likelier.
	tr.waitDelivered(t, all)
	cl.engine.stop()
	// Every node notices, then stops reporting healthy after cluster.grace.
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, n := range cl.nodes {
			if _, h := healthz(t, n); h.Cluster.State == "ok" {
				return false
			}
		}
		return true
	}, "every node's /healthz reports the engine lost")
	tr.setPhase(phaseDown)
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, n := range cl.nodes {
			if status, _ := healthz(t, n); status != http.StatusServiceUnavailable {
				return false
			}
		}
		return true
	}, "every node's /healthz answers 503 once cut off longer than cluster.grace")

	// Local traffic keeps working: a management post and a client's broadcast.
	expect("local-down", ra1)
	if status, body := mgmt(t, http.MethodPost, a.http+"/@connections/"+ra1.id, "local-down"); status != http.StatusOK {
		t.Errorf("POST node-a /@connections/r-a1 (its own) while the engine is down = %d %s", status, body)
	}
	ra2.send(t, `{"action":"sendMessage","data":"chat-down"}`)
	testutil.Eventually(t, 20*time.Second, func() bool { return ra1.has("chat-down") && ra2.has("chat-down") },
		"a client's broadcast reaches the node's own clients while the engine is down")
	// What cannot cross is reported to the caller, not taken and dropped.
	status, body := mgmt(t, http.MethodPost, a.http+"/@connections/"+rc.id, "cross-down")
	if status == http.StatusOK || status == http.StatusGone {
		t.Errorf("POST node-a /@connections/r-c (on node-c) while the engine is down = %d %s, want an error that is not 410", status, body)
	}
	tr.waitSent(t, tr.sent()+3)

	tr.setPhase(phaseTransition)
	cl.engine.start()
	testutil.Eventually(t, 60*time.Second, func() bool {
		for _, n := range cl.nodes {
			if status, h := healthz(t, n); status != http.StatusOK || h.Cluster.State != "ok" {
				return false
			}
		}
		return true
	}, "every node's /healthz is ok again once the engine is back")
	// Cross-node delivery works again: interest declared anew, records known.
	testutil.Eventually(t, 30*time.Second, func() bool {
		msg := "probe-" + apigw.NewID()
		allow(msg, ra1, rb, rc)
		if status, _, _, err := mgmtCall(http.MethodPost, b.http+"/@topics/restart", msg); err != nil || status != http.StatusOK {
			return false
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if ra1.has(msg) && rb.has(msg) && rc.has(msg) {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}, "a publication through node-b reaches the subscribers of every node after the restart")
	tr.setPhase(phaseUp)
	tr.waitSent(t, tr.sent()+5)
	tr.stop()

	expect("cross-up", rc)
	if status, body := mgmt(t, http.MethodPost, a.http+"/@connections/"+rc.id, "cross-up"); status != http.StatusOK {
		t.Errorf("POST node-a /@connections/r-c after the restart = %d %s", status, body)
	}
	// Each node adds its records again once it sees the directory lost
	// them, which the probe above need not have waited for.
	testutil.Eventually(t, 30*time.Second, func() bool {
		return answers(t, a, rc.id, http.StatusOK) && answers(t, c, ra1.id, http.StatusOK)
	}, "the directory does not know the connections opened before the restart")
	if n := len(listAll(t, b, 3)); n < len(all) {
		t.Errorf("listing through node-b after the restart: %d connections, want at least %d", n, len(all))
	}

	// Every message of the traffic is accounted for.
	tr.account(t, all)
	expect("chat-down", ra1, ra2)
	ra2.allowErrorFrames() // the sender may be told that its broadcast did not cross
	settle(t, a, all...)
	m := metricsOf(t, c)
	if failed := failedCalls(t, m, "Broadcast"); failed < tr.reported {
		t.Errorf("node-c's /metrics counts %d failed Broadcast calls, though %d were answered with an error", failed, tr.reported)
	}
	if n := counter(t, m, `switchboard_cluster_undelivered_total{op="broadcast"}`); n < tr.reported {
		t.Errorf("node-c's /metrics counts %d undelivered broadcasts, though %d were answered with an error", n, tr.reported)
	}
	if n := counter(t, metricsOf(t, a), "switchboard_cluster_call_failures_total"); n == 0 {
		t.Errorf("node-a's /metrics counts no failed cluster call, though a post to another node's connection failed")
	}
}

// A traffic phase: what a broadcast made in it must have become.
type phase int

const (
	phaseUp         phase = iota // the engine is up: everyone receives it once
	phaseDown                    // every node knows the engine is down: reported to the caller, or delivered
	phaseTransition              // the engine stops or restarts: anything but a duplicate (at most once)
)

// traffic broadcasts through one node and posts to one of its own
// clients, every 20ms, and keeps each call's outcome.
type traffic struct {
	via   *node
	local *client

	mu    sync.Mutex
	phase phase
	sends []sent

	reported int // broadcasts answered with an error, after account
	stopc    chan struct{}
	done     chan struct{}
}

type sent struct {
	seq          int
	phase        phase
	bcStatus     int // 0: no answer
	localStatus  int
	bc, localMsg string
}

func startTraffic(t *testing.T, via *node, local *client) *traffic {
	tr := &traffic{via: via, local: local, stopc: make(chan struct{}), done: make(chan struct{})}
	go tr.run()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *traffic) run() {
	defer close(tr.done)
	tick := time.NewTicker(20 * time.Millisecond) // a pace for the traffic, not a wait
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-tr.stopc:
			return
		case <-tick.C:
		}
		tr.mu.Lock()
		s := sent{seq: seq, phase: tr.phase, bc: fmt.Sprintf("traffic-%d", seq), localMsg: fmt.Sprintf("local-%d", seq)}
		tr.mu.Unlock()
		s.bcStatus, _, _, _ = mgmtCall(http.MethodPost, tr.via.http+"/@broadcast", s.bc)
		s.localStatus, _, _, _ = mgmtCall(http.MethodPost, tr.via.http+"/@connections/"+tr.local.id, s.localMsg)
		tr.mu.Lock()
		if tr.phase != s.phase { // it changed during the calls
			s.phase = phaseTransition
		}
		tr.sends = append(tr.sends, s)
		tr.mu.Unlock()
	}
}

func (tr *traffic) setPhase(p phase) {
	tr.mu.Lock()
	tr.phase = p
	tr.mu.Unlock()
}

func (tr *traffic) sent() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.sends)
}

func (tr *traffic) waitSent(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() bool { return tr.sent() >= n }, "%d calls of traffic made", n)
}

// waitDelivered waits until every broadcast answered 200 while the engine
// was up has reached every client.
func (tr *traffic) waitDelivered(t *testing.T, clients []*client) {
	t.Helper()
	tr.mu.Lock()
	var up []string
	for _, s := range tr.sends {
		if s.phase == phaseUp && s.bcStatus == http.StatusOK {
			up = append(up, s.bc)
		}
	}
	tr.mu.Unlock()
	var missing string
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, bc := range up {
			for _, c := range clients {
				if !c.has(bc) {
					missing = c.name + " lacks " + bc
					return false
				}
			}
		}
		return true
	}, "the broadcasts made while the engine was up arrive; %s", lazy(func() string { return missing }))
}

func (tr *traffic) stop() {
	select {
	case <-tr.stopc:
	default:
		close(tr.stopc)
	}
	<-tr.done
}

// account checks what became of each call: a post to the node's own
// client always succeeds; a broadcast reaches every client once when the
// engine is up, and while it is down is either reported to the caller or
// delivered, never answered 200 and lost.
func (tr *traffic) account(t *testing.T, clients []*client) {
	t.Helper()
	counts := map[phase]map[int]int{}
	for _, s := range tr.sends {
		if counts[s.phase] == nil {
			counts[s.phase] = map[int]int{}
		}
		counts[s.phase][s.bcStatus]++
		if s.localStatus != http.StatusOK {
			t.Errorf("post %s to %s's own client = %d, want 200 whatever the engine's state", s.localMsg, tr.via.name, s.localStatus)
		} else {
			expect(s.localMsg, tr.local)
		}
		switch {
		case s.bcStatus != http.StatusOK:
			tr.reported++
			allow(s.bc, clients...) // its node's own clients may have it
		case s.phase == phaseUp || s.phase == phaseDown:
			expect(s.bc, clients...)
		default:
			allow(s.bc, clients...)
		}
	}
	t.Logf("traffic through %s: broadcast answers by phase (0 engine up, 1 down, 2 stopping or restarting): %v", tr.via.name, counts)
}

// metricsOf returns n's /metrics.
func metricsOf(t *testing.T, n *node) string {
	t.Helper()
	status, body := mgmt(t, http.MethodGet, n.http+"/metrics", "")
	if status != http.StatusOK {
		t.Fatalf("GET %s /metrics = %d", n.name, status)
	}
	return body
}

// samples calls f with each sample of metrics: its name and labels as
// written, and its value.
func samples(t *testing.T, metrics string, f func(series string, v float64)) {
	t.Helper()
	for line := range strings.Lines(metrics) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics: cannot read %q", line)
		}
		f(line[:i], v)
	}
}

// counter sums the samples whose series starts with prefix.
func counter(t *testing.T, metrics, prefix string) int {
	t.Helper()
	total := 0.0
	samples(t, metrics, func(series string, v float64) {
		if strings.HasPrefix(series, prefix) {
			total += v
		}
	})
	return int(total)
}

// failedCalls returns how many management calls of operation metrics
// counts with a status other than 200.
func failedCalls(t *testing.T, metrics, operation string) int {
	t.Helper()
	total := 0.0
	samples(t, metrics, func(series string, v float64) {
		if strings.HasPrefix(series, "switchboard_management_requests_total{") &&
			strings.Contains(series, `operation="`+operation+`"`) && !strings.Contains(series, `="200"`) {
			total += v
		}
	})
	return int(total)
}
