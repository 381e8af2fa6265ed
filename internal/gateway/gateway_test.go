package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/tail"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// recorder is a $disconnect integration that remembers what it was told.
type recorder struct {
	mu   sync.Mutex
	reqs []*integration.Request
}

func (r *recorder) Invoke(_ context.Context, req *integration.Request) (*integration.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return nil, nil
}

func (r *recorder) byConn() map[string]*integration.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*integration.Request{}
	for _, q := range r.reqs {
		out[q.Conn.ID] = q
	}
	return out
}

var echo = integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
	return &integration.Response{StatusCode: 200, Body: req.Body}, nil
})

// startGateway serves a gateway on a random loopback port.
func startGateway(t *testing.T, opts gateway.Options) (*gateway.Gateway, string) {
	t.Helper()
	return startGatewayTB(t, opts)
}

func startGatewayTB(t testing.TB, opts gateway.Options) (*gateway.Gateway, string) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	gw := gateway.New(gateway.NewHub(memreg.New(), "test", nil), opts)
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		hs.Close()
	})
	return gw, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// A slow route delays no other connection, and its own connection's next
// message waits behind it, whether that one's route runs inline or not.
func TestSlowRouteDoesNotDelayOtherConnections(t *testing.T) {
	t.Parallel()
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			slow := integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
				entered <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return &integration.Response{Body: []byte("slow done")}, nil
			})
			_, url := startGateway(t, gateway.Options{Routes: map[string]gateway.Route{
				"slow":     {Integration: slow, RouteResponse: true},
				"$default": {Integration: echo, RouteResponse: true, Inline: inline},
			}})
			a := testutil.Dial(t, url, nil)
			b := testutil.Dial(t, url, nil)

			testutil.Write(t, a, `{"action":"slow"}`)
			<-entered
			testutil.Write(t, a, "after slow") // must wait behind the slow message
			if got := testutil.ReadTextAfter(t, b, "b is not delayed"); got != "b is not delayed" {
				t.Fatalf("b got %q", got)
			}
			close(release)
			if got := testutil.ReadText(t, a); got != "slow done" {
				t.Fatalf("a's first reply = %q, want the slow route's", got)
			}
			if got := testutil.ReadText(t, a); got != "after slow" {
				t.Fatalf("a's second reply = %q, want its second message in order", got)
			}
		})
	}
}

func TestIntegrationErrorsGiveAPIGatewayFrames(t *testing.T) {
	t.Parallel()
	failing := integration.Func(func(context.Context, *integration.Request) (*integration.Response, error) {
		return nil, fmt.Errorf("backend exploded")
	})
	hanging := integration.Func(func(ctx context.Context, _ *integration.Request) (*integration.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	_, url := startGateway(t, gateway.Options{
		IntegrationTimeout: 100 * time.Millisecond,
		Routes: map[string]gateway.Route{
			"fail":     {Integration: failing, RouteResponse: true},
			"hang":     {Integration: hanging, RouteResponse: true},
			"$default": {Integration: echo, RouteResponse: true},
		},
	})
	c := testutil.Dial(t, url, nil)
	for msg, want := range map[string]string{
		`{"action":"fail"}`: `{"message": "Internal server error", "connectionId":"`,
		`{"action":"hang"}`: `{"message": "Endpoint request timed out", "connectionId":"`,
	} {
		if got := testutil.ReadTextAfter(t, c, msg); !strings.HasPrefix(got, want) {
			t.Errorf("after %s got %q, want prefix %q", msg, got, want)
		}
	}
	if got := testutil.ReadTextAfter(t, c, "still open"); got != "still open" {
		t.Errorf("connection unusable after errors: got %q", got)
	}
}

func TestConnectRouteStatusRejectsHandshake(t *testing.T) {
	t.Parallel()
	connect := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		switch req.Conn.Query.Get("as") {
		case "denied":
			return &integration.Response{StatusCode: http.StatusUnauthorized}, nil
		case "broken":
			return nil, fmt.Errorf("connect handler crashed")
		}
		return &integration.Response{StatusCode: 200, Headers: map[string]string{"sec-websocket-protocol": "v2"}}, nil
	})
	_, url := startGateway(t, gateway.Options{Routes: map[string]gateway.Route{"$connect": {Integration: connect}}})
	if got := testutil.DialStatus(t, url+"?as=denied", nil); got != http.StatusUnauthorized {
		t.Errorf("denied: status %d, want 401", got)
	}
	if got := testutil.DialStatus(t, url+"?as=broken", nil); got != http.StatusBadGateway {
		t.Errorf("crashed $connect: status %d, want 502", got)
	}
	c := testutil.Dial(t, url, &websocket.DialOptions{Subprotocols: []string{"v1", "v2"}})
	if got := c.Subprotocol(); got != "v2" {
		t.Errorf("subprotocol = %q, want v2 chosen by $connect", got)
	}
}

// A $connect integration may only answer a final status, 200–599: a 1xx
// must not reach the client as a bare 101 without upgrade headers, nor as
// an informational answer followed by the 101. It is an integration
// failure, 502, as on API Gateway; on a message route, an error frame.
func TestIntegrationStatusOutside200To599IsAFailure(t *testing.T) {
	t.Parallel()
	answer := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		if req.EventType == "MESSAGE" {
			code, _ := strconv.Atoi(string(req.Body))
			return &integration.Response{StatusCode: code, Body: []byte("from the integration")}, nil
		}
		code, _ := strconv.Atoi(req.Conn.Query.Get("status"))
		return &integration.Response{StatusCode: code}, nil
	})
	_, url := startGateway(t, gateway.Options{Routes: map[string]gateway.Route{
		"$connect": {Integration: answer},
		"$default": {Integration: answer, RouteResponse: true},
	}})
	addr := strings.TrimPrefix(url, "ws://")
	for _, code := range []int{-1, 1, 99, 100, 101, 103, 199, 600, 1000} {
		t.Run(fmt.Sprintf("$connect %d", code), func(t *testing.T) {
			t.Parallel()
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(nc, "GET /?status=%d HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", code, addr)
			// The first status line the client sees must be the final answer.
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("$connect answering %d: handshake got %s, want 502", code, resp.Status)
			}
		})
	}
	c := testutil.Dial(t, url+"?status=200", nil)
	for _, code := range []string{"101", "199", "600"} {
		if got := testutil.ReadTextAfter(t, c, code); !strings.HasPrefix(got, `{"message": "Internal server error", "connectionId":"`) {
			t.Errorf("message route answering %s: got %q, want the Internal server error frame", code, got)
		}
	}
	if got := testutil.ReadTextAfter(t, c, "404"); got != "from the integration" {
		t.Errorf("message route answering 404: got %q, want the body", got)
	}
}

func TestDisconnectRunsWithCloseCode(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	gw, url := startGateway(t, gateway.Options{Routes: map[string]gateway.Route{
		"$disconnect": {Integration: rec},
		"$default":    {Integration: echo, RouteResponse: true},
	}})
	closer := testutil.Dial(t, url, nil)
	deleted := testutil.Dial(t, url, nil)
	drained := testutil.Dial(t, url, nil)
	// Clients read, as real ones do, so that they answer the close handshake.
	seen := make(chan websocket.StatusCode, 2)
	for _, c := range []*websocket.Conn{deleted, drained} {
		go func() {
			_, _, err := c.Read(context.Background())
			seen <- websocket.CloseStatus(err)
		}()
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return gw.Hub().Count() == 3 }, "three connections")
	infos, _, err := gw.Hub().List(context.Background(), "", 10)
	if err != nil || len(infos) != 3 {
		t.Fatalf("List = %v, %v", infos, err)
	}
	ids := map[string]bool{}
	for _, in := range infos {
		ids[in.ConnID] = true
	}

	if err := closer.Close(websocket.StatusCode(4000), "bye"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rec.byConn()) == 1 }, "$disconnect after the client's close")
	var deletedID string
	for id := range ids {
		if _, done := rec.byConn()[id]; !done {
			deletedID = id
			break
		}
	}
	if err := gw.Hub().Disconnect(context.Background(), deletedID); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rec.byConn()) == 2 }, "$disconnect after DeleteConnection")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := gw.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// Drain returns only after every $disconnect ran.
	got := rec.byConn()
	if len(got) != 3 {
		t.Fatalf("$disconnect ran for %d connections, want 3", len(got))
	}
	codes := map[int]string{}
	for _, req := range got {
		if req.RouteKey != "$disconnect" || req.EventType != "DISCONNECT" || !ids[req.Conn.ID] {
			t.Errorf("$disconnect request = %+v", req)
		}
		codes[req.DisconnectStatusCode] = req.DisconnectReason
	}
	want := map[int]string{4000: "bye", 1000: "Connection Closed Normally", 1001: "Going away"}
	for code, reason := range want {
		if codes[code] != reason {
			t.Errorf("disconnect codes = %v, want %v", codes, want)
			break
		}
	}
	if a, b := <-seen, <-seen; a+b != 1000+1001 {
		t.Errorf("clients saw close codes %d and %d, want 1000 and 1001", a, b)
	}
}

func TestSlowConsumerIsClosedWithoutDelayingOthers(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	const queueBytes = 256 << 10
	gw, url := startGateway(t, gateway.Options{
		Conn:   wsconn.Options{SendQueueBytes: queueBytes, WriteTimeout: 30 * time.Second},
		Routes: map[string]gateway.Route{"$disconnect": {Integration: rec}},
	})
	stalled := testutil.Dial(t, url, nil) // never reads
	reader := testutil.Dial(t, url, nil)
	testutil.Eventually(t, 5*time.Second, func() bool { return gw.Hub().Count() == 2 }, "two connections")

	// 40 MB through loopback fills the stalled client's socket buffers, then
	// its queue; the reader must get every message, in order, as it is sent.
	const n, size = 640, 64 << 10
	for i := range n {
		prefix := fmt.Sprintf("%05d", i)
		if _, err := gw.Hub().Broadcast(context.Background(), []byte(prefix+strings.Repeat("x", size-5))); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
		_, data := testutil.Read(t, reader, 5*time.Second)
		if data[:5] != prefix {
			t.Fatalf("reader's message %d starts %q", i, data[:5])
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return len(rec.byConn()) == 1 }, "the stalled client is closed")
	for _, req := range rec.byConn() {
		if req.DisconnectStatusCode != 1008 || req.DisconnectReason != wsconn.ReasonSlowConsumer {
			t.Errorf("stalled client closed with %d %q, want 1008 %q", req.DisconnectStatusCode, req.DisconnectReason, wsconn.ReasonSlowConsumer)
		}
	}
	if gw.Hub().Count() != 1 {
		t.Errorf("hub holds %d connections, want only the reader", gw.Hub().Count())
	}
	_ = stalled.CloseNow()
}

func TestSourceIPFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 4)
	connect := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		seen <- req.Conn.SourceIP
		return nil, nil
	})
	tests := []struct {
		name    string
		trusted []netip.Prefix
		xff     string
		want    string
	}{
		{"untrusted peer's header ignored", nil, "203.0.113.9", "127.0.0.1"},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9", "203.0.113.9"},
		{"right-most untrusted hop", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}, "198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"malformed hop stops the walk", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9, garbage", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startGateway(t, gateway.Options{
				TrustedProxies: tt.trusted,
				Routes:         map[string]gateway.Route{"$connect": {Integration: connect}},
			})
			testutil.Dial(t, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {tt.xff}}})
			if got := <-seen; got != tt.want {
				t.Errorf("sourceIp = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConnectionMetadataReachesIntegrations(t *testing.T) {
	t.Parallel()
	got := make(chan *integration.Request, 2)
	capture := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		got <- req
		return nil, nil
	})
	_, url := startGateway(t, gateway.Options{Stage: "prod", Routes: map[string]gateway.Route{
		"$connect": {Integration: capture},
		"$default": {Integration: capture},
	}})
	c := testutil.Dial(t, url+"?room=a&room=b", &websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {"meta-test"}, "X-Custom": {"v"}}})
	conn := <-got
	testutil.Write(t, c, "binary?")
	_ = c.Write(context.Background(), websocket.MessageBinary, []byte{0xff, 0x00})
	msg, bin := <-got, <-got
	if conn.EventType != "CONNECT" || conn.Conn.UserAgent != "meta-test" || conn.Conn.Header.Get("X-Custom") != "v" ||
		strings.Join(conn.Conn.Query["room"], ",") != "a,b" || conn.Conn.Stage != "prod" ||
		conn.Conn.Header.Get("Host") == "" || conn.Conn.Header.Get("Sec-WebSocket-Key") == "" ||
		conn.Conn.Header.Get("X-Forwarded-For") != "127.0.0.1" || conn.Conn.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("$connect request = %+v, conn %+v", conn, conn.Conn)
	}
	if msg.Conn.ID != conn.Conn.ID || msg.EventType != "MESSAGE" || msg.RouteKey != "$default" || msg.MessageID == "" || msg.RequestID == msg.MessageID || string(msg.Body) != "binary?" || msg.Binary {
		t.Errorf("message request = %+v", msg)
	}
	if !bin.Binary || string(bin.Body) != "\xff\x00" || bin.RouteKey != "$default" {
		t.Errorf("binary message request = %+v, want Binary routed to $default", bin)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format string
		want         []string
	}{
		{"template", "$context.routeKey $context.eventType $context.status $context.identity.sourceIp $context.unknown",
			[]string{"msg=\"$connect CONNECT 200 127.0.0.1 -\"", "msg=\"$default MESSAGE 200 127.0.0.1 -\""}},
		{"structured", "", []string{"msg=access", "routeKey=$default", "eventType=MESSAGE", "status=200", "sourceIp=127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out testutil.Buffer
			opts := gateway.Options{
				AccessLog: true, AccessLogFormat: tc.format,
				Routes: map[string]gateway.Route{"$connect": {Integration: echo}, "$default": {Integration: echo, RouteResponse: true}},
			}
			opts.Logger = slog.New(slog.NewTextHandler(&out, nil))
			gw := gateway.New(gateway.NewHub(memreg.New(), "test", nil), opts)
			hs := httptest.NewServer(gw)
			defer hs.Close()
			c := testutil.Dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
			testutil.ReadTextAfter(t, c, "hi")
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("access log lacks %q:\n%s", want, out.String())
				}
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = gw.Drain(ctx)
		})
	}
}

// A client whose messages wait for a slow route is not read meanwhile, so its
// pongs wait too: the gateway must not take it for dead.
//
// The client sends its messages with its handshake, in one write, so that
// the reader is held by the full inbox from its first read, and answers no
// ping while held. The route is released once the client has seen so many
// pings that the pong deadline passed twice over while it was held: a
// gateway that took it for dead would have closed it instead of sending
// them. Nothing here depends on how fast the machine is: the hold lasts
// until the pings came, however long that takes, and the pong timeout is
// long enough for a client that answers as it reads.
func TestBackpressureIsNotAPingTimeout(t *testing.T) {
	t.Parallel()
	const pingInterval, pongTimeout = 10 * time.Millisecond, 500 * time.Millisecond
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	slow := integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &integration.Response{Body: req.Body}, nil
	})
	rec := &recorder{}
	_, url := startGateway(t, gateway.Options{
		InboxSize: 2,
		Conn:      wsconn.Options{PingInterval: pingInterval, PongTimeout: pongTimeout},
		Routes: map[string]gateway.Route{
			"$default":    {Integration: slow, RouteResponse: true},
			"$disconnect": {Integration: rec},
		},
	})
	const n = 10
	var msgs [][]byte
	for i := range n {
		msgs = append(msgs, maskedFrame(0x1, fmt.Appendf(nil, "m%d", i)))
	}
	c := dialPipelined(t, strings.TrimPrefix(url, "ws://"), msgs...)
	<-entered
	// Counted from the first ping after the route was entered: the pong
	// deadline of the ping in force then, or, if a message read meanwhile
	// renewed the client, that of the next ping, was past by the last.
	for pings := 0; pings < 2*int(pongTimeout/pingInterval)+2; {
		op, payload := c.frame(t)
		if op != 0x9 {
			t.Fatalf("while held, after %d pings: got opcode %#x %q, want a ping", pings, op, payload)
		}
		pings++
	}
	close(release)
	for i := range n {
		if got, want := c.text(t), fmt.Sprintf("m%d", i); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	// Still connected: it closes, and $disconnect says so, not a ping timeout.
	c.answer = false
	c.write(t, maskedFrame(0x8, []byte{0x03, 0xe8})) // 1000
	for {
		if op, _ := c.frame(t); op == 0x8 {
			break
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rec.byConn()) == 1 }, "$disconnect ran")
	for _, req := range rec.byConn() {
		if req.DisconnectStatusCode != 1000 {
			t.Errorf("$disconnect: %d %q, want the client's 1000", req.DisconnectStatusCode, req.DisconnectReason)
		}
	}
}

// rawClient is a WebSocket client written by hand, for what a library
// client cannot do: send frames with its handshake, and choose when to
// answer pings.
type rawClient struct {
	nc     net.Conn
	br     *bufio.Reader
	answer bool // answer pings with pongs
}

// dialPipelined opens a WebSocket connection to addr and sends frames in
// the same write as its handshake.
func dialPipelined(t *testing.T, addr string, frames ...[]byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	// A bound for the whole test, against a hang; each step waits on an event.
	_ = nc.SetDeadline(time.Now().Add(2 * time.Minute))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	b := []byte(req)
	for _, f := range frames {
		b = append(b, f...)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{nc: nc, br: bufio.NewReader(nc)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s, want 101", resp.Status)
	}
	return c
}

// maskedFrame encodes a client frame of fewer than 126 bytes, FIN set.
func maskedFrame(op byte, payload []byte) []byte {
	mask := [4]byte{1, 2, 3, 4}
	b := append([]byte{0x80 | op, 0x80 | byte(len(payload))}, mask[:]...)
	for i, p := range payload {
		b = append(b, p^mask[i%4])
	}
	return b
}

func (c *rawClient) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// frame reads one server frame (unmasked, fewer than 64 KiB) and answers
// it if it is a ping and c.answer is set.
func (c *rawClient) frame(t *testing.T) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	op = h[0] & 0x0f
	if op == 0x9 && c.answer {
		c.write(t, maskedFrame(0xa, payload))
	}
	return op, payload
}

// text reads the next text message, answering pings on the way.
func (c *rawClient) text(t *testing.T) string {
	t.Helper()
	c.answer = true
	for {
		op, payload := c.frame(t)
		switch op {
		case 0x1:
			return string(payload)
		case 0x9, 0xa:
		default:
			t.Fatalf("got opcode %#x %q, want a text message", op, payload)
		}
	}
}

func TestStalledPeerIsCutOffByTheWriteTimeout(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	gw, url := startGateway(t, gateway.Options{
		// A queue too large to overflow here: only the write timeout can act.
		Conn:   wsconn.Options{SendQueueBytes: 256 << 20, SendQueueMessages: 100000, WriteTimeout: 200 * time.Millisecond},
		Routes: map[string]gateway.Route{"$disconnect": {Integration: rec}},
	})
	stalled := testutil.Dial(t, url, nil) // never reads
	testutil.Eventually(t, 5*time.Second, func() bool { return gw.Hub().Count() == 1 }, "one connection")
	msg := []byte(strings.Repeat("x", 64<<10))
	for range 400 { // 25 MiB: more than the socket buffers hold
		if _, err := gw.Hub().Broadcast(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return len(rec.byConn()) == 1 }, "the stalled client is cut off")
	for _, req := range rec.byConn() {
		if req.DisconnectStatusCode != 1008 || req.DisconnectReason != wsconn.ReasonWriteTimeout {
			t.Errorf("closed with %d %q, want 1008 %q", req.DisconnectStatusCode, req.DisconnectReason, wsconn.ReasonWriteTimeout)
		}
	}
	_ = stalled.CloseNow()
}

func TestStatsCountConnectionsAndMessages(t *testing.T) {
	t.Parallel()
	gw, url := startGateway(t, gateway.Options{Routes: map[string]gateway.Route{"$default": {Integration: echo, RouteResponse: true}}})
	a := testutil.Dial(t, url, nil)
	b := testutil.Dial(t, url, nil)
	testutil.ReadTextAfter(t, a, "one")
	testutil.ReadTextAfter(t, b, "two")
	_ = b.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, func() bool { return gw.Stats().Disconnects == 1 }, "the close is counted")
	want := gateway.Stats{Connections: 1, Connects: 2, Disconnects: 1, MessagesIn: 2, MessagesOut: 2}
	if got := gw.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// Reload swaps the routes under an open connection: its next message takes
// the new table, on the same socket and with the same connection ID.
func TestReloadSwapsRoutesUnderOpenConnections(t *testing.T) {
	t.Parallel()
	answer := func(body string) gateway.Route {
		return gateway.Route{RouteResponse: true, Integration: integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
			return &integration.Response{Body: []byte(body + " " + req.Conn.ID)}, nil
		})}
	}
	gw, url := startGatewayTB(t, gateway.Options{Routes: map[string]gateway.Route{"$default": answer("old")}})
	c := testutil.Dial(t, url, nil)
	before := testutil.ReadTextAfter(t, c, `{"action":"ping"}`)
	id, ok := strings.CutPrefix(before, "old ")
	if !ok {
		t.Fatalf("before Reload: got %q, want the old route's answer", before)
	}

	gw.Reload(gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Routes: map[string]gateway.Route{
		"$default": answer("new-default"),
		"ping":     answer("new-ping"),
	}})
	if got, want := testutil.ReadTextAfter(t, c, `{"action":"ping"}`), "new-ping "+id; got != want {
		t.Errorf("after Reload: got %q, want %q (the new route, the same connection ID)", got, want)
	}
	if got, want := testutil.ReadTextAfter(t, c, `{"action":"other"}`), "new-default "+id; got != want {
		t.Errorf("after Reload, unmatched: got %q, want %q", got, want)
	}
	if n := gw.Hub().Count(); n != 1 {
		t.Errorf("open connections after Reload = %d, want 1", n)
	}
}

// A message that waits behind a slow one while the routes are reloaded runs
// on the new routes, not on the replaced ones.
func TestReloadReroutesQueuedMessages(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := gateway.Route{RouteResponse: true, Integration: integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		entered <- struct{}{}
		<-release
		return &integration.Response{Body: []byte("slow")}, nil
	})}
	answer := func(body string) gateway.Route {
		return gateway.Route{RouteResponse: true, Integration: integration.Func(func(context.Context, *integration.Request) (*integration.Response, error) {
			return &integration.Response{Body: []byte(body)}, nil
		})}
	}
	// A budget of two messages: the third is refused at once, which tells
	// the test that the reader has queued the second.
	gw, url := startGatewayTB(t, gateway.Options{MessageRate: 0.001, MessageBurst: 2,
		Routes: map[string]gateway.Route{"slow": slow, "next": answer("old")}})
	c := testutil.Dial(t, url, nil)
	testutil.Write(t, c, `{"action":"slow"}`)
	<-entered
	testutil.Write(t, c, `{"action":"next"}`) // waits behind the slow one
	if got := testutil.ReadTextAfter(t, c, `{"action":"probe"}`); !strings.Contains(got, "Too Many Requests") {
		t.Fatalf("third message answered %q, want Too Many Requests", got)
	}

	gw.Reload(gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Routes: map[string]gateway.Route{"slow": slow, "next": answer("new")}})
	close(release)
	if got := testutil.ReadText(t, c); got != "slow" {
		t.Fatalf("first answer %q, want slow", got)
	}
	if got := testutil.ReadText(t, c); got != "new" {
		t.Errorf("the message queued across Reload was answered %q, want new (the route in force)", got)
	}
}

// A message that matches no route is answered Forbidden and shows in the
// tail as unmatched; it and a failed invocation are the Stats' errors.
func TestUnmatchedMessageReachesTheTail(t *testing.T) {
	t.Parallel()
	hub := tail.New(10, 10)
	sub := hub.Subscribe()
	defer hub.Unsubscribe(sub)
	fail := integration.Func(func(context.Context, *integration.Request) (*integration.Response, error) {
		return nil, fmt.Errorf("backend down")
	})
	gw, url := startGateway(t, gateway.Options{Tail: hub, Routes: map[string]gateway.Route{"fail": {Integration: fail}}})
	c := testutil.Dial(t, url, nil)
	const body = `{"action":"nope"}`
	if got := testutil.ReadTextAfter(t, c, body); !strings.Contains(got, `"message": "Forbidden"`) {
		t.Fatalf("answer to an unmatched message = %s, want the Forbidden frame", got)
	}
	var rec tail.Record
	select {
	case rec = <-sub.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no tail record for the unmatched message")
	}
	if !rec.Unmatched || rec.RouteKey != "" || rec.Status != http.StatusForbidden || rec.Error != "Forbidden" ||
		rec.Bytes != len(body) || rec.ConnectionID == "" || rec.RequestID == "" || rec.EventType != "MESSAGE" {
		t.Errorf("tail record = %+v, want an unmatched MESSAGE of %d bytes answered 403 Forbidden", rec, len(body))
	}
	if got := testutil.ReadTextAfter(t, c, `{"action":"fail"}`); !strings.Contains(got, "Internal server error") {
		t.Fatalf("answer to a failing route = %s, want Internal server error", got)
	}
	select {
	case rec = <-sub.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no tail record for the failed invocation")
	}
	if rec.Unmatched || rec.RouteKey != "fail" || rec.Error == "" {
		t.Errorf("tail record of the failed invocation = %+v, want route fail with its error, not unmatched", rec)
	}
	if got := gw.Stats().Errors; got != 2 {
		t.Errorf("Stats().Errors = %d, want 2 (one unmatched, one failed)", got)
	}
}

// A reply queued while the connection's reader waits for room in its inbox
// goes out at once: a route that waits for the client to have read an
// earlier reply (as an application that waits for the client's
// acknowledgement does) finishes, and the reader with it. Were that reply
// held until the reader's read ends, neither would.
func TestReplyIsNotHeldByAWaitingReader(t *testing.T) {
	t.Parallel()
	gotFirst := make(chan struct{})
	route := integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		if string(req.Body) == "m1" {
			select {
			case <-gotFirst:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &integration.Response{Body: req.Body}, nil
	})
	_, url := startGateway(t, gateway.Options{
		InboxSize:          1,
		IntegrationTimeout: 30 * time.Second,
		Routes:             map[string]gateway.Route{"$default": {Integration: route, RouteResponse: true}},
	})
	c := dialPipelined(t, strings.TrimPrefix(url, "ws://"))
	// In one write, after the handshake: one read of the socket finds all
	// three, and the reader waits at m2 while m1 runs.
	var burst []byte
	for i := range 3 {
		burst = append(burst, maskedFrame(0x1, fmt.Appendf(nil, "m%d", i))...)
	}
	c.write(t, burst)
	if got := c.text(t); got != "m0" {
		t.Fatalf("first reply %q, want m0", got)
	}
	close(gotFirst)
	for _, want := range []string{"m1", "m2"} {
		if got := c.text(t); got != want {
			t.Fatalf("reply %q, want %s", got, want)
		}
	}
}

// An answer a route running on the reader queued goes out before the
// reader blocks for room in the connection's inbox: it does not wait for
// the messages behind it. The slow route holds until the answer came, so
// that a held answer hangs the test (until the client's deadline) rather
// than arriving late; no ping could write it meanwhile.
func TestAnswerNotHeldByAFullInbox(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
		select {
		case <-release:
			return &integration.Response{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	echo := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		return &integration.Response{Body: req.Body}, nil
	})
	_, url := startGateway(t, gateway.Options{
		InboxSize: 1,
		Conn:      wsconn.Options{PingInterval: -1},
		Routes: map[string]gateway.Route{
			"echo": {Integration: echo, RouteResponse: true, Inline: true},
			"slow": {Integration: slow, Timeout: 10 * time.Minute},
		},
	})
	echoMsg, slowMsg := []byte(`{"action":"echo"}`), []byte(`{"action":"slow"}`)
	c := dialPipelined(t, strings.TrimPrefix(url, "ws://"))
	// One write after the handshake: the reader gets the three in one read
	// (with the handshake, the first could be handled alone).
	c.write(t, slices.Concat(maskedFrame(0x1, echoMsg), maskedFrame(0x1, slowMsg), maskedFrame(0x1, slowMsg)))
	got := c.text(t)
	close(release)
	if got != string(echoMsg) {
		t.Fatalf("first answer %q, want the echo %s", got, echoMsg)
	}
}
