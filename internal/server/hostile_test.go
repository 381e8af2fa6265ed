package server_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// The hostile-input suite. Every attack a client can mount on the WebSocket
// listener gets the answer SECURITY.md documents, and after every attack the
// server still answers GET /healthz with 200 and a bystander client that
// connected before the attack still gets its echo on the same connection.
//
// Frame-level attacks use rawWS: a TCP connection on which the test writes
// the upgrade request and the frames itself, so that it can send what no
// WebSocket library would.

// hostileEnv is a gateway under attack and its bystander.
type hostileEnv struct {
	srv       *servertest.Running
	addr      string // the listener's host:port
	bystander *websocket.Conn
	rounds    int
}

// startHostile starts a gateway from echoConfig plus extra top-level YAML
// (limits, origins) and connects the bystander with opts.
func startHostile(t *testing.T, extra string, opts *websocket.DialOptions) *hostileEnv {
	t.Helper()
	return startHostileYAML(t, echoConfig+extra, opts)
}

func startHostileYAML(t *testing.T, yamlCfg string, opts *websocket.DialOptions) *hostileEnv {
	t.Helper()
	r := servertest.StartYAML(t, yamlCfg)
	u, err := url.Parse(r.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	e := &hostileEnv{srv: r, addr: u.Host}
	e.bystander = testutil.Dial(t, r.WS, opts)
	e.assertUnharmed(t)
	return e
}

// assertUnharmed checks what must hold after every attack: /healthz answers
// 200 and the bystander's echo round trip works on its original connection,
// with nothing else arriving first.
func (e *hostileEnv) assertUnharmed(t *testing.T) {
	t.Helper()
	if status, body := testutil.Get(t, e.srv.HTTP+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz = %d %q, want 200", status, body)
	}
	e.rounds++
	msg := fmt.Sprintf(`{"bystander":%d}`, e.rounds)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.bystander.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("bystander write: %v (the attack disconnected it)", err)
	}
	_, got, err := e.bystander.Read(ctx)
	if err != nil {
		t.Fatalf("bystander read: %v (the attack disconnected it)", err)
	}
	if string(got) != msg {
		t.Fatalf("bystander got %q, want its echo %q", got, msg)
	}
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// wsFrame is one client frame, encoded by hand so that tests can send what a
// WebSocket library refuses to: unmasked frames, reserved bits and opcodes,
// lengths that do not match the payload.
type wsFrame struct {
	fin      bool
	rsv      byte // RSV1..RSV3 as the bits 4, 2, 1
	op       byte
	unmasked bool  // clients must mask; set to break that rule
	claim    int64 // when non-zero, the payload length the header states instead of len(payload)
	payload  []byte
}

// encode renders f with a 7-, 16- or 64-bit length and a random masking key.
func (f wsFrame) encode() []byte {
	n := int64(len(f.payload))
	if f.claim != 0 {
		n = f.claim
	}
	b0 := f.op&0x0f | (f.rsv&0x7)<<4
	if f.fin {
		b0 |= 0x80
	}
	var maskBit byte = 0x80
	if f.unmasked {
		maskBit = 0
	}
	b := make([]byte, 0, 14+len(f.payload))
	switch {
	case n < 126:
		b = append(b, b0, maskBit|byte(n))
	case n <= 0xffff:
		b = append(b, b0, maskBit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, b0, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if f.unmasked {
		return append(b, f.payload...)
	}
	key := binary.BigEndian.AppendUint32(nil, mrand.Uint32())
	b = append(b, key...)
	for i, p := range f.payload {
		b = append(b, p^key[i%4])
	}
	return b
}

func textFrame(s string) wsFrame { return wsFrame{fin: true, op: opText, payload: []byte(s)} }

func pingFrame(s string) wsFrame { return wsFrame{fin: true, op: opPing, payload: []byte(s)} }

func closeFrame(code uint16, reason string) wsFrame {
	return wsFrame{fin: true, op: opClose, payload: append(binary.BigEndian.AppendUint16(nil, code), reason...)}
}

// fragments splits data into frames of at most size bytes: the first has
// opcode op, the others are continuations; the last has FIN when fin is set.
func fragments(op byte, data []byte, size int, fin bool) []wsFrame {
	var fs []wsFrame
	for first := true; first || len(data) > 0; first = false {
		n := min(size, len(data))
		f := wsFrame{op: opCont, payload: data[:n]}
		if first {
			f.op = op
		}
		data = data[n:]
		f.fin = fin && len(data) == 0
		fs = append(fs, f)
	}
	return fs
}

// wire concatenates encoded frames, to be sent in one write.
func wire(fs ...wsFrame) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f.encode()...)
	}
	return b
}

// serverFrame is one frame read from the server.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte
}

func (f serverFrame) String() string {
	if f.op == opClose && len(f.payload) >= 2 {
		return fmt.Sprintf("close %d %q", binary.BigEndian.Uint16(f.payload), f.payload[2:])
	}
	return fmt.Sprintf("opcode %#x fin=%v %q", f.op, f.fin, f.payload)
}

// rawWS is a hand-driven client connection.
type rawWS struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialRaw opens a TCP connection to addr, closed at the end of the test.
func dialRaw(t *testing.T, addr string) *rawWS {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawWS{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// openRaw dials addr and performs a valid WebSocket handshake by hand.
func openRaw(t *testing.T, addr string) *rawWS {
	t.Helper()
	c := dialRaw(t, addr)
	key := newWSKey()
	c.mustWrite([]byte(requestText("GET", "/", addr, upgradeHeader(key))))
	resp, body := c.response(5 * time.Second)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s %q, want 101", resp.Status, body)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(key); got != want {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	return c
}

func (c *rawWS) write(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

func (c *rawWS) mustWrite(b []byte) {
	c.t.Helper()
	if err := c.write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response reads an HTTP response head, and its body unless it is a 101.
func (c *rawWS) response(timeout time.Duration) (*http.Response, string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read HTTP response: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, ""
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read HTTP response body: %v", err)
	}
	return resp, string(body)
}

// readFrame reads one server frame within timeout.
func (c *rawWS) readFrame(timeout time.Duration) (serverFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	f := serverFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f}
	if h[0]&0x70 != 0 {
		return f, fmt.Errorf("server frame has RSV bits %#x set", h[0]&0x70)
	}
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked (RFC 6455 §5.1 forbids it)")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, fmt.Errorf("frame length: %w", err)
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, fmt.Errorf("frame length: %w", err)
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<20 {
		return f, fmt.Errorf("server frame claims %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return f, fmt.Errorf("frame payload: %w", err)
	}
	return f, nil
}

// readMessage reads one data message, joining fragments; pongs are counted
// and skipped. Anything else fails the test.
func (c *rawWS) readMessage(timeout time.Duration) (op byte, data []byte, pongs int) {
	c.t.Helper()
	for {
		f, err := c.readFrame(timeout)
		if err != nil {
			c.t.Fatalf("read message: %v", err)
		}
		switch {
		case f.op == opPong:
			pongs++
			continue
		case f.op == opText || f.op == opBinary:
			if op != 0 {
				c.t.Fatalf("new data frame inside a fragmented message: %v", f)
			}
			op = f.op
		case f.op == opCont && op != 0:
		default:
			c.t.Fatalf("got %v, want a data message", f)
		}
		data = append(data, f.payload...)
		if f.fin {
			return op, data, pongs
		}
	}
}

// readClose reads frames until the server's close frame and returns its code
// and reason, with the frames that came before it. It fails the test when
// the connection ends without a close frame. It then answers the close, as a
// client should, and checks that the server closes the TCP connection.
func (c *rawWS) readClose(timeout time.Duration) (code int, reason string, before []serverFrame) {
	c.t.Helper()
	for {
		f, err := c.readFrame(timeout)
		if err != nil {
			c.t.Fatalf("want a close frame, got %v after %d frames %v", err, len(before), before)
		}
		if f.op != opClose {
			before = append(before, f)
			continue
		}
		switch len(f.payload) {
		case 0:
			code = 1005
		case 1:
			c.t.Fatalf("close frame with a 1-byte payload")
		default:
			code, reason = int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
		}
		_ = c.write(closeFrame(1000, "").encode()) // the server may already be gone
		c.expectEOF(5 * time.Second)
		return code, reason, before
	}
}

// expectEOF checks that the server closes the TCP connection within timeout
// without sending anything more.
func (c *rawWS) expectEOF(timeout time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var buf [512]byte
	n, err := c.br.Read(buf[:])
	switch {
	case n > 0:
		c.t.Fatalf("want the connection closed, got %q", buf[:n])
	case !connClosed(err):
		c.t.Fatalf("want the connection closed within %v, got %v", timeout, err)
	}
}

// expectDropped checks that the server drops the TCP connection without a
// close frame.
func (c *rawWS) expectDropped(timeout time.Duration) {
	c.t.Helper()
	f, err := c.readFrame(timeout)
	if err == nil {
		c.t.Fatalf("want the TCP connection dropped, got %v", f)
	}
	if !connClosed(err) {
		c.t.Fatalf("want the TCP connection dropped within %v, got %v", timeout, err)
	}
}

// connClosed reports whether err is the peer closing the TCP connection.
func connClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func newWSKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// upgradeHeader is a valid client handshake's headers for key.
func upgradeHeader(key string) http.Header {
	h := http.Header{}
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Key", key)
	h.Set("Sec-WebSocket-Version", "13")
	return h
}

// requestText renders a request as a client puts it on the wire.
func requestText(method, target, host string, h http.Header) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	_ = h.Write(&b)
	b.WriteString("\r\n")
	return b.String()
}

// dialFrom returns dial options whose TCP connections start at the local
// address ip (any of 127/8 works on the loopback interface).
func dialFrom(t *testing.T, ip string) *websocket.DialOptions {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
}

// tryDial dials and reports whether the handshake succeeded; the connection
// is closed at the end of the test.
func tryDial(t *testing.T, u string, opts *websocket.DialOptions) (*websocket.Conn, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		return nil, false
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, true
}

// dialRefused dials expecting the handshake to be refused and returns the
// status and body.
func dialRefused(t *testing.T, u string, opts *websocket.DialOptions) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err == nil {
		_ = c.CloseNow()
		t.Fatalf("dial %s: handshake succeeded, want it refused", u)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, with no HTTP response", u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// assertMessageBody checks an API Gateway style refusal: {"message": msg}.
func assertMessageBody(t *testing.T, body, msg string) {
	t.Helper()
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got["message"] != msg {
		t.Errorf("body = %q, want {\"message\": %q}", body, msg)
	}
}

// hostileLimit is the maxMessageBytes of the frame attacks: small, so that
// floods of 1-byte fragments stay cheap.
const hostileLimit = 4096

func TestHostileFrames(t *testing.T) {
	t.Parallel()
	overLimit := bytes.Repeat([]byte("x"), hostileLimit+1)
	tests := []struct {
		name string
		send []byte
		// Exactly one of code and drop.
		code   int    // the close code the server sends
		reason string // its reason, when the gateway chooses it (not the WebSocket library)
		drop   bool   // the server drops the TCP connection without a close frame
	}{
		{
			name: "invalid UTF-8 in a text frame",
			send: wire(textFrame("bad \xff\xfe text")),
			code: 1007, reason: wsconn.ReasonInvalidUTF8,
		},
		{
			name: "invalid UTF-8 across fragments",
			send: wire(fragments(opText, []byte("ok \xe2\x82 then \xff"), 3, true)...),
			code: 1007, reason: wsconn.ReasonInvalidUTF8,
		},
		{
			// The header claims 1 GiB; the payload stops one byte past the
			// limit, so that the server has read all that was sent when it
			// closes. TestHostileHugeFrameHeader checks the header alone.
			name: "frame claiming 1 GiB, payload streamed past the limit",
			send: wire(wsFrame{fin: true, op: opBinary, claim: 1 << 30, payload: overLimit}),
			code: 1009,
		},
		{
			name: "message over maxMessageBytes in small fragments",
			send: wire(fragments(opText, overLimit, 64, false)...),
			code: 1009,
		},
		{
			name: "message over maxMessageBytes in 1-byte fragments",
			send: wire(fragments(opBinary, overLimit, 1, false)...),
			code: 1009,
		},
		{
			// Within maxMessageBytes, but a frame header and its
			// bookkeeping per byte: refused past maxFragments (1024).
			name: "1-byte fragment flood past maxFragments",
			send: wire(fragments(opText, bytes.Repeat([]byte("f"), 2000), 1, true)...),
			code: 1009, reason: wsconn.ReasonFragments,
		},
		{
			// RFC 6455 §5.1: the server MUST close; a 1002 close frame is a MAY.
			// The WebSocket library drops the connection without one.
			name: "unmasked client frame",
			send: wire(wsFrame{fin: true, op: opText, unmasked: true, payload: []byte("hello")}),
			drop: true,
		},
		{
			// Header only: the server must refuse the length before reading a payload.
			name: "ping with a payload over 125 bytes",
			send: wire(wsFrame{fin: true, op: opPing, claim: 126}),
			code: 1002,
		},
		{
			name: "close with a payload over 125 bytes",
			send: wire(wsFrame{fin: true, op: opClose, claim: 200}),
			code: 1002,
		},
		{
			name: "fragmented ping",
			send: wire(wsFrame{op: opPing, payload: []byte("p")}),
			code: 1002,
		},
		{
			name: "reserved data opcode 0x3",
			send: wire(wsFrame{fin: true, op: 0x3}),
			code: 1002,
		},
		{
			name: "reserved control opcode 0xB",
			send: wire(wsFrame{fin: true, op: 0xB}),
			code: 1002,
		},
		{
			name: "RSV1 set without an extension",
			send: wire(wsFrame{fin: true, op: opText, rsv: 4}),
			code: 1002,
		},
		{
			name: "RSV2 set",
			send: wire(wsFrame{fin: true, op: opText, rsv: 2}),
			code: 1002,
		},
		{
			name: "RSV3 set",
			send: wire(wsFrame{fin: true, op: opText, rsv: 1}),
			code: 1002,
		},
		{
			name: "continuation with no message to continue",
			send: wire(wsFrame{fin: true, op: opCont}),
			code: 1002,
		},
		{
			name: "new text frame inside a fragmented message",
			send: wire(wsFrame{op: opText, payload: []byte("a")}, wsFrame{fin: true, op: opText}),
			code: 1002,
		},
		{
			name: "close frame with a 1-byte payload",
			send: wire(wsFrame{fin: true, op: opClose, payload: []byte{3}}),
			code: 1002,
		},
		{
			name: "close frame with reserved code 1005",
			send: wire(closeFrame(1005, "")),
			code: 1002,
		},
		{
			name: "close frame with code 999",
			send: wire(closeFrame(999, "")),
			code: 1002,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, fmt.Sprintf("limits: {maxMessageBytes: %d}\n", hostileLimit), nil)
			c := openRaw(t, e.addr)
			c.mustWrite(tt.send)
			if tt.drop {
				c.expectDropped(5 * time.Second)
			} else {
				code, reason, before := c.readClose(5 * time.Second)
				t.Logf("answer: close %d %q", code, reason)
				if code != tt.code || tt.reason != "" && reason != tt.reason || len(before) > 0 {
					t.Errorf("got close %d %q after %v, want close %d %q and nothing before", code, reason, before, tt.code, tt.reason)
				}
			}
			e.assertUnharmed(t)
		})
	}
}

// A frame header claiming 1 GiB must be refused as soon as the header is
// read: the server must neither wait for nor allocate the payload.
func TestHostileHugeFrameHeader(t *testing.T) {
	t.Parallel()
	// The idle timeout is long, so that only the header check can answer
	// within the test's wait.
	e := startHostile(t, fmt.Sprintf("limits: {maxMessageBytes: %d, idleTimeout: 1h}\n", hostileLimit), nil)
	c := openRaw(t, e.addr)
	c.mustWrite(wsFrame{fin: true, op: opBinary, claim: 1 << 30}.encode())
	code, reason, before := c.readClose(5 * time.Second)
	if code != 1009 || reason != wsconn.ReasonTooBig || len(before) > 0 {
		t.Errorf("after a header claiming 1 GiB: got close %d %q after %v, want 1009 %q", code, reason, before, wsconn.ReasonTooBig)
	}
	e.assertUnharmed(t)
}

// A frame whose header claims a payload that then trickles in (or never
// comes) is cut once limits.frameTimeout has passed since it began, though
// bytes keep arriving; the memory held for it grows only with what arrived
// (TestFrameHeaderReservesNothing in internal/wsconn).
func TestHostileTricklingFrame(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "limits: {frameTimeout: 300ms, idleTimeout: 1h, pingInterval: 1h}\n", nil)
	c := openRaw(t, e.addr)
	frame := wsFrame{fin: true, op: opBinary, payload: bytes.Repeat([]byte("x"), 2000)}.encode()
	stop, trickled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range frame {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if c.write(frame[i:i+1]) != nil {
				return
			}
		}
	}()
	f, err := c.readFrame(5 * time.Second)
	close(stop)
	<-trickled
	if err != nil || f.op != opClose || len(f.payload) < 2 {
		t.Fatalf("got %v %v, want a close frame", f, err)
	}
	if code, reason := binary.BigEndian.Uint16(f.payload), string(f.payload[2:]); code != 1008 || reason != wsconn.ReasonFrameTimeout {
		t.Errorf("got close %d %q, want 1008 %q", code, reason, wsconn.ReasonFrameTimeout)
	}
	e.assertUnharmed(t)
}

// Fragmentation is legal: floods of tiny fragments, control frames between
// fragments and runes split across fragments all make normal messages.
func TestHostileFragmentsAccepted(t *testing.T) {
	t.Parallel()
	flood := make([]byte, hostileLimit-1)
	for i := range flood {
		flood[i] = 'a' + byte(i%26)
	}
	tests := []struct {
		name  string
		send  []byte
		want  string
		pongs int
	}{
		{
			name: "1-byte fragments up to maxFragments",
			send: wire(fragments(opText, flood[:wsconn.DefaultMaxFragments], 1, true)...),
			want: string(flood[:wsconn.DefaultMaxFragments]),
		},

		{
			name: "message of exactly maxMessageBytes in fragments",
			send: wire(fragments(opText, bytes.Repeat([]byte("z"), hostileLimit), 100, true)...),
			want: strings.Repeat("z", hostileLimit),
		},
		{
			name: "rune split across fragments",
			send: wire(fragments(opText, []byte("price: 5€"), 8, true)...),
			want: "price: 5€",
		},
		{
			name: "ping between fragments",
			send: wire(wsFrame{op: opText, payload: []byte("hel")}, pingFrame("mid"), wsFrame{fin: true, op: opCont, payload: []byte("lo")}),
			want: "hello", pongs: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, fmt.Sprintf("limits: {maxMessageBytes: %d}\n", hostileLimit), nil)
			c := openRaw(t, e.addr)
			c.mustWrite(tt.send)
			op, got, pongs := c.readMessage(10 * time.Second)
			if op != opText || string(got) != tt.want || pongs != tt.pongs {
				t.Errorf("got opcode %#x, %d bytes (equal: %v) after %d pongs; want the %d-byte text echoed after %d pongs",
					op, len(got), string(got) == tt.want, pongs, len(tt.want), tt.pongs)
			}
			// Still open and working.
			c.mustWrite(wire(textFrame("again")))
			if _, got, _ := c.readMessage(5 * time.Second); string(got) != "again" {
				t.Errorf("next message: got %q, want again", got)
			}
			e.assertUnharmed(t)
		})
	}
}

func TestHostilePings(t *testing.T) {
	t.Parallel()
	t.Run("flood of 200 pings", func(t *testing.T) {
		t.Parallel()
		e := startHostile(t, "", nil) // pingRate: 10 by default
		c := openRaw(t, e.addr)
		var flood []wsFrame
		for i := range 200 {
			flood = append(flood, pingFrame(fmt.Sprintf("p%03d", i)))
		}
		c.mustWrite(wire(flood...))
		code, reason, before := c.readClose(5 * time.Second)
		if code != int(wsconn.StatusPolicyViolation) || reason != wsconn.ReasonPingFlood {
			t.Errorf("got close %d %q, want 1008 %q", code, reason, wsconn.ReasonPingFlood)
		}
		// At most pingRate pongs per second: the flood may straddle two.
		for _, f := range before {
			if f.op != opPong {
				t.Errorf("before the close: got %v, want only pongs", f)
			}
		}
		if len(before) > 20 {
			t.Errorf("got %d pongs, want at most 20", len(before))
		}
		e.assertUnharmed(t)
	})
	t.Run("one ping per pong", func(t *testing.T) {
		t.Parallel()
		e := startHostile(t, "limits: {pingRate: 5}\n", nil)
		c := openRaw(t, e.addr)
		for i := range 3 {
			payload := fmt.Sprintf("keepalive %d", i)
			c.mustWrite(pingFrame(payload).encode())
			f, err := c.readFrame(5 * time.Second)
			if err != nil || f.op != opPong || string(f.payload) != payload {
				t.Fatalf("ping %d: got %v %v, want a pong with %q", i, f, err, payload)
			}
		}
		c.mustWrite(textFrame("still here").encode())
		if _, got, _ := c.readMessage(5 * time.Second); string(got) != "still here" {
			t.Errorf("after the pings: got %q, want the echo", got)
		}
		e.assertUnharmed(t)
	})
}

// Frames that carry nothing and that no message budget counts (pongs
// nobody asked for, empty fragments that never end a message) share the
// ping limiter: a flood of them is cut like a ping flood, instead of
// keeping a core busy parsing them.
func TestHostileEmptyFrameFloods(t *testing.T) {
	t.Parallel()
	const n = 5000
	tests := []struct {
		name  string
		flood []wsFrame
	}{
		{"empty continuations", append([]wsFrame{{op: opText, payload: []byte("a")}}, repeatFrame(wsFrame{op: opCont}, n)...)},
		{"empty first fragment then empty continuations", append([]wsFrame{{op: opBinary}}, repeatFrame(wsFrame{op: opCont}, n)...)},
		{"unsolicited pongs", repeatFrame(wsFrame{fin: true, op: opPong, payload: []byte("p")}, n)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, "", nil) // pingRate: 10 by default
			c := openRaw(t, e.addr)
			c.mustWrite(wire(tt.flood...))
			code, reason, before := c.readClose(5 * time.Second)
			if code != int(wsconn.StatusPolicyViolation) || reason != wsconn.ReasonFrameFlood {
				t.Errorf("got close %d %q, want 1008 %q", code, reason, wsconn.ReasonFrameFlood)
			}
			if len(before) > 0 {
				t.Errorf("before the close: got %v, want nothing", before)
			}
			e.assertUnharmed(t)
		})
	}
	t.Run("a few pongs and empty fragments are legal", func(t *testing.T) {
		t.Parallel()
		e := startHostile(t, "", nil)
		c := openRaw(t, e.addr)
		c.mustWrite(wire(
			wsFrame{fin: true, op: opPong}, wsFrame{op: opText, payload: []byte("he")},
			wsFrame{op: opCont}, wsFrame{op: opCont}, wsFrame{fin: true, op: opCont, payload: []byte("llo")}))
		if op, got, _ := c.readMessage(5 * time.Second); op != opText || string(got) != "hello" {
			t.Errorf("got %#x %q, want the text echo of hello", op, got)
		}
		e.assertUnharmed(t)
	})
}

func repeatFrame(f wsFrame, n int) []wsFrame {
	fs := make([]wsFrame, n)
	for i := range fs {
		fs[i] = f
	}
	return fs
}

// A client that sends its upgrade request a byte at a time never holds a
// connection longer than handshakeTimeout.
func TestHostileSlowloris(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "limits: {handshakeTimeout: 500ms}\n", nil)
	c := dialRaw(t, e.addr)
	start := time.Now()
	head := "GET / HTTP/1.1\r\nHost: " + e.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: "
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			b := byte('a')
			if i < len(head) {
				b = head[i]
			}
			if c.write([]byte{b}) != nil {
				return // the server closed the connection
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	defer wg.Wait()
	defer close(done)

	// Read until the server closes: net/http answers 400 when the timeout
	// cuts a line (bufio.Reader.ReadLine hands it the partial line without
	// the timeout error) and nothing when it falls between lines.
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	var err error
	for err == nil {
		buf := make([]byte, 512)
		var n int
		n, err = c.br.Read(buf)
		got = append(got, buf[:n]...)
	}
	elapsed := time.Since(start)
	if !connClosed(err) {
		t.Fatalf("got %q, then %v after %v; want the connection closed", got, err, elapsed)
	}
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 400 ")) {
		t.Errorf("got %q before the close, want nothing or a 400", got)
	}
	if elapsed < 400*time.Millisecond {
		t.Errorf("closed after %v, before handshakeTimeout (500ms)", elapsed)
	}
	t.Logf("answer: TCP connection closed after %v, having sent %q", elapsed, got)
	e.assertUnharmed(t)
}

func TestHostileOversizedHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header int // bytes of one extra header's value
		want   int
	}{
		{"64 KB header", 64 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"8 KB header", 8 << 10, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, "limits: {maxHeaderBytes: 16KB}\n", nil)
			c := dialRaw(t, e.addr)
			h := upgradeHeader(newWSKey())
			h.Set("X-Big", strings.Repeat("a", tt.header))
			// The server may answer before it has read the whole request.
			errc := make(chan error, 1)
			go func() { errc <- c.write([]byte(requestText("GET", "/", e.addr, h))) }()
			resp, body := c.response(5 * time.Second)
			if resp.StatusCode != tt.want {
				t.Errorf("got %s %q, want %d", resp.Status, body, tt.want)
			}
			t.Logf("answer: %s %q", resp.Status, body)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				c.expectEOF(5 * time.Second)
			}
			<-errc // an error is expected when the server stops reading
			e.assertUnharmed(t)
		})
	}
}

// Requests that are not HTTP get 400 and the connection is closed.
func TestHostileMalformedHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, request string }{
		{"garbage method", "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"method with a space-free junk token", "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"binary junk request line", "\x00\xff\xfe\xfd\x16\x03\x01\r\n\r\n"},
		{"request line without a version", "GET /\r\n\r\n"},
		{"header line without a colon", "GET / HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, "", nil)
			c := dialRaw(t, e.addr)
			c.mustWrite([]byte(tt.request))
			resp, body := c.response(5 * time.Second)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("got %s %q, want 400", resp.Status, body)
			}
			t.Logf("answer: %s %q", resp.Status, body)
			c.expectEOF(5 * time.Second)
			e.assertUnharmed(t)
		})
	}
}

// malformedHandshakes are upgrade requests the gateway must refuse.
var malformedHandshakes = []struct {
	name   string
	method string
	edit   func(h http.Header)
	want   int
	header [2]string // a response header the answer must carry
}{
	{name: "missing Sec-WebSocket-Key", method: "GET", edit: func(h http.Header) { h.Del("Sec-WebSocket-Key") }, want: http.StatusBadRequest},
	{name: "Sec-WebSocket-Key not 16 bytes", method: "GET", edit: func(h http.Header) { h.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, want: http.StatusBadRequest},
	{name: "two Sec-WebSocket-Keys", method: "GET", edit: func(h http.Header) { h.Add("Sec-WebSocket-Key", newWSKey()) }, want: http.StatusBadRequest},
	{
		name: "Sec-WebSocket-Version 8", method: "GET", edit: func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") },
		want: http.StatusBadRequest, header: [2]string{"Sec-WebSocket-Version", "13"}, // RFC 6455 §4.4: the versions the server speaks
	},
	{name: "missing Sec-WebSocket-Version", method: "GET", edit: func(h http.Header) { h.Del("Sec-WebSocket-Version") }, want: http.StatusBadRequest},
	{name: "POST with Upgrade headers", method: "POST", edit: func(http.Header) {}, want: http.StatusMethodNotAllowed},
	{name: "Upgrade without Connection: Upgrade", method: "GET", edit: func(h http.Header) { h.Del("Connection") }, want: http.StatusUpgradeRequired},
	{name: "Upgrade: h2c", method: "GET", edit: func(h http.Header) { h.Set("Upgrade", "h2c") }, want: http.StatusUpgradeRequired},
}

func TestHostileHandshakeVariants(t *testing.T) {
	t.Parallel()
	for _, tt := range malformedHandshakes {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, "", nil)
			c := dialRaw(t, e.addr)
			h := upgradeHeader(newWSKey())
			tt.edit(h)
			c.mustWrite([]byte(requestText(tt.method, "/", e.addr, h)))
			resp, body := c.response(5 * time.Second)
			if resp.StatusCode != tt.want {
				t.Errorf("got %s %q, want %d", resp.Status, body, tt.want)
			}
			if k, v := tt.header[0], tt.header[1]; k != "" && resp.Header.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
			}
			t.Logf("answer: %s %q", resp.Status, strings.TrimSpace(body))
			e.assertUnharmed(t)
		})
	}
}

// eventLog is an http integration that records the eventType of each
// route invocation it receives.
type eventLog struct {
	mu     sync.Mutex
	events []string
	srv    *httptest.Server
}

func newEventLog(t *testing.T) *eventLog {
	l := &eventLog{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			RequestContext struct {
				EventType string `json:"eventType"`
			} `json:"requestContext"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		l.mu.Lock()
		l.events = append(l.events, ev.RequestContext.EventType)
		l.mu.Unlock()
		_, _ = io.WriteString(w, `{"statusCode":200}`)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *eventLog) count(eventType string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e == eventType {
			n++
		}
	}
	return n
}

// A handshake the WebSocket layer refuses must not run $connect: on API
// Gateway it never reaches the integration, and a $connect that succeeds is
// always followed by a $disconnect.
func TestHostileHandshakeRefusedBeforeConnect(t *testing.T) {
	t.Parallel()
	events := newEventLog(t)
	e := startHostileYAML(t, fmt.Sprintf(`
routes:
  $connect: {integration: {type: http, url: %q}}
  $disconnect: {integration: {type: http, url: %q}}
  $default: {integration: {type: echo}}
`, events.srv.URL, events.srv.URL), nil)
	if n := events.count("CONNECT"); n != 1 {
		t.Fatalf("the bystander ran $connect %d times, want 1", n)
	}
	for _, tt := range malformedHandshakes {
		c := dialRaw(t, e.addr)
		h := upgradeHeader(newWSKey())
		tt.edit(h)
		c.mustWrite([]byte(requestText(tt.method, "/", e.addr, h)))
		if resp, body := c.response(5 * time.Second); resp.StatusCode != tt.want {
			t.Errorf("%s: got %s %q, want %d", tt.name, resp.Status, body, tt.want)
		}
	}
	// A malformed handshake is refused before the authorizer and $connect
	// run, so no $connect is left without its $disconnect.
	if n, d := events.count("CONNECT"), events.count("DISCONNECT"); n != 1 || d != 0 {
		t.Errorf("after %d malformed handshakes $connect ran %d more times and $disconnect %d times, want 0 and 0",
			len(malformedHandshakes), n-1, d)
	}
	e.assertUnharmed(t)
}

func TestHostileConnectionCaps(t *testing.T) {
	t.Parallel()
	t.Run("maxConnections", func(t *testing.T) {
		t.Parallel()
		e := startHostile(t, "limits: {maxConnections: 2}\n", nil)
		second := testutil.Dial(t, e.srv.WS, nil) // the bystander is the first
		status, body := dialRefused(t, e.srv.WS, nil)
		if status != http.StatusServiceUnavailable {
			t.Errorf("third handshake: got %d %q, want 503", status, body)
		}
		assertMessageBody(t, body, "Service Unavailable: connection limit reached")
		t.Logf("answer: %d %s", status, body)
		_ = second.Close(websocket.StatusNormalClosure, "")
		testutil.Eventually(t, 5*time.Second, func() bool {
			_, ok := tryDial(t, e.srv.WS, nil)
			return ok
		}, "a handshake is admitted again after a connection closed")
		e.assertUnharmed(t)
	})
	t.Run("maxConnectionsPerIp", func(t *testing.T) {
		t.Parallel()
		e := startHostile(t, "limits: {maxConnectionsPerIp: 1}\n", dialFrom(t, "127.0.0.3"))
		first := testutil.Dial(t, e.srv.WS, dialFrom(t, "127.0.0.1"))
		status, body := dialRefused(t, e.srv.WS, dialFrom(t, "127.0.0.1"))
		if status != http.StatusTooManyRequests {
			t.Errorf("second handshake from 127.0.0.1: got %d %q, want 429", status, body)
		}
		assertMessageBody(t, body, "Too Many Requests: connection limit per address reached")
		t.Logf("answer: %d %s", status, body)
		other := testutil.Dial(t, e.srv.WS, dialFrom(t, "127.0.0.2"))
		if got := testutil.ReadTextAfter(t, other, "from .2"); got != "from .2" {
			t.Errorf("127.0.0.2: got %q, want the echo", got)
		}
		_ = first.Close(websocket.StatusNormalClosure, "")
		testutil.Eventually(t, 5*time.Second, func() bool {
			_, ok := tryDial(t, e.srv.WS, dialFrom(t, "127.0.0.1"))
			return ok
		}, "127.0.0.1 is admitted again after its connection closed")
		e.assertUnharmed(t)
	})
}

func TestHostileConnectRate(t *testing.T) {
	t.Parallel()
	// The bystander takes the only token of the burst.
	e := startHostile(t, "limits: {connectRate: 1, connectBurst: 1}\n", nil)
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, ok := tryDial(t, e.srv.WS, nil)
		return ok
	}, "a handshake is admitted once a token is back")
	status, body := dialRefused(t, e.srv.WS, nil)
	if status != http.StatusTooManyRequests {
		t.Errorf("second handshake in a row: got %d %q, want 429", status, body)
	}
	assertMessageBody(t, body, "Too Many Requests")
	t.Logf("answer: %d %s", status, body)
	e.assertUnharmed(t)
}

func TestHostileMessageRate(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "limits: {messageRate: 2, messageBurst: 2}\n", nil)
	c := openRaw(t, e.addr)
	var burst []wsFrame
	for i := range 5 {
		burst = append(burst, textFrame(fmt.Sprintf("m%d", i)))
	}
	c.mustWrite(wire(burst...)) // one write: the five arrive together
	// Refusals are answered at once, echoes after their route runs: the
	// order between the two kinds is not fixed.
	var echoes []string
	refusedConns, requestIDs := map[string]bool{}, map[string]bool{}
	for range 5 {
		_, data, _ := c.readMessage(5 * time.Second)
		if m := frameRE.FindStringSubmatch(string(data)); m != nil {
			if m[1] != "Too Many Requests" {
				t.Errorf("got frame %s, want message Too Many Requests", data)
			}
			refusedConns[m[2]], requestIDs[m[3]] = true, true
			continue
		}
		echoes = append(echoes, string(data))
	}
	if len(echoes) != 2 || echoes[0] != "m0" || echoes[1] != "m1" {
		t.Errorf("echoes = %q, want [m0 m1]", echoes)
	}
	if len(refusedConns) != 1 || len(requestIDs) != 3 {
		t.Errorf("refusals carry connection IDs %v and request IDs %v, want one connection and 3 distinct requests", refusedConns, requestIDs)
	}
	open := connIDs(t, e.srv.HTTP)
	for id := range refusedConns {
		if _, ok := open[id]; !ok {
			t.Errorf("refusal names connection %s, which is not open", id)
		}
	}
	i := 0
	testutil.Eventually(t, 5*time.Second, func() bool {
		i++
		msg := fmt.Sprintf("later %d", i)
		c.mustWrite(textFrame(msg).encode())
		_, data, _ := c.readMessage(5 * time.Second)
		return string(data) == msg
	}, "the connection works again after the rate refills")
	e.assertUnharmed(t)
}

// subscribeConfig routes by action, with the topic routes and an echo
// $default, under small subscription caps.
const subscribeConfig = `
routes:
  subscribe: {integration: {type: subscribe}}
  $default: {integration: {type: echo}}
limits: {maxTopicBytes: 16, maxSubscriptions: 3, messageRate: unlimited}
`

// TestHostileSubscriptions: a client subscribing without end gets an error
// frame for each topic past its cap, or longer than the topic cap, and
// nothing of those is stored; subscribing to a topic again is free.
func TestHostileSubscriptions(t *testing.T) {
	t.Parallel()
	e := startHostileYAML(t, subscribeConfig, nil)
	c := testutil.Dial(t, e.srv.WS, nil)
	for _, topic := range []string{"a", "b", "c", "a"} {
		testutil.Write(t, c, `{"action":"subscribe","topic":"`+topic+`"}`)
	}
	// The subscribe route answers nothing when it succeeds: the next frame is the echo.
	if got := testutil.ReadTextAfter(t, c, `{"n":0}`); got != `{"n":0}` {
		t.Fatalf("after 3 topics and a repeat: got %q, want the echo", got)
	}
	const attempts = 2000
	for i := range attempts {
		testutil.Write(t, c, fmt.Sprintf(`{"action":"subscribe","topic":"x%d"}`, i))
	}
	for i := range attempts {
		got := testutil.ReadText(t, c)
		if !strings.Contains(got, `"message": "Too many subscriptions: the limit is 3 topics per connection"`) {
			t.Fatalf("subscription %d past the cap: got %q, want a Too many subscriptions frame", i, got)
		}
	}
	long := strings.Repeat("t", 17)
	for _, body := range []string{`{"action":"subscribe","topic":"` + long + `"}`, `{"action":"subscribe","entityId":"` + long + `"}`} {
		got := testutil.ReadTextAfter(t, c, body)
		if !strings.Contains(got, `longer than 16 bytes`) {
			t.Errorf("%s: got %q, want an error frame about the topic's length", body, got)
		}
	}
	var topics []string
	for _, tt := range connIDs(t, e.srv.HTTP) {
		if len(tt) > 0 {
			topics = tt
		}
	}
	if strings.Join(topics, ",") != "a,b,c" {
		t.Errorf("after %d refused subscriptions the connection has topics %q, want [a b c]", attempts+2, topics)
	}
	e.assertUnharmed(t)
}

// TestHostileListingBounded: GET /@connections lists at most 32 topics of a
// connection, says that it cut them and how many there are; the page stays
// small however many topics a connection holds.
func TestHostileListingBounded(t *testing.T) {
	t.Parallel()
	e := startHostileYAML(t, strings.Replace(subscribeConfig, "maxSubscriptions: 3", "maxSubscriptions: 40", 1), nil)
	c := testutil.Dial(t, e.srv.WS, nil)
	for i := range 40 {
		testutil.Write(t, c, fmt.Sprintf(`{"action":"subscribe","topic":"t%02d"}`, i))
	}
	if got := testutil.ReadTextAfter(t, c, `{"n":0}`); got != `{"n":0}` {
		t.Fatalf("after 40 subscriptions: got %q, want the echo", got)
	}
	status, body := testutil.Get(t, e.srv.HTTP+"/@connections?limit=1000")
	if status != http.StatusOK {
		t.Fatalf("GET /@connections = %d %s", status, body)
	}
	var page struct {
		Items []struct {
			Topics          []string `json:"topics"`
			TopicsTruncated bool     `json:"topicsTruncated"`
			TopicCount      int      `json:"topicCount"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("GET /@connections body %q: %v", body, err)
	}
	found := false
	for _, it := range page.Items {
		if len(it.Topics) == 0 {
			continue
		}
		found = true
		if len(it.Topics) != 32 || !it.TopicsTruncated || it.TopicCount != 40 {
			t.Errorf("listed %d topics, topicsTruncated %v, topicCount %d; want 32, true, 40", len(it.Topics), it.TopicsTruncated, it.TopicCount)
		}
	}
	if !found {
		t.Errorf("GET /@connections = %s: no connection with topics", body)
	}
	e.assertUnharmed(t)
}

// TestHostileBurstDoesNotCutReaders: with the default limits, one client
// broadcasting a burst of 100 messages of the largest size cuts none of the
// clients that read at a normal pace. A burst sent over a fast link arrives
// in milliseconds, while a reader behind an ordinary connection (a few MB/s)
// takes seconds to read it: for the burst's length it is as if it did not
// read. So the readers here have a small socket buffer and read at a
// steady, slow pace from the start; each must get every byte, and stay
// connected.
func TestHostileBurstDoesNotCutReaders(t *testing.T) {
	t.Parallel()
	const readers, burst, size = 20, 100, 127 << 10
	r := servertest.StartYAML(t, "") // zero-config: sendMessage broadcasts
	addr := strings.TrimPrefix(r.HTTP, "http://")
	// A broadcast of size bytes arrives as one frame with a 10-byte header.
	const want = burst * (size + 10)
	conns := make([]*rawWS, readers)
	for i := range conns {
		conns[i] = openRawSmallBuffer(t, addr)
	}
	sender := openRaw(t, addr)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, r.HTTP)) == readers+1 }, "clients registered")
	// Readers read at a normal pace from the start, about 1.6 MB/s each:
	// far slower than the burst arrives, so most of it waits in the
	// gateway's queue for seconds, but never stalled long enough for the
	// write timeout.
	var wg sync.WaitGroup
	got := make([]int64, readers)
	errs := make([]error, readers)
	for i, c := range conns {
		wg.Go(func() {
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Minute))
			got[i], errs[i] = pacedRead(c.br, want, 32<<10, 20*time.Millisecond)
		})
	}
	copies := make(chan error, 1)
	go func() {
		_ = sender.nc.SetReadDeadline(time.Now().Add(2 * time.Minute))
		_, err := io.CopyN(io.Discard, sender.br, want)
		copies <- err
	}()
	// The burst is written as fast as the gateway takes it. How fast that
	// is depends on the machine's load (it reads the sender while it
	// writes to every reader), so the writes get the same bound as the
	// reads, one for a gateway that hangs, not one per message.
	msg := wire(textFrame(`{"action":"sendMessage","data":"` + strings.Repeat("x", size) + `"}`))
	_ = sender.nc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	for i := range burst {
		if _, err := sender.nc.Write(msg); err != nil {
			t.Fatalf("write message %d of the burst: %v", i, err)
		}
	}
	if err := <-copies; err != nil {
		t.Fatalf("the sender's own copies of its burst: %v", err)
	}
	wg.Wait()
	cut := 0
	for i := range readers {
		if got[i] != want {
			cut++
			t.Logf("reader %d got %d of %d bytes: %v", i, got[i], want, errs[i])
		}
	}
	if cut > 0 {
		t.Errorf("%d of %d readers were cut by one client's burst of %d x %d bytes", cut, readers, burst, size)
	}
	if n := len(connIDs(t, r.HTTP)); n != readers+1 {
		t.Errorf("after the burst %d connections are open, want %d", n, readers+1)
	}
}

// pacedRead reads n bytes from r, at most chunk bytes every pause.
func pacedRead(r io.Reader, n int64, chunk int64, pause time.Duration) (int64, error) {
	var got int64
	for got < n {
		m, err := io.CopyN(io.Discard, r, min(chunk, n-got))
		got += m
		if err != nil {
			return got, err
		}
		time.Sleep(pause)
	}
	return got, nil
}

// openRawSmallBuffer is openRaw with a 16 KiB socket receive buffer, set
// before connecting, so that little of what the server sends waits in the
// kernel and the rest waits in the server's send queue.
func openRawSmallBuffer(t *testing.T, addr string) *rawWS {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
		return cmp.Or(err, serr)
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &rawWS{t: t, nc: nc, br: bufio.NewReader(nc)}
	key := newWSKey()
	c.mustWrite([]byte(requestText("GET", "/", addr, upgradeHeader(key))))
	if resp, body := c.response(5 * time.Second); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s %q, want 101", resp.Status, body)
	}
	return c
}

func TestHostileOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, origin string
		want         int // 101 connects
	}{
		{"other origin", "https://evil.example.com", http.StatusForbidden},
		{"allowed origin", "https://app.example.com", http.StatusSwitchingProtocols},
		{"no origin", "", http.StatusSwitchingProtocols},
		{"allowed host over http", "http://app.example.com", http.StatusForbidden},
		{"allowed host as a prefix", "https://app.example.com.evil.com", http.StatusForbidden},
		{"allowed origin in upper case", "HTTPS://APP.EXAMPLE.COM", http.StatusSwitchingProtocols},
		{"null origin", "null", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, "origins: [https://app.example.com]\n", nil)
			opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
			if tt.origin != "" {
				opts.HTTPHeader.Set("Origin", tt.origin)
			}
			if tt.want == http.StatusSwitchingProtocols {
				c := testutil.Dial(t, e.srv.WS, opts)
				if got := testutil.ReadTextAfter(t, c, "hi"); got != "hi" {
					t.Errorf("got %q, want the echo", got)
				}
			} else {
				status, body := dialRefused(t, e.srv.WS, opts)
				if status != tt.want {
					t.Errorf("got %d %q, want %d", status, body, tt.want)
				}
				assertMessageBody(t, body, "Forbidden: origin not allowed")
				t.Logf("answer: %d %s", status, body)
			}
			e.assertUnharmed(t)
		})
	}
}

// Connections that never send anything cost their holder, not the others.
func TestHostileIdleConnections(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "", nil)
	const n = 50
	for range n {
		dialRaw(t, e.addr) // TCP only: no request ever
		testutil.Dial(t, e.srv.WS, nil)
	}
	for range 5 {
		e.assertUnharmed(t)
	}
	var body string
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, body = testutil.Get(t, e.srv.HTTP+"/healthz")
		var health struct{ Connections int }
		return json.Unmarshal([]byte(body), &health) == nil && health.Connections == n+1
	}, "healthz = %q, want %d connections", body, n+1)
}

// FuzzHandshakeHeaders adds one arbitrary header to a valid upgrade request:
// the server answers every request with a valid status, never a 5xx, and
// stays healthy.
func FuzzHandshakeHeaders(f *testing.F) {
	seeds := [][2]string{
		{"Origin", "https://evil.example.com"},
		{"Origin", "null"},
		{"Origin", "%zz://\x7f"},
		{"Sec-WebSocket-Key", "not base64!"},
		{"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"Sec-WebSocket-Version", "8"},
		{"Sec-WebSocket-Protocol", ", , ,,chat,\tgraphql-ws"},
		{"Sec-WebSocket-Protocol", strings.Repeat("p,", 2000)},
		{"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=0; server_no_context_takeover"},
		{"X-Forwarded-For", "1.2.3.4, ::ffff:10.0.0.1, garbage, , 999.1.1.1"},
		{"X-Forwarded-For", strings.Repeat("127.0.0.1,", 500)},
		{"X-Forwarded-Proto", "gopher"},
		{"Connection", "close"},
		{"Connection", "keep-alive, Upgrade, Upgrade"},
		{"Upgrade", "websocket, h2c"},
		{"Expect", "100-continue"},
		{"Authorization", "Bearer \xff\xfe"},
		{"Cookie", strings.Repeat("a=b; ", 1000)},
		{"Host", "evil.example.com"},
		{"X-Empty", ""},
		{"X-Utf8", "héllo wörld €"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	r := servertest.StartYAML(f, echoConfig+`
origins: ["https://*.example.com"]
trustedProxies: [127.0.0.0/8]
`)
	tr := &http.Transport{DisableKeepAlives: true}
	f.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	f.Fuzz(func(t *testing.T, name, value string) {
		if !validHeaderName(name) || !validHeaderValue(value) {
			return // net/http will not send it
		}
		req, err := http.NewRequest(http.MethodGet, r.HTTP+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		key := newWSKey()
		req.Header = upgradeHeader(key)
		req.Header[name] = append(req.Header[name], value)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("header %q: %q: no HTTP answer: %v", name, value, err)
		}
		_ = resp.Body.Close() // for a 101, this closes the WebSocket connection
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(key) {
				t.Errorf("header %q: %q: 101 with Sec-WebSocket-Accept %q, want %q", name, value, got, acceptKey(key))
			}
		case resp.StatusCode < 400 || resp.StatusCode > 499:
			t.Errorf("header %q: %q: status %d, want 101 or a 4xx", name, value, resp.StatusCode)
		}
		if status, body := testutil.Get(t, r.HTTP+"/healthz"); status != http.StatusOK {
			t.Fatalf("after header %q: %q: healthz = %d %q", name, value, status, body)
		}
	})
}

// validHeaderName reports whether net/http's client sends name: an RFC 7230 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r >= 0x80 || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether net/http's client sends value: no
// control bytes but tab.
func validHeaderValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if b := value[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// A client may send its first message in the same packet as its handshake;
// the bytes net/http has already read must reach the WebSocket layer.
func TestFrameSentWithTheHandshakeIsRead(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "", nil)
	c := dialRaw(t, e.addr)
	req := requestText("GET", "/", e.addr, upgradeHeader(newWSKey()))
	c.mustWrite(append([]byte(req), wsFrame{fin: true, op: opText, payload: []byte("early bird")}.encode()...))
	if resp, body := c.response(5 * time.Second); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s %q", resp.Status, body)
	}
	if op, got, _ := c.readMessage(5 * time.Second); op != opText || string(got) != "early bird" {
		t.Errorf("echo of the pipelined frame = %d %q, want text \"early bird\"", op, got)
	}
	e.assertUnharmed(t)
}

// A $connect integration answering a status that is not a final one (1xx),
// or no HTTP status at all, is an integration failure: the client gets 502,
// never a bare 101 without upgrade headers nor a 1xx followed by the 101.
func TestHostileConnectStatus(t *testing.T) {
	t.Parallel()
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Query map[string]string `json:"queryStringParameters"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		status := ev.Query["status"]
		if status == "" {
			status = "200"
		}
		_, _ = fmt.Fprintf(w, `{"statusCode":%s}`, status)
	}))
	t.Cleanup(fn.Close)
	e := startHostileYAML(t, fmt.Sprintf(`
routes:
  $connect: {integration: {type: http, url: %q}}
  $default: {integration: {type: echo}}
`, fn.URL), nil)
	for _, status := range []string{"99", "100", "101", "103", "199", "600", `"101"`} {
		c := dialRaw(t, e.addr)
		c.mustWrite([]byte(requestText("GET", "/?status="+url.QueryEscape(status), e.addr, upgradeHeader(newWSKey()))))
		resp, body := c.response(5 * time.Second)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("$connect answering statusCode %s: handshake got %s %q, want 502", status, resp.Status, body)
		}
	}
	e.assertUnharmed(t)
}
