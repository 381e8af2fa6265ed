package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/loadgen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startCeiling runs the server until the end of the test and returns its WebSocket URL.
func startCeiling(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), pw, io.Discard) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("ceiling: %v (%v)", err, <-done)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ceiling: %v", err)
		}
	})
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "ceiling listening on ")
	if !ok {
		t.Fatalf("ceiling printed %q, want its address", line)
	}
	return u
}

// The loadgen's command lines run unchanged against the ceiling: every
// workload completes with the figures consistent.
func TestWorkloads(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"--batch=true", "--batch=false"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ws := startCeiling(t, mode)
			web := "http" + strings.TrimPrefix(ws, "ws")
			tests := []struct {
				name  string
				args  []string
				check map[string]float64 // result fields and their wanted values
			}{
				{"conns", []string{"conns", "--url", ws, "-n", "20", "--hold", "0s",
					"--metrics-url", web + "/debug/vars", "--gc-url", web + "/debug/pprof/heap?gc=1"},
					map[string]float64{"opened": 20, "failed": 0}},
				{"echo", []string{"echo", "--url", ws, "-c", "3", "-m", "20", "--route", `{"action":"echo","data":"%s"}`},
					map[string]float64{"received": 60, "unexpected": 0}},
				{"fanout broadcast", []string{"fanout", "--url", ws, "--subscribers", "5", "--messages", "10"},
					map[string]float64{"deliveries": 50, "lost": 0, "duplicated": 0}},
				{"fanout topic", []string{"fanout", "--url", ws + "/dev", "--subscribers", "5", "--messages", "10", "--topic", "t"},
					map[string]float64{"deliveries": 50, "lost": 0, "duplicated": 0}},
				{"fanout via mgmt", []string{"fanout", "--url", ws, "--subscribers", "5", "--messages", "10", "--via", "mgmt", "--topic", "t"},
					map[string]float64{"deliveries": 50, "lost": 0, "duplicated": 0}},
				{"mgmt", []string{"mgmt", "--mgmt-url", web + "/dev", "-c", "3", "-n", "90", "--connections", "2"},
					map[string]float64{"requests": 90, "ok": 90, "delivered": 90}},
				{"mgmt batch", []string{"mgmt", "--mgmt-url", web, "-c", "2", "-n", "60", "--connections", "3", "--batch", "3"},
					map[string]float64{"requests": 20, "ok": 20, "delivered": 60, "lost": 0}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var stdout, stderr bytes.Buffer
					err := loadgen.Main(t.Context(), tt.args, nil, &stdout, &stderr)
					if err != nil {
						t.Fatalf("bench %q: %v\n%s%s", tt.args, err, stdout.String(), stderr.String())
					}
					var got map[string]any
					if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
						t.Fatalf("result %q: %v", stdout.String(), err)
					}
					if got["truncated"] != false || got["errors"] != 0.0 {
						t.Errorf("truncated=%v errors=%v, want a complete run: %s", got["truncated"], got["errors"], stdout.String())
					}
					for k, want := range tt.check {
						if got[k] != want {
							t.Errorf("%s = %v, want %v", k, got[k], want)
						}
					}
				})
			}
		})
	}
}

func TestEncodeFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		head []byte
	}{
		{"short", 5, []byte{0x81, 5}},
		{"125 bytes", 125, []byte{0x81, 125}},
		{"16-bit length", 126, []byte{0x81, 126, 0, 126}},
		{"64-bit length", 70000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := bytes.Repeat([]byte("a"), tt.n)
			f := encodeFrame(messageType(p), p)
			if !bytes.HasPrefix(f, tt.head) || len(f) != len(tt.head)+tt.n || !bytes.HasSuffix(f, p) {
				t.Errorf("encodeFrame(%d bytes) starts % x, length %d; want % x and %d", tt.n, f[:min(len(f), 10)], len(f), tt.head, len(tt.head)+tt.n)
			}
		})
	}
}

// frame is one server frame, as the tests expect it.
type frame struct {
	op      ws.OpCode
	payload string
}

// clientFrame returns a masked client frame.
func clientFrame(fin bool, op ws.OpCode, p string) []byte {
	return ws.MustCompileFrame(ws.MaskFrameWith(ws.NewFrame(op, fin, []byte(p)), [4]byte{1, 2, 3, 4}))
}

func closeBody(code ws.StatusCode, reason string) string {
	return string(ws.NewCloseFrameBody(code, reason))
}

// dialRaw opens a WebSocket connection by hand and sends early, client
// frames, in the same write as the handshake: they reach the server in the
// buffer net/http read the request with.
func dialRaw(t *testing.T, wsURL string, early []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(wsURL, "ws://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s, want 101", resp.Status)
	}
	return c, br
}

// readFrame reads one server frame.
func readFrame(r io.Reader) (frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return frame{}, err
	}
	if h.Masked || !h.Fin {
		return frame{}, errors.New("server frame masked or not final")
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(r, p)
	return frame{h.OpCode, string(p)}, err
}

// The reader answers control frames, gathers fragments and closes with the
// RFC 6455 status for each broken rule; a close frame is the connection's
// last, and the socket is closed after it.
func TestProtocol(t *testing.T) {
	t.Parallel()
	u := startCeiling(t)
	tooBig := make([]byte, 0, 14) // a header alone: refused before its payload
	tooBig = binary.BigEndian.AppendUint64(append(tooBig, 0x82, 0x80|127), readLimit+1)
	tooBig = append(tooBig, 1, 2, 3, 4)
	tests := []struct {
		name string
		send [][]byte
		want []frame
	}{
		{"echo", [][]byte{clientFrame(true, ws.OpText, "hi"), clientFrame(true, ws.OpBinary, "\xff")},
			[]frame{{ws.OpText, "hi"}, {ws.OpBinary, "\xff"}}},
		{"fragments and a ping between them", [][]byte{clientFrame(false, ws.OpText, "hel"), clientFrame(true, ws.OpPing, "p"), clientFrame(true, ws.OpContinuation, "lo")},
			[]frame{{ws.OpPong, "p"}, {ws.OpText, "hello"}}},
		{"close echoed after the queued frames", [][]byte{clientFrame(true, ws.OpText, "hi"), clientFrame(true, ws.OpClose, closeBody(ws.StatusNormalClosure, "bye"))},
			[]frame{{ws.OpText, "hi"}, {ws.OpClose, closeBody(ws.StatusNormalClosure, "bye")}}},
		{"empty close", [][]byte{clientFrame(true, ws.OpClose, "")},
			[]frame{{ws.OpClose, ""}}},
		{"unmasked", [][]byte{{0x81, 0}},
			[]frame{{ws.OpClose, closeBody(ws.StatusProtocolError, "")}}},
		{"unexpected continuation", [][]byte{clientFrame(true, ws.OpContinuation, "")},
			[]frame{{ws.OpClose, closeBody(ws.StatusProtocolError, "")}}},
		{"close status not to be sent", [][]byte{clientFrame(true, ws.OpClose, closeBody(ws.StatusNoStatusRcvd, ""))},
			[]frame{{ws.OpClose, closeBody(ws.StatusProtocolError, "")}}},
		{"text not UTF-8", [][]byte{clientFrame(true, ws.OpText, "\xff")},
			[]frame{{ws.OpClose, closeBody(ws.StatusInvalidFramePayloadData, "")}}},
		{"over the read limit", [][]byte{tooBig},
			[]frame{{ws.OpClose, closeBody(ws.StatusMessageTooBig, "")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, br := dialRaw(t, u, bytes.Join(tt.send, nil))
			for i, want := range tt.want {
				got, err := readFrame(br)
				if err != nil {
					t.Fatalf("frame %d: %v, want opcode %d %q", i, err, want.op, want.payload)
				}
				if want.op == ws.OpClose && len(want.payload) == 2 && len(got.payload) > 2 {
					got.payload = got.payload[:2] // a status without a reason: the reason is not compared
				}
				if got != want {
					t.Fatalf("frame %d: opcode %d %q, want opcode %d %q", i, got.op, got.payload, want.op, want.payload)
				}
			}
			if tt.want[len(tt.want)-1].op != ws.OpClose {
				return
			}
			if got, err := readFrame(br); err != io.EOF {
				t.Errorf("after the close frame: opcode %d %q, %v; want the end of the connection", got.op, got.payload, err)
			}
		})
	}
}

// A connection with queueMax frames waiting is closed as a slow consumer:
// the waiting frames are dropped and a close frame (1008) follows the frame
// being written.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe() // unbuffered: the writer blocks until the client reads
	defer client.Close()
	c := &conn{raw: server, queueMax: 2, wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeLoop(true)
	}()
	f := encodeFrame(ws.OpText, []byte("x"))
	for c.send(f) {
	}
	if c.send(f) {
		t.Fatal("a closed connection accepted a frame")
	}
	for i := 0; ; i++ {
		got, err := readFrame(client)
		if err != nil {
			t.Fatalf("frame %d: %v, want a close frame", i, err)
		}
		if got.op == ws.OpClose {
			if want := closeBody(ws.StatusPolicyViolation, "Slow consumer"); got.payload != want {
				t.Errorf("close frame %q, want %q", got.payload, want)
			}
			break
		}
		if i > 0 {
			t.Fatalf("frame %d: opcode %d %q; want at most one data frame before the close", i, got.op, got.payload)
		}
	}
	if _, err := readFrame(client); err != io.EOF {
		t.Errorf("after the close frame: %v, want the end of the connection", err)
	}
	<-done
}

// A request that is not an upgrade is refused over HTTP.
func TestNotUpgrade(t *testing.T) {
	t.Parallel()
	u := startCeiling(t)
	resp, err := http.Get("http" + strings.TrimPrefix(u, "ws") + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET /: %s, want 426", resp.Status)
	}
	http.DefaultClient.CloseIdleConnections()
}
