package redisbus

import (
	"bytes"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []envelope{
		{kind: kindPublish, sender: "node-a", a: "topic:with*?[chars] ü", b: []byte{0, 1, 0xff}},
		{kind: kindRequest, op: opDescribe, id: 1<<63 + 5, sender: "n", a: "R1kmxc2VNjMCFIA="},
		{kind: kindReply, id: 7, a: "error:boom"},
		{kind: kindBroadcast},
	} {
		got, err := decode(e.encode())
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if got.kind != e.kind || got.op != e.op || got.id != e.id || got.sender != e.sender || got.a != e.a || !bytes.Equal(got.b, e.b) {
			t.Errorf("decode(encode(%+v)) = %+v", e, got)
		}
		// Every truncation is refused, never a panic.
		p := e.encode()
		for i := range len(p) {
			if _, err := decode(p[:i]); err == nil {
				t.Errorf("decode of %d of %d bytes of %+v succeeded", i, len(p), e)
			}
		}
		if _, err := decode(append(p, 0)); err == nil {
			t.Errorf("decode with a trailing byte of %+v succeeded", e)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(envelope{kind: kindPublish, sender: "a", a: "t", b: []byte("x")}.encode())
	f.Add([]byte{1, 3, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decode(p)
		if err != nil {
			return
		}
		if again, err := decode(e.encode()); err != nil || again.a != e.a || again.sender != e.sender || !bytes.Equal(again.b, e.b) {
			t.Errorf("re-encoding %+v does not round-trip: %+v, %v", e, again, err)
		}
	})
}
