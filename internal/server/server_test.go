package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/server"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// start runs a server from a YAML config (empty for zero-config) on a random
// loopback port and returns it with its ws:// and http:// base URLs.
func start(t *testing.T, yamlCfg string) (*server.Server, string, string) {
	t.Helper()
	r := servertest.StartYAML(t, yamlCfg)
	return r.Server, r.WS, r.HTTP
}

// connIDs lists the connection IDs through the management API's extension.
func connIDs(t *testing.T, base string) map[string][]string {
	t.Helper()
	status, body := testutil.Get(t, base+"/@connections?limit=1000")
	if status != http.StatusOK {
		t.Fatalf("GET /@connections = %d %s", status, body)
	}
	var page struct {
		Items []struct {
			ConnectionID string   `json:"connectionId"`
			Topics       []string `json:"topics"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("GET /@connections body %q: %v", body, err)
	}
	out := map[string][]string{}
	for _, it := range page.Items {
		out[it.ConnectionID] = it.Topics
	}
	return out
}

// onlyConnID returns the ID of the only open connection.
func onlyConnID(t *testing.T, base string) string {
	t.Helper()
	var ids map[string][]string
	testutil.Eventually(t, 5*time.Second, func() bool { ids = connIDs(t, base); return len(ids) == 1 }, "want exactly one connection, have %v", ids)
	for id := range ids {
		return id
	}
	return ""
}

func TestTutorialBroadcastToThreeClients(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	var clients []*websocket.Conn
	for range 3 {
		clients = append(clients, testutil.Dial(t, wsURL, nil))
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, base)) == 3 }, "three connections registered")
	testutil.Write(t, clients[0], `{"action":"sendMessage","data":"Hello World!"}`)
	for i, c := range clients {
		typ, got := testutil.Read(t, c, 5*time.Second)
		if got != "Hello World!" || typ != websocket.MessageText {
			t.Errorf("client %d got %v %q, want text %q", i, typ, got, "Hello World!")
		}
	}
}

func TestBroadcastNonStringDataIsJSONText(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, "")
	c := testutil.Dial(t, wsURL+"/dev", nil)
	testutil.Write(t, c, `{"action":"sendMessage","data":{"n": [1, 2]}}`)
	if got := testutil.ReadText(t, c); got != `{"n": [1, 2]}` {
		t.Errorf("got %q, want the data's JSON text", got)
	}
}

func TestSubscribePublishIsolation(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	sub := testutil.Dial(t, wsURL, nil)
	other := testutil.Dial(t, wsURL, nil)
	pub := testutil.Dial(t, wsURL, nil)
	testutil.Write(t, sub, `{"action":"subscribe","entityId":"order-42"}`)
	testutil.Write(t, other, `{"action":"subscribe","topic":"order-7"}`)
	testutil.Eventually(t, 5*time.Second, func() bool {
		n := 0
		for _, topics := range connIDs(t, base) {
			n += len(topics)
		}
		return n == 2
	}, "both subscriptions registered")

	testutil.Write(t, pub, `{"action":"publish","entityId":"order-42","data":{"status":"shipped"}}`)
	if got := testutil.ReadText(t, sub); got != `{"status":"shipped"}` {
		t.Fatalf("subscriber got %q", got)
	}
	// A broadcast is queued behind anything else sent to "other": if the
	// publish had reached it, it would arrive first.
	testutil.Write(t, pub, `{"action":"sendMessage","data":"sentinel"}`)
	if got := testutil.ReadText(t, other); got != "sentinel" {
		t.Fatalf("non-subscriber got %q before the sentinel", got)
	}
	if got := testutil.ReadText(t, pub); got != "sentinel" {
		t.Fatalf("publisher got %q before the sentinel", got)
	}

	testutil.Write(t, sub, `{"action":"unsubscribe","entityId":"order-42"}`)
	testutil.Eventually(t, 5*time.Second, func() bool {
		n := 0
		for _, topics := range connIDs(t, base) {
			n += len(topics)
		}
		return n == 1
	}, "unsubscribe applied")
	testutil.Write(t, pub, `{"action":"publish","entityId":"order-42","data":"late"}`)
	testutil.Write(t, pub, `{"action":"sendMessage","data":"sentinel2"}`)
	if got := testutil.ReadText(t, sub); got != "sentinel" {
		t.Fatalf("subscriber's pending message = %q, want the first sentinel", got)
	}
	if got := testutil.ReadText(t, sub); got != "sentinel2" {
		t.Fatalf("unsubscribed client got %q, want only the sentinel", got)
	}
}

var frameRE = regexp.MustCompile(`^\{"message": "([^"]+)", "connectionId":"([A-Za-z0-9_-]{15}=)", "requestId":"([A-Za-z0-9_-]{15}=)"\}$`)

func TestNoRouteGetsForbiddenFrame(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	c := testutil.Dial(t, wsURL, nil)
	id := onlyConnID(t, base)
	for _, msg := range []string{`{"action":"nope"}`, `not json`, `{"action":42}`, `{"action":"$connect"}`} {
		got := testutil.ReadTextAfter(t, c, msg)
		m := frameRE.FindStringSubmatch(got)
		if m == nil || m[1] != "Forbidden" || m[2] != id {
			t.Errorf("after %q got %q, want the Forbidden frame for %s", msg, got, id)
		}
	}
}

func TestBadBuiltinInputGetsClearError(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, "")
	c := testutil.Dial(t, wsURL, nil)
	tests := []struct{ msg, want string }{
		{`{"action":"sendMessage"}`, `Bad request body: "data" is required`},
		{`{"action":"subscribe"}`, `Bad request body: "entityId" or "topic" is required`},
		{`{"action":"publish","topic":"","data":1}`, `Bad request body: "topic" must be a non-empty string or a number`},
	}
	for _, tt := range tests {
		got := testutil.ReadTextAfter(t, c, tt.msg)
		var frame map[string]string
		if err := json.Unmarshal([]byte(got), &frame); err != nil || frame["message"] != tt.want {
			t.Errorf("after %s got %q, want message %q", tt.msg, got, tt.want)
		}
	}
}

const echoConfig = `
routeSelectionExpression: $request.body.meta.type
routes:
  ping:
    integration: {type: mock, response: pong}
  silent:
    integration: {type: mock, response: never}
    routeResponse: false
  $default:
    integration: {type: echo}
`

func TestNestedRouteSelection(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig)
	c := testutil.Dial(t, wsURL, nil)
	if got := testutil.ReadTextAfter(t, c, `{"meta":{"type":"ping"}}`); got != "pong" {
		t.Errorf("nested selection: got %q, want pong", got)
	}
	// A one-way route answers nothing, so the next reply is the echo.
	testutil.Write(t, c, `{"meta":{"type":"silent"}}`)
	if got := testutil.ReadTextAfter(t, c, `{"meta":{"type":"other"}}`); got != `{"meta":{"type":"other"}}` {
		t.Errorf("unknown key: got %q, want the $default echo", got)
	}
	if got := testutil.ReadTextAfter(t, c, `{"meta":{"type":7}}`); got != `{"meta":{"type":7}}` {
		t.Errorf("non-string key: got %q, want the $default echo", got)
	}
}

func TestNonJSONGoesToDefault(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig)
	c := testutil.Dial(t, wsURL, nil)
	for _, msg := range []string{"hello, not json", "{broken", "42"} {
		if got := testutil.ReadTextAfter(t, c, msg); got != msg {
			t.Errorf("got %q, want %q echoed by $default", got, msg)
		}
	}
}

// The echo route keeps a message's frame type: binary comes back binary,
// even when its bytes happen to be valid UTF-8, and text comes back text.
func TestEchoKeepsTheFrameType(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig)
	c := testutil.Dial(t, wsURL, nil)
	tests := []struct {
		name string
		typ  websocket.MessageType
		data string
	}{
		{"binary that is valid UTF-8", websocket.MessageBinary, "hello"},
		{"binary that is a JSON object", websocket.MessageBinary, `{"action":"nothing"}`},
		{"binary that is not UTF-8", websocket.MessageBinary, "\xff\x00"},
		{"text", websocket.MessageText, "hello"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.Write(ctx, tt.typ, []byte(tt.data)); err != nil {
			t.Fatalf("%s: write: %v", tt.name, err)
		}
		cancel()
		if typ, got := testutil.Read(t, c, 5*time.Second); typ != tt.typ || got != tt.data {
			t.Errorf("%s: echo = %v %q, want %v %q", tt.name, typ, got, tt.typ, tt.data)
		}
	}
}

func TestPerConnectionOrdering(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig+"limits: {messageRate: unlimited}\n") // more than a burst, as fast as it goes
	a := testutil.Dial(t, wsURL, nil)
	b := testutil.Dial(t, wsURL, nil)
	const n = 300
	var wg sync.WaitGroup
	for _, c := range []*websocket.Conn{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				_ = c.Write(context.Background(), websocket.MessageText, fmt.Appendf(nil, "m%d", i))
			}
		}()
	}
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		for i := range n {
			if got, want := testutil.ReadText(t, c), fmt.Sprintf("m%d", i); got != want {
				t.Fatalf("client %s message %d = %q, want %q", name, i, got, want)
			}
		}
	}
	wg.Wait()
}

func TestMessageSizeLimit(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig)
	c := testutil.Dial(t, wsURL, nil)
	atLimit := strings.Repeat("a", 128*1024)
	if got := testutil.ReadTextAfter(t, c, atLimit); len(got) != len(atLimit) {
		t.Fatalf("a message of exactly 128 KB came back with %d bytes", len(got))
	}
	testutil.Write(t, c, atLimit+"b")
	if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusMessageTooBig {
		t.Errorf("close code = %d, want 1009", code)
	}
}

func TestConfiguredLimitsUnlimitedMessage(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig+"limits: {maxMessageBytes: unlimited}\n")
	c := testutil.Dial(t, wsURL, nil)
	big := strings.Repeat("z", 300*1024)
	if got := testutil.ReadTextAfter(t, c, big); got != big {
		t.Errorf("unlimited: %d bytes came back, want %d", len(got), len(big))
	}
}

func TestIdleTimeoutClosesWith1001(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig+"limits: {idleTimeout: 300ms, pingInterval: 50ms}\n")
	c := testutil.Dial(t, wsURL, nil)
	// Pings flow every 50ms; they must not keep the connection alive.
	code, reason := testutil.CloseCode(t, c, 5*time.Second)
	if code != websocket.StatusGoingAway || reason != "Idle timeout" {
		t.Errorf("close = %d %q, want 1001 \"Idle timeout\"", code, reason)
	}
}

func TestLifetimeLimitClosesWith1001(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig+"limits: {maxLifetime: 300ms}\n")
	c := testutil.Dial(t, wsURL, nil)
	code, reason := testutil.CloseCode(t, c, 5*time.Second)
	if code != websocket.StatusGoingAway || reason != "Maximum connection duration reached" {
		t.Errorf("close = %d %q, want 1001 for the lifetime limit", code, reason)
	}
}

func TestDrainClosesEveryConnectionWith1001(t *testing.T) {
	t.Parallel()
	srv, wsURL, base := start(t, "")
	var clients []*websocket.Conn
	for range 3 {
		clients = append(clients, testutil.Dial(t, wsURL, nil))
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, base)) == 3 }, "three connections registered")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Drain(ctx) }()
	for i, c := range clients {
		if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusGoingAway {
			t.Errorf("client %d close code = %d, want 1001", i, code)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if status := testutil.DialStatus(t, wsURL, nil); status != http.StatusServiceUnavailable {
		t.Errorf("dial while drained = %d, want 503", status)
	}
	if status, _ := testutil.Get(t, base+"/healthz"); status != http.StatusServiceUnavailable {
		t.Errorf("healthz while drained = %d, want 503", status)
	}
}

func TestHTTPSurface(t *testing.T) {
	t.Parallel()
	_, _, base := start(t, "")
	tests := []struct {
		name, path string
		want       int
	}{
		{"healthz", "/healthz", http.StatusOK},
		{"plain GET on root", "/", http.StatusUpgradeRequired},
		{"plain GET on stage", "/dev", http.StatusUpgradeRequired},
		{"unknown path: a stage the gateway has not", "/nowhere", http.StatusForbidden},
		{"other stage", "/prod", http.StatusForbidden},
		{"unknown path under the stage", "/dev/nowhere", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := testutil.Get(t, base+tt.path); got != tt.want {
				t.Errorf("GET %s = %d %q, want %d", tt.path, got, body, tt.want)
			}
		})
	}
}

func TestSubprotocolWebsocketIsAccepted(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, "")
	c := testutil.Dial(t, wsURL+"/dev", &websocket.DialOptions{Subprotocols: []string{"websocket"}})
	if got := c.Subprotocol(); got != "websocket" {
		t.Fatalf("subprotocol = %q, want websocket", got)
	}
	testutil.Write(t, c, `{"action":"sendMessage","data":"hi"}`)
	if got := testutil.ReadText(t, c); got != "hi" {
		t.Errorf("got %q", got)
	}
}

func TestSubprotocolAllowlist(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, "subprotocols: [graphql-ws]\n")
	c := testutil.Dial(t, wsURL, &websocket.DialOptions{Subprotocols: []string{"chat", "graphql-ws"}})
	if got := c.Subprotocol(); got != "graphql-ws" {
		t.Errorf("subprotocol = %q, want graphql-ws", got)
	}
}

func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig)
	c := testutil.Dial(t, wsURL, nil)
	if err := c.Write(context.Background(), websocket.MessageText, []byte("bad \xff\xfe text")); err != nil {
		t.Fatal(err)
	}
	if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusInvalidFramePayloadData {
		t.Errorf("close code = %d, want 1007", code)
	}
}

// A client that never reads is dropped for an unanswered ping; one that
// reads stays. The pong timeout is the window a reading client has to
// answer: 2s, twenty ping intervals, so that a client that reads on a loaded
// machine answers in time (with 200ms one was dropped as well).
func TestUnansweredPingDropsTheConnection(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, echoConfig+"limits: {pingInterval: 100ms, pongTimeout: 2s}\n")
	silent := testutil.Dial(t, srv.WS, nil) // never reads, so never answers a ping
	alive := testutil.Dial(t, srv.WS, nil)
	go func() { // a client that reads answers pings; it ends when the test closes it
		for {
			if _, _, err := alive.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	var dropped float64
	testutil.Eventually(t, 30*time.Second, func() bool { // a cap: the drop ends the wait
		dropped = value(scrape(t, srv.HTTP), "switchboard_disconnects_total", "reason", "ping_timeout")
		return dropped > 0 // -1 while the series does not exist
	}, "the silent client is dropped for an unanswered ping")
	if dropped != 1 {
		t.Errorf("%v connections dropped for an unanswered ping, want 1: the silent one", dropped)
	}
	if n := len(connIDs(t, srv.HTTP)); n != 1 {
		t.Errorf("%d connections open, want only the one answering pings", n)
	}
	_ = silent
}

// Every payload length encoding of a frame (RFC 6455 §5.2: 7-bit, 16-bit and
// 64-bit) comes back intact, alone and in batches.
func TestFrameLengthsRoundTrip(t *testing.T) {
	t.Parallel()
	_, wsURL, _ := start(t, echoConfig)
	c := testutil.Dial(t, wsURL, nil)
	sizes := []int{1, 125, 126, 127, 65535, 65536, 100000}
	for _, n := range sizes { // one at a time
		msg := strings.Repeat("a", n)
		if got := testutil.ReadTextAfter(t, c, msg); got != msg {
			t.Errorf("size %d came back with %d bytes", n, len(got))
		}
	}
	for _, n := range sizes { // queued together, written as one batch
		testutil.Write(t, c, strings.Repeat("b", n))
	}
	for _, n := range sizes {
		if got := testutil.ReadText(t, c); len(got) != n || strings.Trim(got, "b") != "" {
			t.Errorf("batched size %d came back with %d bytes", n, len(got))
		}
	}
}
