package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// History is what the hub needs of a topic history store: memhist.Store
// on a node alone, natshist.Store or redishist.Store on a cluster. The hub
// watches it from StartHub on, and delivers kept topics' publications from
// its Deliver only, never from the bus.
type History = history.Store

// historySource labels the deliveries of kept topics in the messages-out
// metric: they reach the hub from the store, not from a route.
const historySource = "(history)"

// maxPending bounds how many live publications a resuming subscriber
// buffers while its backlog is read; past it, the catch-up reads the
// store again from where it got to, rather than hold more.
const maxPending = 4096

// maxCatchUps bounds how many times one catch-up reads the store before
// it gives up on a topic published to faster than it can catch up.
const maxCatchUps = 8

// histSub is a subscription that receives the history envelope. Lock
// order: the hub's mu before histSub.mu.
type histSub struct {
	mu       sync.Mutex
	live     bool            // caught up: publications go out as they come
	epoch    string          // the epoch of last
	last     uint64          // the last offset sent: nothing at or below it is sent again
	pending  []history.Entry // live publications that came during the catch-up, in order
	overflow bool            // pending hit maxPending: the catch-up reads the store again
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
//
// The subscription is registered before the store is read, and live
// publications are buffered until the backlog is sent: those the backlog
// also holds are dropped by offset. No lock is held while the store is read.
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
	if err := h.catchUp(ctx, c, topic, hs, from); err != nil {
		_ = h.Unsubscribe(ctx, connID, topic)
		return fmt.Errorf("subscribe %s to %q: %w", connID, topic, err)
	}
	return nil
}

// catchUp sends c what topic kept after from, then the publications hs
// buffered meanwhile, and turns hs live.
func (h *Hub) catchUp(ctx context.Context, c *client, topic string, hs *histSub, from *history.Position) error {
	out := h.out(sourceOf(ctx))
	first := true
	for range maxCatchUps {
		rctx, cancel := h.bounded(ctx)
		b, err := h.hist.Since(rctx, topic, from)
		cancel()
		if err != nil {
			return err
		}
		hs.mu.Lock()
		if first && from != nil && from.Epoch == b.Now.Epoch && b.Gap != history.GapEpoch {
			// What the client received, but never past the topic's last
			// offset: a position ahead of it (a store that lost its data
			// and did not know yet) must not hide what comes next.
			hs.last = min(from.Offset, b.Now.Offset)
		}
		if b.Gap != "" {
			_ = h.send(c, wsconn.Text, gapMessage(topic, b.Now.Epoch, b.Gap), out)
		}
		for _, e := range b.Entries {
			if e.Offset > hs.last {
				_ = h.send(c, wsconn.Text, envelope(topic, e), out)
				hs.last = e.Offset
			}
		}
		if hs.overflow {
			// More came meanwhile than hs may hold: read the store again
			// from where the client got to.
			hs.pending, hs.overflow = nil, false
			from = &history.Position{Epoch: b.Now.Epoch, Offset: hs.last}
			first = false
			hs.mu.Unlock()
			continue
		}
		hs.last = max(hs.last, b.Now.Offset)
		hs.epoch = b.Now.Epoch
		_ = h.send(c, wsconn.Text, subscribedMessage(topic, b.Now), out)
		for _, e := range hs.pending {
			if e.Epoch != hs.epoch {
				h.newEpochLocked(c, topic, hs, e.Epoch, out)
			}
			if e.Offset > hs.last {
				_ = h.send(c, wsconn.Text, envelope(topic, e), out)
				hs.last = e.Offset
			}
		}
		hs.pending, hs.live = nil, true
		hs.mu.Unlock()
		return nil
	}
	return fmt.Errorf("catch up on %q: published to faster than it can be read", topic)
}

// newEpochLocked tells c that topic's history started again (the engine
// lost it): a gap message of reason epoch, then offsets from the new
// epoch's start. Called with hs.mu held.
func (h *Hub) newEpochLocked(c *client, topic string, hs *histSub, epoch string, out prometheus.Counter) {
	_ = h.send(c, wsconn.Text, gapMessage(topic, epoch, history.GapEpoch), out)
	hs.epoch, hs.last = epoch, 0
}

// publishKept publishes to a topic whose history is kept: the store gives
// the publication its offset and brings it back to every node's Deliver,
// this one's included, which sends it to the subscribers there. It returns
// how many connections of this node it reached.
func (h *Hub) publishKept(ctx context.Context, topic string, data []byte) (int, error) {
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	n, err := h.hist.Append(ctx, topic, data)
	if err != nil {
		return 0, fmt.Errorf("publish %q: %w", topic, err)
	}
	return n, nil
}

// deliverKept is the hub's history.Deliver: it delivers one kept
// publication to this node's subscribers of topic, raw to those that did
// not ask for the envelope, enveloped to those that did, once each,
// skipping offsets they were already sent; a subscriber still catching up
// has it buffered.
func (h *Hub) deliverKept(topic string, e history.Entry) int {
	n := 0
	var raw, env wsconn.Frame
	var hasRaw, hasEnv bool
	h.mu.RLock()
	hsubs := h.hsubs[topic]
	for c := range h.topics[topic] {
		hs := hsubs[c]
		var f wsconn.Frame
		if hs == nil {
			if !hasRaw {
				raw, hasRaw = wsconn.NewFrame(messageType(e.Data), e.Data), true
			}
			f = raw
		} else {
			hs.mu.Lock()
			switch {
			case !hs.live:
				if len(hs.pending) < maxPending {
					hs.pending = append(hs.pending, e)
				} else {
					hs.overflow = true
				}
				hs.mu.Unlock()
				continue
			case e.Epoch != hs.epoch:
				h.newEpochLocked(c, topic, hs, e.Epoch, h.histOut)
			case e.Offset <= hs.last:
				hs.mu.Unlock()
				continue // its catch-up sent it
			}
			hs.last = e.Offset
			hs.mu.Unlock()
			if !hasEnv {
				env, hasEnv = wsconn.NewFrame(wsconn.Text, envelope(topic, e)), true
			}
			f = env
		}
		if h.queue(c, f) == nil {
			n++
		}
	}
	h.mu.RUnlock()
	h.histOut.Add(float64(n))
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
