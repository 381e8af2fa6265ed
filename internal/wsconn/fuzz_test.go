package wsconn

import (
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
// after its handshake: whatever they are, the connection must end once the
// client hangs up, never deliver a message over the limit or a text message
// that is not UTF-8, and end with a code a server may report.
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
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x82, 0x7e})
	const limit = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		server, client := net.Pipe()
		defer client.Close()
		opts := Options{ReadLimit: limit, PingInterval: -1}.withDefaults()
		c := newConn(server, nil, &opts, "")
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
		_, _ = client.Write(data)
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
			if len(m.Data) > limit {
				t.Errorf("delivered %d bytes, over the %d limit", len(m.Data), limit)
			}
			if m.Type == Text && !utf8.Valid(m.Data) {
				t.Errorf("delivered a text message that is not UTF-8: %q", m.Data)
			}
		}
	})
}

type handlerFuncs struct {
	message func(Message)
	close   func(CloseInfo)
}

func (h handlerFuncs) OnMessage(m Message)  { h.message(m) }
func (h handlerFuncs) OnClose(ci CloseInfo) { h.close(ci) }
