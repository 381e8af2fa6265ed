// Package tail keeps the most recent route invocations and fans them out to
// live subscribers, for the dashboard's live view. Publishing never blocks:
// a subscriber that falls behind loses records, and is told how many.
package tail

import (
	"sync"
	"time"
)

// Record describes one route invocation.
type Record struct {
	Time         time.Time     `json:"time"`
	ConnectionID string        `json:"connectionId"`
	RequestID    string        `json:"requestId"`
	RouteKey     string        `json:"routeKey"`
	EventType    string        `json:"eventType"`
	Integration  string        `json:"integration"`
	Status       int           `json:"status"`          // the integration's status code; 0 on error
	Error        string        `json:"error,omitempty"` // what the caller was told, when it failed
	Latency      time.Duration `json:"latencyNs"`
	Bytes        int           `json:"bytes"` // size of the inbound message
	// Unmatched marks a message that selected no route and was answered
	// Forbidden; RouteKey is then empty and no integration ran.
	Unmatched bool `json:"unmatched,omitempty"`
}

// Hub holds the last Size records and the live subscribers. The zero value
// is not usable; call New. Safe for concurrent use.
type Hub struct {
	mu     sync.Mutex
	ring   []Record
	next   int
	full   bool
	subs   map[*Sub]struct{}
	bufLen int
}

// Sub is one live subscriber.
type Sub struct {
	C       chan Record // closed by Unsubscribe
	dropped int         // records lost because C was full; guarded by Hub.mu
}

// New returns a hub keeping size records; each subscriber buffers bufLen.
func New(size, bufLen int) *Hub {
	return &Hub{ring: make([]Record, size), subs: make(map[*Sub]struct{}), bufLen: bufLen}
}

// Publish records r and offers it to every subscriber without blocking.
func (h *Hub) Publish(r Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ring) > 0 {
		h.ring[h.next] = r
		h.next = (h.next + 1) % len(h.ring)
		h.full = h.full || h.next == 0
	}
	for s := range h.subs {
		select {
		case s.C <- r:
		default:
			s.dropped++
		}
	}
}

// Recent returns the kept records, oldest first.
func (h *Hub) Recent() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		return append([]Record(nil), h.ring[:h.next]...)
	}
	return append(append([]Record(nil), h.ring[h.next:]...), h.ring[:h.next]...)
}

// Subscribe returns a live subscriber; call Unsubscribe when done.
func (h *Hub) Subscribe() *Sub {
	s := &Sub{C: make(chan Record, h.bufLen)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes s and closes its channel.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.C)
	}
}

// Dropped returns and resets how many records s lost.
func (h *Hub) Dropped(s *Sub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := s.dropped
	s.dropped = 0
	return n
}
