package wsconn_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// server accepts connections with opts, echoes every message, and reports
// each connection's end on closed.
type server struct {
	URL    string
	conns  chan *wsconn.Conn
	closed chan wsconn.CloseInfo
}

func startServer(t *testing.T, opts wsconn.Options, tls bool) *server {
	t.Helper()
	return startEcho(t, opts, tls, false)
}

// startEcho is startServer whose echo answers with ReplyFrame when reply
// is set.
func startEcho(t *testing.T, opts wsconn.Options, tls, reply bool) *server {
	t.Helper()
	s := &server{conns: make(chan *wsconn.Conn, 1000), closed: make(chan wsconn.CloseInfo, 1000)}
	s.URL = listen(t, opts, tls, func(c *wsconn.Conn) {
		c.Start(echo{c, s.closed, reply})
		s.conns <- c
	})
	return s
}

// listen serves WebSocket upgrades on a loopback port, plain or TLS, each
// accepted connection handed to start; it returns the ws:// or wss:// URL.
func listen(t *testing.T, opts wsconn.Options, tls bool, start func(*wsconn.Conn)) string {
	t.Helper()
	u := wsconn.NewUpgrader(opts)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := u.Accept(w, r, wsconn.AcceptOptions{}); err == nil {
			start(c)
		}
	})
	var hs *httptest.Server
	if tls {
		hs = httptest.NewTLSServer(h)
	} else {
		hs = httptest.NewServer(h)
	}
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// echo answers every message with itself, with ReplyFrame when reply is
// set, and reports the end on closed.
type echo struct {
	c      *wsconn.Conn
	closed chan wsconn.CloseInfo
	reply  bool
}

func (e echo) OnMessage(m wsconn.Message) {
	if e.reply {
		_ = e.c.ReplyFrame(wsconn.NewFrame(m.Type, m.Data))
		return
	}
	_ = e.c.Send(m.Type, m.Data)
}

func (e echo) OnClose(ci wsconn.CloseInfo) { e.closed <- ci }

// client is a raw WebSocket client with no goroutine of its own.
type client struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	d := ws.Dialer{Timeout: 5 * time.Second}
	if strings.HasPrefix(url, "wss:") {
		d.TLSConfig = testTLS()
	}
	conn, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return &client{t: t, conn: conn, br: br}
}

func (c *client) send(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	if err := ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewFrame(op, fin, append([]byte(nil), payload...)))); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) next() ws.Frame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(c.br)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// expectClose reads until a close frame and returns its code and reason.
func (c *client) expectClose() (int, string) {
	c.t.Helper()
	for {
		f := c.next()
		if f.Header.OpCode == ws.OpClose {
			if len(f.Payload) < 2 {
				return 0, ""
			}
			return int(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
		}
	}
}

func closed(t *testing.T, s *server) wsconn.CloseInfo {
	t.Helper()
	select {
	case ci := <-s.closed:
		return ci
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end")
		return wsconn.CloseInfo{}
	}
}

// Answers come in order, queued with Send or, by the reader that read the
// messages, with ReplyFrame, which that reader writes itself once a read's
// frames are handled: here many frames a read, and answers of up to 10 KB
// that the client reads only once it sent them all.
func TestEchoInOrder(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		for _, reply := range []bool{false, true} {
			s := startEcho(t, wsconn.Options{}, tls, reply)
			c := dial(t, s.URL)
			for i := range 100 {
				c.send(ws.OpText, true, []byte(strings.Repeat("x", i*100)))
			}
			for i := range 100 {
				if f := c.next(); f.Header.OpCode != ws.OpText || len(f.Payload) != i*100 {
					t.Fatalf("tls=%v reply=%v: message %d: %v %d bytes, want text of %d", tls, reply, i, f.Header.OpCode, len(f.Payload), i*100)
				}
			}
		}
	}
}

// Frames sent with the handshake, before its answer, are read first.
func TestFramesPipelinedWithTheHandshake(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{}, false)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame, _ := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewTextFrame([]byte("early"))))
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	c := &client{t: t, conn: conn, br: br}
	if f := c.next(); string(f.Payload) != "early" {
		t.Errorf("got %q, want the early message echoed", f.Payload)
	}
}

// Idle connections hold no goroutine: the poller starts a reader when bytes
// arrive, and the writer exists only while messages wait.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux only; elsewhere each connection has a reader goroutine")
	}
	s := startServer(t, wsconn.Options{}, false)
	before := runtime.NumGoroutine()
	const n = 200
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, s.URL)
		clients[i].send(ws.OpText, true, []byte("hi"))
		clients[i].next()
	}
	// net/http's goroutine for each handshake ends once its handler returned.
	testutil.Eventually(t, 5*time.Second, func() bool { return runtime.NumGoroutine()-before < n/10 },
		"fewer goroutines than a tenth of the idle connections")
	// And they are all still served.
	for _, c := range clients {
		c.send(ws.OpBinary, true, []byte{1, 2, 3})
		if f := c.next(); f.Header.OpCode != ws.OpBinary || len(f.Payload) != 3 {
			t.Fatalf("got %v %v after idling", f.Header.OpCode, f.Payload)
		}
	}
}

func TestCloseHandshake(t *testing.T) {
	t.Parallel()
	t.Run("server closes", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, wsconn.Options{}, false)
		c := dial(t, s.URL)
		conn := <-s.conns
		_ = conn.Send(wsconn.Text, []byte("last words"))
		conn.Close(4000, "bye")
		if f := c.next(); string(f.Payload) != "last words" {
			t.Errorf("got %q before the close, want the queued message", f.Payload)
		}
		if code, reason := c.expectClose(); code != 4000 || reason != "bye" {
			t.Errorf("close frame %d %q, want 4000 bye", code, reason)
		}
		if err := conn.Send(wsconn.Text, []byte("late")); err != wsconn.ErrClosed {
			t.Errorf("Send after Close = %v, want ErrClosed", err)
		}
		c.send(ws.OpClose, true, ws.NewCloseFrameBody(4000, ""))
		if ci := closed(t, s); ci != (wsconn.CloseInfo{Code: 4000, Reason: "bye"}) {
			t.Errorf("CloseInfo = %+v", ci)
		}
	})
	t.Run("client closes", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, wsconn.Options{}, false)
		c := dial(t, s.URL)
		c.send(ws.OpClose, true, ws.NewCloseFrameBody(4001, "done"))
		if code, reason := c.expectClose(); code != 4001 || reason != "done" {
			t.Errorf("echoed close %d %q, want 4001 done", code, reason)
		}
		if ci := closed(t, s); ci != (wsconn.CloseInfo{Code: 4001, Reason: "done", ByPeer: true}) {
			t.Errorf("CloseInfo = %+v", ci)
		}
	})
	t.Run("client drops", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, wsconn.Options{}, false)
		c := dial(t, s.URL)
		_ = c.conn.Close()
		if ci := closed(t, s); ci.Code != wsconn.StatusAbnormal || !ci.ByPeer {
			t.Errorf("CloseInfo = %+v, want 1006 by the peer", ci)
		}
	})
	t.Run("protocol error", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, wsconn.Options{}, false)
		c := dial(t, s.URL)
		c.send(ws.OpContinuation, true, nil)
		c.send(ws.OpText, true, []byte("sent after the violation: drained, not read"))
		if code, _ := c.expectClose(); code != 1002 {
			t.Errorf("close %d, want 1002", code)
		}
		// The server has shut its side: the client reads the end of the stream.
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("after the close frame: %v, want EOF", err)
		}
		_ = c.conn.Close()
		if ci := closed(t, s); ci.Code != wsconn.StatusProtocolError || ci.ByPeer {
			t.Errorf("CloseInfo = %+v, want 1002 by the server", ci)
		}
	})
	t.Run("protocol error, then a client that never stops sending", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, wsconn.Options{}, false)
		c := dial(t, s.URL)
		// The violation is the first frame the server reads, and the
		// socket never runs dry after it: the close frame must still go
		// out, not wait for a pause in the client's stream.
		stop := make(chan struct{})
		defer close(stop)
		junk := make([]byte, 64<<10)
		c.send(ws.OpContinuation, true, nil)
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.conn.Write(junk); err != nil {
					return
				}
			}
		}()
		if code, _ := c.expectClose(); code != 1002 {
			t.Errorf("close %d, want 1002", code)
		}
	})
}

func TestPingTimeout(t *testing.T) {
	t.Parallel()
	// PongTimeout bounds how late the test may answer a ping: generous, so
	// that a loaded machine that schedules the test late does not count as
	// a client that stopped answering.
	opts := wsconn.Options{PingInterval: 50 * time.Millisecond, PongTimeout: 2 * time.Second}
	s := startServer(t, opts, false)
	c := dial(t, s.URL)
	// Answer a few pings: the connection stays.
	for range 3 {
		f := c.next()
		if f.Header.OpCode != ws.OpPing {
			t.Fatalf("got %v, want a ping", f.Header.OpCode)
		}
		c.send(ws.OpPong, true, f.Payload)
	}
	select {
	case ci := <-s.closed:
		t.Fatalf("closed while answering pings: %+v", ci)
	default:
	}
	// Then stop answering.
	if ci := closed(t, s); ci.Code != wsconn.StatusAbnormal || ci.Reason != wsconn.ReasonPingTimeout || !ci.ByPeer {
		t.Errorf("CloseInfo = %+v, want 1006 %q", ci, wsconn.ReasonPingTimeout)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{IdleTimeout: 100 * time.Millisecond, PingInterval: -1}, false)
	c := dial(t, s.URL)
	if code, reason := c.expectClose(); code != 1001 || reason != wsconn.ReasonIdle {
		t.Errorf("close %d %q, want 1001 %q", code, reason, wsconn.ReasonIdle)
	}
	c.send(ws.OpClose, true, ws.NewCloseFrameBody(1001, ""))
	if ci := closed(t, s); ci.Reason != wsconn.ReasonIdle {
		t.Errorf("CloseInfo = %+v", ci)
	}
}

// A peer that stops reading is cut off once a write makes no progress for
// WriteTimeout.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{WriteTimeout: 200 * time.Millisecond, SendQueueBytes: 1 << 30, SendQueueMessages: 1 << 20}, false)
	dial(t, s.URL) // never reads
	conn := <-s.conns
	chunk := make([]byte, 1<<20)
	for range 64 { // far more than the socket buffers hold
		if conn.Send(wsconn.Binary, chunk) != nil {
			break
		}
	}
	if ci := closed(t, s); ci.Code != wsconn.StatusPolicyViolation || ci.Reason != wsconn.ReasonWriteTimeout {
		t.Errorf("CloseInfo = %+v, want 1008 %q", ci, wsconn.ReasonWriteTimeout)
	}
}

// A writer that finds the socket full waits for the poller to say it is
// writable again, then goes on where it stopped: a reader that falls behind
// and catches up gets everything, in order.
func TestStalledWriterResumes(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{SendQueueBytes: 1 << 30, SendQueueMessages: 1 << 20}, false)
	c := dial(t, s.URL)
	conn := <-s.conns
	const n, size = 64, 256 << 10 // far more than loopback's socket buffers hold
	for i := range n {
		msg := make([]byte, size)
		msg[0], msg[size-1] = byte(i), byte(i)
		if err := conn.Send(wsconn.Binary, msg); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for i := range n {
		f := c.next()
		if len(f.Payload) != size || f.Payload[0] != byte(i) || f.Payload[size-1] != byte(i) {
			t.Fatalf("message %d: %d bytes starting %d, want %d bytes of message %d", i, len(f.Payload), f.Payload[0], size, i)
		}
	}
}

// A frame that arrives a byte at a time is put together across readiness:
// the watched reader keeps the start of a frame without a goroutine waiting
// for its rest.
func TestFrameArrivingByteByByte(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{}, false)
	c := dial(t, s.URL)
	payload := []byte(strings.Repeat("0123456789", 30))                   // a 16-bit length
	frame, _ := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(payload))) // masks a copy
	for i := range frame {
		if _, err := c.conn.Write(frame[i : i+1]); err != nil {
			t.Fatalf("write byte %d: %v", i, err)
		}
	}
	if f := c.next(); f.Header.OpCode != ws.OpBinary || string(f.Payload) != string(payload) {
		t.Errorf("got %v %q, want the binary message echoed", f.Header.OpCode, f.Payload)
	}
}

// stamps reports when each message was received, as OnMessage is told.
type stamps chan time.Time

func (s stamps) OnMessage(m wsconn.Message) { s <- m.Received }
func (stamps) OnClose(wsconn.CloseInfo)     {}

// A message's Received is when its last frame was read: after the client
// sent it, and not when its first fragment came; on a watched socket and on
// one read by a goroutine of its own (TLS) alike.
func TestReceivedIsWhenTheLastFrameCame(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			t.Parallel()
			got := make(stamps, 1)
			c := dial(t, listen(t, wsconn.Options{}, tls, func(c *wsconn.Conn) { c.Start(got) }))
			c.send(ws.OpText, false, []byte("first half, "))
			time.Sleep(100 * time.Millisecond) // the fragments come in reads of their own
			last := time.Now()
			c.send(ws.OpContinuation, true, []byte("second half"))
			select {
			case at := <-got:
				if at.Before(last) || time.Since(at) > 5*time.Second {
					t.Errorf("Received %v, want after the last fragment was sent (%v) and before now", at, last)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no message")
			}
		})
	}
}

// Messages queued between the upgrade and Start (the gateway registers a
// connection before starting it, so a broadcast may reach it then) are
// written once it starts, on the socket the poller now owns.
func TestSendBeforeStart(t *testing.T) {
	t.Parallel()
	u := wsconn.NewUpgrader(wsconn.Options{})
	closed := make(chan wsconn.CloseInfo, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Accept(w, r, wsconn.AcceptOptions{})
		if err != nil {
			return
		}
		for i := range 3 {
			_ = c.Send(wsconn.Text, []byte{'0' + byte(i)})
		}
		c.Start(echo{c: c, closed: closed})
	}))
	t.Cleanup(hs.Close)
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"))
	for i := range 3 {
		if f := c.next(); string(f.Payload) != string(rune('0'+i)) {
			t.Fatalf("message %d = %q", i, f.Payload)
		}
	}
	c.send(ws.OpText, true, []byte("and then"))
	if f := c.next(); string(f.Payload) != "and then" {
		t.Errorf("echo = %q", f.Payload)
	}
}

// A frame that is never finished holds no reader: the idle timeout closes
// the connection.
func TestUnfinishedFrameIdlesOut(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{IdleTimeout: 100 * time.Millisecond, PingInterval: -1}, false)
	c := dial(t, s.URL)
	frame, _ := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("never finished"))))
	if _, err := c.conn.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	if code, reason := c.expectClose(); code != 1001 || reason != wsconn.ReasonIdle {
		t.Errorf("close %d %q, want 1001 %q", code, reason, wsconn.ReasonIdle)
	}
}

// unwatcher echoes, and on the message "unwatch" takes its connection out
// of the poller's set, then sends more than the socket holds.
type unwatcher struct {
	echo
	t *testing.T
}

func (u unwatcher) OnMessage(m wsconn.Message) {
	if string(m.Data) == "unwatch" {
		if err := u.c.UnwatchForTest(); err != nil {
			u.t.Errorf("UnwatchForTest: %v", err)
		}
		big := make([]byte, 1<<20)
		for range 16 {
			_ = u.c.Send(wsconn.Binary, big)
		}
		return
	}
	u.echo.OnMessage(m)
}

// A socket the poller can no longer watch would never be written again
// once full: the failed ArmWrite closes the connection with a reason of
// its own, instead of leaving the writer stalled for ever.
func TestFailedArmWriteClosesTheConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux only")
	}
	t.Parallel()
	u := wsconn.NewUpgrader(wsconn.Options{PingInterval: -1, WriteTimeout: time.Hour, SendQueueBytes: 64 << 20})
	closed := make(chan wsconn.CloseInfo, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Accept(w, r, wsconn.AcceptOptions{})
		if err != nil {
			return
		}
		c.Start(unwatcher{echo{c: c, closed: closed}, t})
	}))
	t.Cleanup(hs.Close)
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"))
	c.send(ws.OpText, true, []byte("hello"))
	if f := c.next(); string(f.Payload) != "hello" {
		t.Fatalf("echo = %q", f.Payload)
	}
	// The client reads nothing more: the socket fills, the writer stalls
	// and asks to be told when it drains, which the kernel refuses.
	c.send(ws.OpText, true, []byte("unwatch"))
	select {
	case ci := <-closed:
		if ci.Code != wsconn.StatusInternalError || ci.Reason != wsconn.ReasonWatchFailed || ci.ByPeer {
			t.Errorf("CloseInfo = %+v, want 1011 %q by the server", ci, wsconn.ReasonWatchFailed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end")
	}
}

// Pongs that answer the server's pings never count against PingRate, however
// often the server pings; unsolicited ones do.
func TestPongsCountOnlyWhenUnsolicited(t *testing.T) {
	t.Parallel()
	s := startServer(t, wsconn.Options{PingInterval: 2 * time.Millisecond, PongTimeout: time.Minute, PingRate: 1}, false)
	c := dial(t, s.URL)
	for answered := 0; answered < 50; {
		if f := c.next(); f.Header.OpCode == ws.OpPing {
			c.send(ws.OpPong, true, f.Payload)
			answered++
		}
	}
	c.send(ws.OpText, true, []byte("still open"))
	for {
		f := c.next()
		if f.Header.OpCode == ws.OpClose {
			t.Fatalf("closed after answering pings: %q", f.Payload[2:])
		}
		if f.Header.OpCode == ws.OpText {
			if string(f.Payload) != "still open" {
				t.Fatalf("echo = %q", f.Payload)
			}
			break
		}
	}

	// With no ping sent, every pong counts.
	quiet := dial(t, startServer(t, wsconn.Options{PingInterval: -1, PingRate: 1}, false).URL)
	quiet.send(ws.OpPong, true, nil)
	quiet.send(ws.OpPong, true, nil)
	if code, reason := quiet.expectClose(); code != int(wsconn.StatusPolicyViolation) || reason != wsconn.ReasonFrameFlood {
		t.Errorf("close %d %q, want 1008 %q", code, reason, wsconn.ReasonFrameFlood)
	}
}

// A frame whose rest trickles in, a byte at a time, is cut once it has not
// arrived whole within FrameTimeout, though bytes keep coming: on the
// watched path and on the goroutine path (TLS).
func TestTricklingFrameIsCut(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, wsconn.Options{FrameTimeout: 200 * time.Millisecond, PingInterval: -1}, tls)
			c := dial(t, s.URL)
			frame, _ := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 1000))))
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() {
				defer close(trickled)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for i := range frame {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.conn.Write(frame[i : i+1]); err != nil {
						return
					}
				}
			}()
			code, reason := c.expectClose()
			close(stop)
			<-trickled
			_ = c.conn.Close() // the server need not wait out the close handshake
			if code != int(wsconn.StatusPolicyViolation) || reason != wsconn.ReasonFrameTimeout {
				t.Errorf("close %d %q, want 1008 %q", code, reason, wsconn.ReasonFrameTimeout)
			}
			if ci := closed(t, s); ci.Code != wsconn.StatusPolicyViolation || ci.Reason != wsconn.ReasonFrameTimeout || ci.ByPeer {
				t.Errorf("CloseInfo = %+v", ci)
			}
		})
	}
}

// A frame header claims its payload's length; the memory held for the
// frame grows with the bytes that arrived, not with that claim: many
// clients each sending a header that claims 128 KiB, and one byte of it,
// cost the server far less than 128 KiB each.
func TestFrameHeaderReservesNothing(t *testing.T) {
	// Not parallel: it measures the heap.
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			const n, claim = 300, 128 << 10
			s := startServer(t, wsconn.Options{PingInterval: -1}, tls)
			clients := make([]*client, n)
			for i := range clients {
				clients[i] = dial(t, s.URL)
			}
			before := heapInUse()
			ping, _ := ws.CompileFrame(ws.MaskFrame(ws.NewPingFrame([]byte("sync"))))
			header := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: claim, Mask: [4]byte{1, 2, 3, 4}}
			var attack bytes.Buffer
			attack.Write(ping)
			if err := ws.WriteHeader(&attack, header); err != nil {
				t.Fatal(err)
			}
			attack.WriteByte('x')
			for _, c := range clients {
				if _, err := c.conn.Write(attack.Bytes()); err != nil {
					t.Fatal(err)
				}
			}
			// Each pong says the server read what came with the ping.
			for _, c := range clients {
				if f := c.next(); f.Header.OpCode != ws.OpPong {
					t.Fatalf("got %v, want the pong", f.Header.OpCode)
				}
			}
			grown := heapInUse() - before
			if claimed := int64(n * claim); grown > claimed/16 {
				t.Errorf("the heap grew by %d KiB for %d headers claiming %d KiB in all, want under a sixteenth of the claim",
					grown>>10, n, claimed>>10)
			}
			t.Logf("%d headers claiming %d KiB each: heap +%d KiB", n, claim>>10, grown>>10)
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// With no ReadLimit, a header claiming the largest length a frame can
// have (2^63-1) is a frame on its way, not a crash: the connection keeps
// answering pings until its frame timeout.
func TestHugeLengthWithoutReadLimit(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, wsconn.Options{ReadLimit: -1, PingInterval: -1}, tls)
			c := dial(t, s.URL)
			var attack bytes.Buffer
			if err := ws.WriteHeader(&attack, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: 1<<63 - 1, Mask: [4]byte{1, 2, 3, 4}}); err != nil {
				t.Fatal(err)
			}
			attack.WriteString("some of it")
			if _, err := c.conn.Write(attack.Bytes()); err != nil {
				t.Fatal(err)
			}
			// Before the fix, the read of this header panicked the process.
			// Now the frame waits for its payload: the client's own close is
			// what ends the connection.
			_ = c.conn.Close()
			if ci := closed(t, s); !ci.ByPeer {
				t.Errorf("close = %+v, want the client's", ci)
			}
		})
	}
}

// A message may arrive in MaxFragments frames; one frame more closes the
// connection with 1009, refused on its header. Disabled, any number passes.
func TestMaxFragments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		max    int
		frames int
		closed bool
	}{
		{"at the cap", 4, 4, false},
		{"one over the cap", 4, 5, true},
		{"default cap", 0, wsconn.DefaultMaxFragments + 1, true},
		{"disabled", -1, wsconn.DefaultMaxFragments + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, wsconn.Options{MaxFragments: tt.max, PingRate: -1}, false)
			c := dial(t, s.URL)
			c.send(ws.OpText, false, []byte("a"))
			for range tt.frames - 2 {
				c.send(ws.OpContinuation, false, []byte("b"))
			}
			c.send(ws.OpContinuation, true, []byte("c"))
			if tt.closed {
				if code, reason := c.expectClose(); code != int(wsconn.StatusMessageTooBig) || reason != wsconn.ReasonFragments {
					t.Errorf("%d fragments: close %d %q, want 1009 %q", tt.frames, code, reason, wsconn.ReasonFragments)
				}
				return
			}
			want := "a" + strings.Repeat("b", tt.frames-2) + "c"
			if f := c.next(); string(f.Payload) != want {
				t.Errorf("%d fragments echoed %d bytes, want %d", tt.frames, len(f.Payload), len(want))
			}
		})
	}
}
