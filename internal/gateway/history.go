package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// History is what the hub needs of a topic history store (memhist.Store):
// it gives each publication of a kept topic its offset and calls deliver
// with it in offset order, and replays what a resuming subscriber missed
// without a publication interleaving (both callbacks run under the
// store's lock).
type History interface {
	Keeps(topic string) bool
	Append(topic string, data []byte, deliver func(history.Entry)) error
	Since(topic string, from *history.Position, fn func(backlog []history.Entry, gap history.Gap, now history.Position)) error
}

// histSub is a subscription that receives the history envelope. Its
// fields are read and written only inside the History's callbacks, under
// the store's lock.
type histSub struct {
	live bool   // caught up: publications go out as they come
	last uint64 // the last offset sent: nothing at or below it is sent again
}

// setHistSubLocked makes c's subscription to topic receive envelopes (hs
// not nil) or raw data (nil). Called with h.mu held for writing.
func (h *Hub) setHistSubLocked(c *client, topic string, hs *histSub) {
	if hs == nil {
		h.dropHistSubLocked(c, topic)
		return
	}
	m := h.hsubs[topic]
	if m == nil {
		m = make(map[*client]*histSub)
		h.hsubs[topic] = m
	}
	m[c] = hs
}

func (h *Hub) dropHistSubLocked(c *client, topic string) {
	if m := h.hsubs[topic]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.hsubs, topic)
		}
	}
}

// SubscribeFrom implements builtin.Resumer: it subscribes connID to topic
// as Subscribe does, with every publication wrapped in an envelope that
// carries its epoch and offset. With from, it first sends what the topic
// kept after from (a gap message when that is not all that was published
// after it), then live publications, with no gap and no duplicate at the
// switch; either way it ends the catch-up with a subscribed message naming
// the position. It returns an error wrapping history.ErrNoHistory for a
// topic no rule keeps.
func (h *Hub) SubscribeFrom(ctx context.Context, connID, topic string, max int, from *history.Position) error {
	if h.hist == nil || !h.hist.Keeps(topic) {
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, history.ErrNoHistory)
	}
	hs := &histSub{}
	if err := h.subscribe(ctx, connID, topic, max, hs); err != nil {
		return err
	}
	c, ok := h.local(connID)
	if !ok {
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, registry.ErrNotFound)
	}
	out := h.out(sourceOf(ctx))
	return h.hist.Since(topic, from, func(backlog []history.Entry, gap history.Gap, now history.Position) {
		if from != nil && from.Epoch == now.Epoch {
			hs.last = from.Offset
		}
		if gap != "" {
			_ = h.send(c, wsconn.Text, gapMessage(topic, now.Epoch, gap), out)
		}
		for _, e := range backlog {
			if e.Offset > hs.last {
				_ = h.send(c, wsconn.Text, envelope(topic, e), out)
				hs.last = e.Offset
			}
		}
		hs.last = max64(hs.last, now.Offset)
		hs.live = true
		_ = h.send(c, wsconn.Text, subscribedMessage(topic, now), out)
	})
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// publishKept publishes to a topic whose history is kept: the store gives
// the publication its offset, then this node's subscribers receive it,
// raw or in the envelope they asked for. It returns how many connections
// it reached.
func (h *Hub) publishKept(ctx context.Context, topic string, data []byte) (int, error) {
	out := h.out(sourceOf(ctx))
	n := 0
	err := h.hist.Append(topic, data, func(e history.Entry) { n = h.deliverKept(topic, e, out) })
	if err != nil {
		return 0, fmt.Errorf("publish %q: %w", topic, err)
	}
	return n, nil
}

// deliverKept delivers one kept publication to this node's subscribers of
// topic: raw to those that did not ask for the envelope, enveloped to
// those that did, once each, skipping offsets they were already sent.
// Runs under the store's lock (History.Append's deliver).
func (h *Hub) deliverKept(topic string, e history.Entry, out prometheus.Counter) int {
	n := 0
	var raw, env wsconn.Frame
	var hasRaw, hasEnv bool
	h.mu.RLock()
	hsubs := h.hsubs[topic]
	for c := range h.topics[topic] {
		hs := hsubs[c]
		var f wsconn.Frame
		switch {
		case hs == nil:
			if !hasRaw {
				raw, hasRaw = wsconn.NewFrame(messageType(e.Data), e.Data), true
			}
			f = raw
		case !hs.live || e.Offset <= hs.last:
			continue // its catch-up sends it, or sent it
		default:
			if !hasEnv {
				env, hasEnv = wsconn.NewFrame(wsconn.Text, envelope(topic, e)), true
			}
			f = env
			hs.last = e.Offset
		}
		if h.queue(c, f) == nil {
			n++
		}
	}
	h.mu.RUnlock()
	out.Add(float64(n))
	return n
}

// envelope is a kept publication as an enveloped subscriber receives it:
// {"topic","epoch","offset","data"}. data is the payload itself when it is
// JSON, a JSON string when it is other text, and base64 with
// "isBase64Encoded": true when it is not UTF-8.
func envelope(topic string, e history.Entry) []byte {
	var m struct {
		Topic           string          `json:"topic"`
		Epoch           string          `json:"epoch"`
		Offset          uint64          `json:"offset"`
		Data            json.RawMessage `json:"data"`
		IsBase64Encoded bool            `json:"isBase64Encoded,omitempty"`
	}
	m.Topic, m.Epoch, m.Offset = topic, e.Epoch, e.Offset
	switch {
	case json.Valid(e.Data):
		m.Data = e.Data
	case utf8.Valid(e.Data):
		m.Data, _ = json.Marshal(string(e.Data))
	default:
		m.Data, _ = json.Marshal(base64.StdEncoding.EncodeToString(e.Data))
		m.IsBase64Encoded = true
	}
	b, _ := json.Marshal(m) // strings and numbers only: cannot fail
	return b
}

// gapMessage tells a resuming subscriber that publications after its
// position are lost: {"type":"gap","topic","epoch","reason"}.
func gapMessage(topic, epoch string, reason history.Gap) []byte {
	b, _ := json.Marshal(struct {
		Type   string      `json:"type"`
		Topic  string      `json:"topic"`
		Epoch  string      `json:"epoch"`
		Reason history.Gap `json:"reason"`
	}{"gap", topic, epoch, reason})
	return b
}

// subscribedMessage ends a catch-up: {"type":"subscribed","topic","epoch",
// "offset"}, the position live publications follow.
func subscribedMessage(topic string, p history.Position) []byte {
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Topic  string `json:"topic"`
		Epoch  string `json:"epoch"`
		Offset uint64 `json:"offset"`
	}{"subscribed", topic, p.Epoch, p.Offset})
	return b
}
