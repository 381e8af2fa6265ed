package wsconn

import (
	"bytes"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// FuzzReadFrames feeds arbitrary bytes to a connection as a client would
// after its handshake, through both readers: the stream reader (net.Pipe,
// as for TLS) and the watched socket's (loopback TCP, the bytes in pieces
// so that frames arrive split across readiness). Whatever the bytes, each
// connection must end once the client hangs up, never deliver a message
// over the limit or a text message that is not UTF-8, end with a code a
// server may report, and both readers must deliver the same messages.
func FuzzReadFrames(f *testing.F) {
	frame := func(op ws.OpCode, fin bool, p string) []byte {
		b, _ := ws.CompileFrame(ws.MaskFrame(ws.NewFrame(op, fin, []byte(p))))
		return b
	}
	f.Add(frame(ws.OpText, true, `{"action":"echo"}`))
	f.Add(slices.Concat(frame(ws.OpText, false, "he"), frame(ws.OpPing, true, "p"), frame(ws.OpContinuation, true, "llo")))
	f.Add(slices.Concat(frame(ws.OpBinary, true, "\x00\xff"), frame(ws.OpClose, true, "\x03\xe8bye")))
	f.Add(frame(ws.OpText, true, "\xff\xfe"))
	f.Add(frame(ws.OpContinuation, true, "x"))
	f.Add(frame(ws.OpBinary, true, string(make([]byte, 300))))
	f.Add(slices.Concat(frame(ws.OpText, true, "a"), frame(ws.OpBinary, true, string(make([]byte, 200))), frame(ws.OpText, true, "b")))
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x82, 0x7e})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		piped, pipeEnd := readAllOf(t, data, func() (net.Conn, net.Conn) { return net.Pipe() })
		watched, _ := readAllOf(t, data, func() (net.Conn, net.Conn) {
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			return server, client
		})
		// A pipe, unlike TCP, refuses a write (a pong) once the client hung
		// up, which ends the connection early: then the pipe's messages are
		// only the first of the socket's.
		if len(piped) > len(watched) || len(piped) < len(watched) && pipeEnd.Reason != ReasonWriteFailed {
			t.Fatalf("the stream reader delivered %d messages (ended %+v), the watched socket's %d", len(piped), pipeEnd, len(watched))
		}
		for i := range piped {
			if piped[i].Type != watched[i].Type || !bytes.Equal(piped[i].Data, watched[i].Data) {
				t.Fatalf("message %d: stream reader %v %q, watched socket's %v %q", i, piped[i].Type, piped[i].Data, watched[i].Type, watched[i].Data)
			}
		}
	})
}

const fuzzLimit = 256

// readAllOf serves one connection from newPair, hands it the start of data
// as bytes read with the handshake, writes the rest from its client side in
// pieces, hangs up, and returns the messages delivered and how the
// connection ended.
func readAllOf(t *testing.T, data []byte, newPair func() (server, client net.Conn)) ([]Message, CloseInfo) {
	server, client := newPair()
	defer client.Close()
	opts := Options{ReadLimit: fuzzLimit, PingInterval: -1}.withDefaults()
	// A quarter of the bytes as if sent with the handshake: read first.
	early := data[:len(data)/4]
	c := newConn(server, early, &opts)
	var (
		mu   sync.Mutex
		msgs []Message
	)
	done := make(chan CloseInfo, 1)
	c.Start(handlerFuncs{
		message: func(m Message) {
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		},
		close: func(ci CloseInfo) { done <- ci },
	})
	go func() { _, _ = io.Copy(io.Discard, client) }()
	for rest := data[len(early):]; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)/3)
		if _, err := client.Write(rest[:n]); err != nil {
			break // the server closed first
		}
		rest = rest[n:]
	}
	_ = client.Close()

	var ci CloseInfo
	select {
	case ci = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end after the client hung up")
	}
	switch {
	case ci.ByPeer:
	case ci.Code == StatusProtocolError, ci.Code == StatusInvalidPayload, ci.Code == StatusMessageTooBig,
		ci.Code == StatusPolicyViolation, ci.Code == StatusAbnormal:
	default:
		t.Errorf("ended with %+v, not a code the server sends", ci)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if len(m.Data) > fuzzLimit {
			t.Errorf("delivered %d bytes, over the %d limit", len(m.Data), fuzzLimit)
		}
		if m.Type == Text && !utf8.Valid(m.Data) {
			t.Errorf("delivered a text message that is not UTF-8: %q", m.Data)
		}
	}
	return msgs, ci
}

type handlerFuncs struct {
	message func(Message)
	close   func(CloseInfo)
}

func (h handlerFuncs) OnMessage(m Message)  { h.message(m) }
func (h handlerFuncs) OnClose(ci CloseInfo) { h.close(ci) }
