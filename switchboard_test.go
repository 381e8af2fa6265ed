package switchboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// Every gateway a test starts leaves no goroutine behind once shut down.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(testutil.IdleWorkers); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// running is a gateway served on a random loopback port.
type running struct {
	*switchboard.Gateway
	WS, HTTP string
	served   chan error // Serve's result
}

// start builds a gateway from opts, serves it on a random loopback port,
// and shuts it down at the end of the test.
func start(t *testing.T, opts switchboard.Options) *running {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gw, err := switchboard.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{Gateway: gw, WS: "ws://" + ln.Addr().String(), HTTP: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	go func() { r.served <- gw.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-r.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return r
}

// recorder keeps the requests a route's handler received, by route key.
type recorder struct {
	mu   sync.Mutex
	reqs map[string][]switchboard.Request
}

func (rec *recorder) add(r *switchboard.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.reqs == nil {
		rec.reqs = map[string][]switchboard.Request{}
	}
	rec.reqs[r.RouteKey] = append(rec.reqs[r.RouteKey], *r)
}

func (rec *recorder) get(key string) []switchboard.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]switchboard.Request(nil), rec.reqs[key]...)
}

// whoami answers the caller's connection ID.
func whoami(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
	return &switchboard.Response{Body: []byte(r.Conn.ID)}, nil
}

// Handlers receive their route's request: route key, event type, the
// caller's connection ID, the body verbatim; $connect sees the handshake's
// query and headers, $disconnect the close code.
func TestHandlersReceiveTheRequest(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	record := func(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
		rec.add(r)
		return &switchboard.Response{Body: append([]byte("got "), r.Body...)}, nil
	}
	gw := start(t, switchboard.Options{Routes: map[string]switchboard.Route{
		"$connect":    {Handler: record},
		"$disconnect": {Handler: record},
		"$default":    {Handler: record},
		"sendMessage": {Handler: record},
		"whoami":      {Handler: whoami},
	}})
	c := testutil.Dial(t, gw.WS+"?room=lobby", &websocket.DialOptions{HTTPHeader: http.Header{"X-Team": {"blue"}}})
	id := testutil.ReadTextAfter(t, c, `{"action":"whoami"}`)

	msg := `{"action":"sendMessage","data":"hi"}`
	if got := testutil.ReadTextAfter(t, c, msg); got != "got "+msg {
		t.Errorf("sendMessage answered %q, want %q", got, "got "+msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	if typ, got := testutil.Read(t, c, 5*time.Second); typ != websocket.MessageBinary || got != "got \xff\x00" {
		t.Errorf("$default answered %v %q, want binary %q", typ, got, "got \xff\x00")
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rec.get("$disconnect")) == 1 }, "$disconnect ran")

	connect := rec.get("$connect")
	if len(connect) != 1 {
		t.Fatalf("$connect ran %d times, want 1", len(connect))
	}
	if r := connect[0]; r.EventType != switchboard.EventConnect || r.Conn.ID != id || r.Conn.Query.Get("room") != "lobby" ||
		r.Conn.Header.Get("X-Team") != "blue" || r.Conn.SourceIP != "127.0.0.1" || r.Conn.Stage != "dev" || len(r.Body) != 0 {
		t.Errorf("$connect request = %+v, want CONNECT of %s with room=lobby, X-Team: blue, from 127.0.0.1, stage dev, no body", r, id)
	}
	send := rec.get("sendMessage")
	if len(send) != 1 {
		t.Fatalf("sendMessage ran %d times, want 1", len(send))
	}
	if r := send[0]; r.EventType != switchboard.EventMessage || r.Conn.ID != id || string(r.Body) != msg || r.Binary ||
		r.MessageID == "" || r.RequestID == "" || r.Conn.Header != nil {
		t.Errorf("sendMessage request = %+v, want MESSAGE of %s, body %s, with IDs and no headers", r, id, msg)
	}
	if d := rec.get("$default"); len(d) != 1 || !d[0].Binary || d[0].RouteKey != "$default" {
		t.Errorf("$default requests = %+v, want one binary", d)
	}
	code, metrics := testutil.Get(t, gw.HTTP+"/metrics")
	if want := `switchboard_integration_duration_seconds_count{integration="go",route="sendMessage"} 1`; code != http.StatusOK || !strings.Contains(metrics, want) {
		t.Errorf("GET /metrics = %d, lacking %s", code, want)
	}
	d := rec.get("$disconnect")[0]
	if d.EventType != switchboard.EventDisconnect || d.Conn.ID != id || d.DisconnectStatusCode != 1000 || d.DisconnectReason != "bye" {
		t.Errorf("$disconnect request = %+v, want DISCONNECT of %s with 1000 bye", d, id)
	}
}

// What a handler returns reaches the client as API Gateway would send it:
// a $connect status refuses the handshake, a ClientError's message and an
// error's "Internal server error" arrive as error frames, a panic is an
// error, and a status outside 200-599 is one too.
func TestHandlerAnswers(t *testing.T) {
	t.Parallel()
	gw := start(t, switchboard.Options{Routes: map[string]switchboard.Route{
		"$connect": {Handler: func(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
			switch q := r.Conn.Query; {
			case q.Get("fail") != "":
				return nil, errors.New("user store down")
			case q.Get("name") == "":
				return &switchboard.Response{StatusCode: http.StatusUnauthorized}, nil
			}
			return &switchboard.Response{Headers: map[string]string{
				"X-Switchboard-User":     r.Conn.Query.Get("name"),
				"Sec-WebSocket-Protocol": "chat.v2",
			}}, nil
		}},
		"user": {Handler: func(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
			return &switchboard.Response{Body: []byte(r.Conn.User)}, nil
		}},
		"refuse": {Handler: func(context.Context, *switchboard.Request) (*switchboard.Response, error) {
			return nil, fmt.Errorf("checking: %w", &switchboard.ClientError{Message: "Not today"})
		}},
		"fail": {Handler: func(context.Context, *switchboard.Request) (*switchboard.Response, error) {
			return nil, errors.New("database down")
		}},
		"panic": {Handler: func(context.Context, *switchboard.Request) (*switchboard.Response, error) {
			panic("boom")
		}},
		"badStatus": {Handler: func(context.Context, *switchboard.Request) (*switchboard.Response, error) {
			return &switchboard.Response{StatusCode: 700}, nil
		}},
		"quiet": {Handler: func(context.Context, *switchboard.Request) (*switchboard.Response, error) { return nil, nil }},
		"bin": {Handler: func(context.Context, *switchboard.Request) (*switchboard.Response, error) {
			return &switchboard.Response{Body: []byte("abc"), Binary: true}, nil
		}},
	}})
	if got := testutil.DialStatus(t, gw.WS, nil); got != http.StatusUnauthorized {
		t.Errorf("handshake without a name: %d, want 401 from $connect", got)
	}
	if got := testutil.DialStatus(t, gw.WS+"?name=ada&fail=1", nil); got != http.StatusBadGateway {
		t.Errorf("handshake whose $connect failed: %d, want 502", got)
	}
	c := testutil.Dial(t, gw.WS+"?name=ada", &websocket.DialOptions{Subprotocols: []string{"chat.v1", "chat.v2"}})
	if got := c.Subprotocol(); got != "chat.v2" {
		t.Errorf("subprotocol = %q, want chat.v2 (Sec-WebSocket-Protocol of $connect)", got)
	}
	if got := testutil.ReadTextAfter(t, c, `{"action":"user"}`); got != "ada" {
		t.Errorf("user = %q, want ada (X-Switchboard-User of $connect)", got)
	}
	for action, want := range map[string]string{
		"refuse":    `"message": "Not today"`,
		"fail":      `"message": "Internal server error"`,
		"panic":     `"message": "Internal server error"`,
		"badStatus": `"message": "Internal server error"`,
	} {
		if got := testutil.ReadTextAfter(t, c, `{"action":"`+action+`"}`); !strings.Contains(got, want) {
			t.Errorf("%s answered %q, want it to contain %s", action, got, want)
		}
	}
	// quiet answers nothing: the next frame is bin's answer.
	testutil.Write(t, c, `{"action":"quiet"}`)
	testutil.Write(t, c, `{"action":"bin"}`)
	if typ, got := testutil.Read(t, c, 5*time.Second); typ != websocket.MessageBinary || got != "abc" {
		t.Errorf("after quiet, bin answered %v %q; want binary abc", typ, got)
	}
}

// connID asks a gateway with the whoami route for c's connection ID.
func connID(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	return testutil.ReadTextAfter(t, c, `{"action":"whoami"}`)
}

// Deliveries from Go reach the clients: Send to one, Publish to the
// subscribers of a topic (whether a Go handler or the built-in subscribe
// route subscribed them), Broadcast to all, and Disconnect closes one with
// 1000 and runs $disconnect.
func TestPushFromGo(t *testing.T) {
	t.Parallel()
	var gw *switchboard.Gateway
	disconnected := make(chan string, 4)
	r := start(t, switchboard.Options{Routes: map[string]switchboard.Route{
		"whoami": {Handler: whoami, Inline: true},
		"join": {Handler: func(ctx context.Context, r *switchboard.Request) (*switchboard.Response, error) {
			return &switchboard.Response{Body: []byte("joined")}, gw.Subscribe(ctx, r.Conn.ID, "room")
		}},
		"subscribe": {Builtin: switchboard.BuiltinSubscribe},
		"$disconnect": {Handler: func(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
			disconnected <- fmt.Sprintf("%s %d", r.Conn.ID, r.DisconnectStatusCode)
			return nil, nil
		}},
	}})
	gw = r.Gateway
	ctx := context.Background()
	a, b := testutil.Dial(t, r.WS, nil), testutil.Dial(t, r.WS, nil)
	idA, idB := connID(t, a), connID(t, b)

	if err := gw.Send(ctx, idA, []byte("just for a")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := testutil.ReadText(t, a); got != "just for a" {
		t.Errorf("a got %q, want %q", got, "just for a")
	}
	if err := gw.Send(ctx, idA, []byte{0xff}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if typ, got := testutil.Read(t, a, 5*time.Second); typ != websocket.MessageBinary || got != "\xff" {
		t.Errorf("a got %v %q, want binary 0xff (not UTF-8)", typ, got)
	}

	if got := testutil.ReadTextAfter(t, a, `{"action":"join"}`); got != "joined" {
		t.Fatalf("join answered %q", got)
	}
	testutil.Write(t, b, `{"action":"subscribe","topic":"room"}`) // the built-in answers nothing
	testutil.Eventually(t, 5*time.Second, func() bool { return subscribed(t, r, idB) }, "b subscribed to room")
	n, err := gw.Publish(ctx, "room", []byte("to the room"))
	if err != nil || n != 2 {
		t.Fatalf("Publish = %d, %v; want 2 recipients", n, err)
	}
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := testutil.ReadText(t, c); got != "to the room" {
			t.Errorf("%s got %q, want %q", name, got, "to the room")
		}
	}
	if err := gw.Unsubscribe(ctx, idA, "room"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if n, err := gw.Publish(ctx, "room", []byte("b only")); err != nil || n != 1 {
		t.Errorf("Publish after a left = %d, %v; want 1", n, err)
	}
	if got := testutil.ReadText(t, b); got != "b only" {
		t.Errorf("b got %q", got)
	}

	if n, err := gw.Broadcast(ctx, []byte("to all")); err != nil || n != 2 {
		t.Fatalf("Broadcast = %d, %v; want 2", n, err)
	}
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := testutil.ReadText(t, c); got != "to all" {
			t.Errorf("%s got %q, want %q", name, got, "to all")
		}
	}

	if err := gw.Disconnect(ctx, idB); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if code, reason := testutil.CloseCode(t, b, 5*time.Second); code != websocket.StatusNormalClosure || reason != "Connection Closed Normally" {
		t.Errorf("b closed with %d %q, want 1000 %q", code, reason, "Connection Closed Normally")
	}
	select {
	case got := <-disconnected:
		if got != idB+" 1000" {
			t.Errorf("$disconnect ran for %q, want %q", got, idB+" 1000")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("$disconnect did not run after Disconnect")
	}
}

// subscribed reports whether the management API lists id subscribed to room.
func subscribed(t *testing.T, r *running, id string) bool {
	t.Helper()
	code, body := testutil.Get(t, r.HTTP+"/@connections?limit=100")
	if code != http.StatusOK {
		t.Fatalf("GET /@connections = %d %s", code, body)
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
	for _, it := range page.Items {
		if it.ConnectionID == id {
			return slices.Contains(it.Topics, "room")
		}
	}
	return false
}

// A connection that does not exist, or no longer does, gives ErrGone to
// every delivery method.
func TestGoneConnections(t *testing.T) {
	t.Parallel()
	r := start(t, switchboard.Options{Routes: map[string]switchboard.Route{"whoami": {Handler: whoami}}})
	ctx := context.Background()
	c := testutil.Dial(t, r.WS, nil)
	id := connID(t, c)
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	// The socket is gone before the gateway forgets the connection (its
	// $disconnect runs in between): wait for both.
	testutil.Eventually(t, 5*time.Second, func() bool {
		return errors.Is(r.Send(ctx, id, []byte("x")), switchboard.ErrGone) &&
			errors.Is(r.Unsubscribe(ctx, id, "room"), switchboard.ErrGone)
	}, "Send and Unsubscribe to a closed connection give ErrGone")
	for _, id := range []string{id, "AAAAAAAAAAAAAAA="} {
		for name, err := range map[string]error{
			"Send":        r.Send(ctx, id, []byte("x")),
			"Disconnect":  r.Disconnect(ctx, id),
			"Subscribe":   r.Subscribe(ctx, id, "room"),
			"Unsubscribe": r.Unsubscribe(ctx, id, "room"),
		} {
			if !errors.Is(err, switchboard.ErrGone) || !strings.Contains(err.Error(), id) {
				t.Errorf("%s(%s) = %v, want ErrGone naming the connection", name, id, err)
			}
		}
	}
}

// A client that does not read has its queue overflow: the Send that
// overflowed it gives ErrSlowConsumer, the client is closed with 1008, and
// later sends give ErrGone.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	r := start(t, switchboard.Options{
		Routes: map[string]switchboard.Route{"whoami": {Handler: whoami}},
		Limits: switchboard.Limits{SendQueueMessages: 2},
	})
	c := testutil.Dial(t, r.WS, nil)
	id := connID(t, c)
	big := []byte(strings.Repeat("x", 256<<10))
	var err error
	for i := 0; i < 10000 && err == nil; i++ { // the client reads nothing: its socket fills, then its queue
		err = r.Send(context.Background(), id, big)
	}
	if !errors.Is(err, switchboard.ErrSlowConsumer) {
		t.Fatalf("Send to a client that does not read: %v, want ErrSlowConsumer", err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return errors.Is(r.Send(context.Background(), id, []byte("x")), switchboard.ErrGone)
	}, "Send after the overflow gives ErrGone")
	if code, _ := testutil.CloseCode(t, c, 10*time.Second); code != websocket.StatusPolicyViolation {
		t.Errorf("client closed with %d, want 1008", code)
	}
}

// The AWS SDK's management client works against an embedded gateway with
// SigV4 credentials, beside the Go deliveries.
func TestManagementAPIWithTheAWSSDK(t *testing.T) {
	t.Parallel()
	r := start(t, switchboard.Options{
		Routes:     map[string]switchboard.Route{"whoami": {Handler: whoami}},
		Management: switchboard.Management{AccessKeys: map[string]string{"AKIDEXAMPLE": "secret"}},
	})
	c := testutil.Dial(t, r.WS, nil)
	id := connID(t, c)
	client := func(secret string) *apigatewaymanagementapi.Client {
		return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(r.HTTP + "/dev"),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: secret}, nil
			}),
			RetryMaxAttempts: 1,
		})
	}
	ctx := context.Background()
	api := client("secret")
	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("from the SDK")}); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	if got := testutil.ReadText(t, c); got != "from the SDK" {
		t.Errorf("client got %q", got)
	}
	if _, err := client("wrong").PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("x")}); err == nil {
		t.Error("PostToConnection with a wrong secret succeeded")
	}
	got, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil || aws.ToString(got.Identity.SourceIp) != "127.0.0.1" {
		t.Fatalf("GetConnection = %+v, %v", got, err)
	}
	if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("client closed with %d, want 1000", code)
	}
	var gone *types.GoneException
	if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("x")}); !errors.As(err, &gone) {
		t.Errorf("PostToConnection after DeleteConnection: %v, want GoneException", err)
	}
	if err := r.Send(ctx, id, []byte("x")); !errors.Is(err, switchboard.ErrGone) {
		t.Errorf("Send after DeleteConnection: %v, want ErrGone", err)
	}
}

// Shutdown drains: every client is closed with 1001, $disconnect runs for
// each before Shutdown returns, /healthz answers 503 meanwhile, Serve
// returns http.ErrServerClosed, and the gateway refuses to serve again.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var codes []int
	release := make(chan struct{})
	gw, err := switchboard.New(switchboard.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]switchboard.Route{
			"whoami": {Handler: whoami},
			"$disconnect": {Handler: func(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
				<-release // the drain waits for this
				mu.Lock()
				defer mu.Unlock()
				codes = append(codes, r.DisconnectStatusCode)
				return nil, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()
	clients := []*websocket.Conn{testutil.Dial(t, "ws://"+ln.Addr().String(), nil), testutil.Dial(t, "ws://"+ln.Addr().String(), nil)}
	for _, c := range clients {
		connID(t, c)
	}
	if code, _ := testutil.Get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d before Shutdown, want 200", code)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- gw.Shutdown(ctx)
	}()
	for i, c := range clients {
		if code, reason := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusGoingAway {
			t.Errorf("client %d closed with %d %q, want 1001", i, code, reason)
		}
	}
	if code, _ := testutil.Get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz = %d while draining, want 503", code)
	}
	if code := testutil.DialStatus(t, "ws://"+ln.Addr().String(), nil); code != http.StatusServiceUnavailable {
		t.Errorf("an upgrade while draining got %d, want 503", code)
	}
	if code, body := testutil.Get(t, base+"/@connections"); code != http.StatusOK {
		t.Errorf("the management API while draining answered %d %s, want 200", code, body)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before $disconnect finished", err)
	default:
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	if len(codes) != 2 || codes[0] != 1001 || codes[1] != 1001 {
		t.Errorf("$disconnect ran with %v, want [1001 1001]", codes)
	}
	mu.Unlock()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Serve(ln2); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want http.ErrServerClosed", err)
	}
	if err := gw.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}
	if err := gw.Close(); err != nil {
		t.Errorf("Close after Shutdown = %v, want nil", err)
	}
}

// Close closes the clients at once, with 1001, and does not wait for
// their $disconnect.
func TestClose(t *testing.T) {
	t.Parallel()
	release, ran := make(chan struct{}), make(chan int, 1)
	gw, err := switchboard.New(switchboard.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]switchboard.Route{
			"whoami": {Handler: whoami},
			"$disconnect": {Handler: func(_ context.Context, r *switchboard.Request) (*switchboard.Response, error) {
				<-release
				ran <- r.DisconnectStatusCode
				return nil, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := testutil.Dial(t, "ws://"+ln.Addr().String()+"/dev", nil) // Handler serves the stage's path too
	connID(t, c)
	closed := make(chan websocket.StatusCode, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		closed <- websocket.CloseStatus(err)
	}()
	if err := gw.Close(); err != nil { // $disconnect is still blocked
		t.Fatalf("Close: %v", err)
	}
	if code := <-closed; code != websocket.StatusGoingAway {
		t.Errorf("client closed with %d, want 1001", code)
	}
	close(release)
	if code := <-ran; code != 1001 {
		t.Errorf("$disconnect ran with %d, want 1001", code)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	<-served
}

// fixedAddr is a listener that reports another address than its own.
type fixedAddr struct {
	net.Listener
	addr net.Addr
}

func (l fixedAddr) Addr() net.Addr { return l.addr }

// Serve refuses to expose a management API without credentials on an
// address other than loopback, and serves one that has credentials.
func TestServeRefusesAnExposedManagementAPI(t *testing.T) {
	t.Parallel()
	public := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 80}
	for _, tt := range []struct {
		name string
		mgmt switchboard.Management
		want error // nil: serves
	}{
		{"no credentials", switchboard.Management{}, errors.New("set management.accessKeys or management.tokens")},
		{"a token", switchboard.Management{Tokens: []string{"t0ken"}}, nil},
		{"allowed", switchboard.Management{AllowUnauthenticated: true}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gw, err := switchboard.New(switchboard.Options{Management: tt.mgmt, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer gw.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- gw.Serve(fixedAddr{ln, public}) }()
			if tt.want != nil {
				if err := <-served; err == nil || !strings.Contains(err.Error(), tt.want.Error()) {
					t.Errorf("Serve on %v = %v, want an error containing %q", public, err, tt.want)
				}
				return
			}
			if code, _ := testutil.Get(t, "http://"+ln.Addr().String()+"/healthz"); code != http.StatusOK {
				t.Errorf("/healthz = %d, want 200", code)
			}
			if err := gw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve = %v, want http.ErrServerClosed", err)
			}
		})
	}
}

// Options that do not make a gateway are refused by New, naming what is wrong.
func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *switchboard.Request) (*switchboard.Response, error) { return nil, nil }
	tests := []struct {
		name string
		opts switchboard.Options
		want string
	}{
		{"handler and builtin", switchboard.Options{Routes: map[string]switchboard.Route{"x": {Handler: h, Builtin: switchboard.BuiltinEcho}}},
			`route "x": set exactly one of Handler and Builtin`},
		{"neither", switchboard.Options{Routes: map[string]switchboard.Route{"x": {}}}, `route "x": set exactly one of Handler and Builtin`},
		{"unknown builtin", switchboard.Options{Routes: map[string]switchboard.Route{"x": {Builtin: "lambda"}}}, `route "x": unknown Builtin "lambda"`},
		{"reserved key", switchboard.Options{Routes: map[string]switchboard.Route{"$conect": {Handler: h}}},
			`route "$conect": custom route keys must not start with $ (the $ routes are $connect, $disconnect and $default); did you mean $connect?`},
		{"reserved key of a builtin", switchboard.Options{Routes: map[string]switchboard.Route{"$echo": {Builtin: switchboard.BuiltinEcho}}},
			`routes.$echo: custom route keys must not start with $`},
		{"stage", switchboard.Options{Stage: "a/b"}, `stage: expected letters, digits, - and _, got "a/b"`},
		{"selection", switchboard.Options{RouteSelectionExpression: "$request.header.x"}, `invalid route selection expression "$request.header.x"`},
		{"negative timeout", switchboard.Options{IntegrationTimeout: -time.Second}, "integrationTimeout: expected a duration such as 29s"},
		{"negative burst", switchboard.Options{Limits: switchboard.Limits{ConnectBurst: -1}}, "limits.connectBurst: bursts must not be negative"},
		{"cluster scheme", switchboard.Options{Cluster: switchboard.Cluster{URL: "http://x"}}, `cluster.url: http://x: scheme "http" not supported`},
		{"cluster ttl off", switchboard.Options{Cluster: switchboard.Cluster{URL: "embedded", TTL: -1}}, "cluster.ttl: a lease must end"},
		{"trusted proxy", switchboard.Options{TrustedProxies: []string{"nope"}}, `trustedProxies[0]: expected an IP address or CIDR prefix`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gw, err := switchboard.New(tt.opts)
			if err == nil {
				_ = gw.Close()
				t.Fatalf("New: no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "switchboard: ") {
				t.Errorf("New: %v, want an error starting switchboard: and containing %q", err, tt.want)
			}
		})
	}
}

// Zero options are `switchboard serve` with no configuration: the built-in
// chat and topic routes, stage dev, and no $default.
func TestZeroOptions(t *testing.T) {
	t.Parallel()
	r := start(t, switchboard.Options{})
	a, b := testutil.Dial(t, r.WS, nil), testutil.Dial(t, r.WS+"/dev", nil)
	testutil.Write(t, a, `{"action":"sendMessage","data":"Hello World!"}`)
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := testutil.ReadText(t, c); got != "Hello World!" {
			t.Errorf("%s got %q, want Hello World!", name, got)
		}
	}
	if got := testutil.ReadTextAfter(t, a, `{"action":"nope"}`); !strings.Contains(got, `"message": "Forbidden"`) {
		t.Errorf("an unmatched message got %q, want the Forbidden frame", got)
	}
	for _, path := range []string{"/metrics", "/_/", "/healthz", "/@connections", "/dev/@connections"} {
		if code, _ := testutil.Get(t, r.HTTP+path); code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, code)
		}
	}
}

// An empty route table routes nothing.
func TestEmptyRoutes(t *testing.T) {
	t.Parallel()
	r := start(t, switchboard.Options{Routes: map[string]switchboard.Route{}})
	c := testutil.Dial(t, r.WS, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"sendMessage","data":"x"}`); !strings.Contains(got, `"message": "Forbidden"`) {
		t.Errorf("sendMessage with no routes got %q, want the Forbidden frame", got)
	}
}

// A handler that takes longer than IntegrationTimeout sees its context end,
// and the caller is told the request timed out.
func TestIntegrationTimeout(t *testing.T) {
	t.Parallel()
	ended := make(chan error, 1)
	r := start(t, switchboard.Options{
		IntegrationTimeout: 50 * time.Millisecond,
		Routes: map[string]switchboard.Route{"slow": {Handler: func(ctx context.Context, _ *switchboard.Request) (*switchboard.Response, error) {
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		}}},
	})
	c := testutil.Dial(t, r.WS, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"slow"}`); !strings.Contains(got, `"message": "Endpoint request timed out"`) {
		t.Errorf("slow answered %q, want Endpoint request timed out", got)
	}
	if err := <-ended; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler's context ended with %v, want DeadlineExceeded", err)
	}
}

// Two gateways on one NATS server reach each other's connections: Send,
// Publish, Broadcast and Disconnect through the gateway that does not hold
// the connection.
func TestClusterOfTwoGateways(t *testing.T) {
	t.Parallel()
	for name, engine := range map[string]func(t *testing.T) string{
		"nats":  func(t *testing.T) string { return testutil.StartNATS(t).URL },
		"redis": func(t *testing.T) string { return "redis://" + testutil.StartRedis(t).Addr },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testClusterOfTwo(t, engine(t))
		})
	}
}

func testClusterOfTwo(t *testing.T, url string) {
	var a *running
	node := func(name string) switchboard.Options {
		return switchboard.Options{
			Cluster: switchboard.Cluster{URL: url, Node: name, TTL: 3 * time.Second},
			Routes: map[string]switchboard.Route{
				"whoami": {Handler: whoami},
				"join": {Handler: func(ctx context.Context, r *switchboard.Request) (*switchboard.Response, error) {
					return &switchboard.Response{Body: []byte("joined")}, a.Subscribe(ctx, r.Conn.ID, "room")
				}},
			},
		}
	}
	a = start(t, node("a"))
	b := start(t, node("b"))
	ctx := context.Background()
	c := testutil.Dial(t, a.WS, nil)
	id := connID(t, c)
	if got := testutil.ReadTextAfter(t, c, `{"action":"join"}`); got != "joined" {
		t.Fatalf("join answered %q", got)
	}

	if err := b.Send(ctx, id, []byte("through b")); err != nil {
		t.Fatalf("b.Send to a's connection: %v", err)
	}
	if got := testutil.ReadText(t, c); got != "through b" {
		t.Errorf("client of a got %q", got)
	}
	if n, err := b.Publish(ctx, "room", []byte("room, through b")); err != nil || n != 0 {
		t.Errorf("b.Publish = %d, %v; want 0 of b's own and no error", n, err)
	}
	if got := testutil.ReadText(t, c); got != "room, through b" {
		t.Errorf("client of a got %q", got)
	}
	if _, err := b.Broadcast(ctx, []byte("all, through b")); err != nil {
		t.Errorf("b.Broadcast: %v", err)
	}
	if got := testutil.ReadText(t, c); got != "all, through b" {
		t.Errorf("client of a got %q", got)
	}
	if err := b.Subscribe(ctx, id, "room"); !errors.Is(err, switchboard.ErrGone) {
		t.Errorf("b.Subscribe of a's connection = %v, want ErrGone (a connection of another node)", err)
	}
	if err := b.Disconnect(ctx, id); err != nil {
		t.Fatalf("b.Disconnect: %v", err)
	}
	if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("client of a closed with %d, want 1000", code)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return errors.Is(b.Send(ctx, id, []byte("x")), switchboard.ErrGone)
	}, "b.Send to the closed connection gives ErrGone")
}
