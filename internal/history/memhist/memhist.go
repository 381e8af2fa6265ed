// Package memhist keeps topic history in the memory of a node alone: per
// topic, the last publications its rule allows, younger than its TTL. The
// epoch is random per Store, so a restarted node starts a new one and its
// clients are told their history was lost.
package memhist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/history"
)

// Options configures a Store. The zero value keeps nothing.
type Options struct {
	// Rules choose the topics that keep history; the first that matches a
	// topic sets its size and TTL.
	Rules []history.Rule
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Store keeps the history of the topics its rules match. Append delivers
// under the store's lock, so that deliveries are made in offset order.
// Safe for concurrent use.
type Store struct {
	rules   []history.Rule
	now     func() time.Time
	epoch   string
	deliver history.Deliver // set by Watch; nil delivers nowhere

	mu        sync.Mutex
	seq       uint64 // the last offset given, over every topic
	topics    map[string]*topic
	lastSweep time.Time
	sweepIn   time.Duration // the shortest TTL: how often every topic is pruned
}

type topic struct {
	rule    history.Rule
	last    uint64 // the topic's last offset
	entries []kept // oldest first
}

type kept struct {
	history.Entry
	at time.Time
}

// New returns a store for o, or an error naming a bad rule.
func New(o Options) (*Store, error) {
	s := &Store{now: o.Now, topics: make(map[string]*topic)}
	if s.now == nil {
		s.now = time.Now
	}
	for _, r := range o.Rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		r = r.WithDefaults()
		s.rules = append(s.rules, r)
		if r.TTL > 0 && (s.sweepIn == 0 || r.TTL < s.sweepIn) {
			s.sweepIn = r.TTL
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	s.epoch = hex.EncodeToString(b[:])
	s.lastSweep = s.now()
	return s, nil
}

var _ history.Store = (*Store)(nil)

// Epoch names this store's history.
func (s *Store) Epoch() string { return s.epoch }

func (s *Store) rule(name string) (history.Rule, bool) {
	for _, r := range s.rules {
		if history.Match(r.Topics, name) {
			return r, true
		}
	}
	return history.Rule{}, false
}

// Keeps reports whether a rule keeps name's history.
func (s *Store) Keeps(name string) bool {
	_, ok := s.rule(name)
	return ok
}

// Watch implements history.Store: Append calls deliver, under the lock.
func (s *Store) Watch(deliver history.Deliver) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliver = deliver
	return nil
}

// Append implements history.Store: it gives data the next offset, keeps it
// in name's history and delivers it, under the lock, so that deliveries are
// made in offset order. It never waits on anything but the lock.
func (s *Store) Append(_ context.Context, name string, data []byte) (int, error) {
	r, ok := s.rule(name)
	if !ok {
		return 0, fmt.Errorf("append to %q: %w", name, history.ErrNoHistory)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweepLocked(now)
	t := s.topics[name]
	if t == nil {
		t = &topic{rule: r}
		s.topics[name] = t
	}
	s.seq++
	e := history.Entry{Epoch: s.epoch, Offset: s.seq, Prev: t.last, Data: data}
	t.last = e.Offset
	t.entries = append(t.entries, kept{Entry: e, at: now})
	t.prune(now)
	if s.deliver == nil {
		return 0, nil
	}
	return s.deliver(name, e), nil
}

// prune drops what the topic's size and TTL no longer allow.
func (t *topic) prune(now time.Time) {
	drop := 0
	if over := len(t.entries) - t.rule.Size; over > 0 {
		drop = over
	}
	if t.rule.TTL > 0 {
		for drop < len(t.entries) && now.Sub(t.entries[drop].at) >= t.rule.TTL {
			drop++
		}
	}
	if drop > 0 {
		clear(t.entries[:drop]) // release the payloads
		t.entries = t.entries[drop:]
	}
}

// sweepLocked prunes every topic once per shortest TTL, and forgets those
// left with nothing kept, so that topics no one publishes to any more do
// not hold memory.
func (s *Store) sweepLocked(now time.Time) {
	if s.sweepIn <= 0 || now.Sub(s.lastSweep) < s.sweepIn {
		return
	}
	s.lastSweep = now
	for name, t := range s.topics {
		t.prune(now)
		if len(t.entries) == 0 {
			delete(s.topics, name)
		}
	}
}

// Since implements history.Store: what name kept after from, the gap when
// that is not all that was published after it, and name's position now
// (its last offset, zero when nothing is kept).
func (s *Store) Since(_ context.Context, name string, from *history.Position) (history.Backlog, error) {
	if !s.Keeps(name) {
		return history.Backlog{}, fmt.Errorf("history of %q: %w", name, history.ErrNoHistory)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	t := s.topics[name]
	if t != nil {
		t.prune(now)
	}
	pos := history.Position{Epoch: s.epoch}
	if t != nil {
		pos.Offset = t.last
	}
	if from == nil {
		return history.Backlog{Now: pos}, nil
	}
	var entries []kept
	if t != nil {
		entries = t.entries
	}
	after, gap := uint64(0), history.Gap("")
	if from.Epoch != s.epoch {
		gap = history.GapEpoch
	} else {
		after = from.Offset
	}
	var backlog []history.Entry
	for _, k := range entries {
		if k.Offset > after {
			backlog = append(backlog, k.Entry)
		}
	}
	if gap == "" {
		var first *history.Entry
		if len(backlog) > 0 {
			first = &backlog[0]
		}
		last := s.seq // the topic is forgotten: any publication may have been its
		if t != nil {
			last = t.last
		}
		gap = history.GapAfter(after, first, last)
	}
	return history.Backlog{Entries: backlog, Gap: gap, Now: pos}, nil
}
