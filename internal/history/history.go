// Package history defines the contract of topic history: which topics keep
// their recent publications (Rule, Match), the offsets that order them
// (Entry, Position), why a resume cannot be served whole (Gap), and what a
// store does (Store). Stores live in subpackages: memhist on a node alone,
// natshist in a cluster's NATS JetStream; histtest checks each the same
// way. It imports nothing of the gateway and does no I/O.
package history

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoHistory is returned when a client asks for the history of a topic
// that no rule keeps.
var ErrNoHistory = errors.New("history: the topic keeps no history")

// Defaults of a Rule.
const (
	// DefaultSize is how many publications a topic keeps.
	DefaultSize = 100
	// DefaultTTL is how long a publication is kept.
	DefaultTTL = 10 * time.Minute
)

// Rule keeps the history of the topics its pattern matches. The zero value
// of Size and TTL means their default.
type Rule struct {
	// Topics is a pattern of dot-separated segments: "*" matches one
	// segment, a final ">" one or more, anything else itself
	// ("chat.*", "orders.>", "news").
	Topics string
	// Size is how many publications each topic keeps; the oldest goes
	// first. Zero means DefaultSize.
	Size int
	// TTL is how long a publication is kept. Zero means DefaultTTL;
	// negative keeps publications until Size pushes them out.
	TTL time.Duration
}

// WithDefaults returns r with its zero fields set to their defaults.
func (r Rule) WithDefaults() Rule {
	if r.Size == 0 {
		r.Size = DefaultSize
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	return r
}

// Validate reports what is wrong with r, or nil.
func (r Rule) Validate() error {
	if err := ValidPattern(r.Topics); err != nil {
		return err
	}
	if r.Size < 0 {
		return fmt.Errorf("history: topics %q: size %d must not be negative", r.Topics, r.Size)
	}
	return nil
}

// ValidPattern reports whether p is a usable topic pattern.
func ValidPattern(p string) error {
	if p == "" {
		return errors.New("history: empty topic pattern")
	}
	segs := strings.Split(p, ".")
	for i, s := range segs {
		switch {
		case s == "":
			return fmt.Errorf("history: topic pattern %q has an empty segment", p)
		case s == ">" && i != len(segs)-1:
			return fmt.Errorf("history: topic pattern %q: \">\" must be the last segment", p)
		}
	}
	return nil
}

// Match reports whether topic matches pattern (see Rule.Topics).
func Match(pattern, topic string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, ".")
		tseg, trest, tmore := strings.Cut(topic, ".")
		switch {
		case pseg == ">" && !pmore:
			return tseg != ""
		case pseg != "*" && pseg != tseg, pseg == "*" && tseg == "":
			return false
		case !pmore || !tmore:
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}

// Entry is one kept publication of a topic.
type Entry struct {
	// Epoch names the history the offset belongs to; it changes when the
	// history is lost (a restarted node).
	Epoch string
	// Offset orders the publications: it increases within an epoch, over
	// every topic, so a topic's offsets increase but are not consecutive.
	Offset uint64
	// Prev is the offset of the topic's previous publication in the
	// epoch, zero for its first: what tells a resume that nothing between
	// was lost.
	Prev uint64
	// Data is the payload, shared: never modified.
	Data []byte
}

// Position is where a client is in a topic: the last offset it received
// in an epoch.
type Position struct {
	Epoch  string
	Offset uint64
}

// Gap says why a resume could not be served whole; empty when it was.
type Gap string

// Reasons of a gap, as the gap message names them.
const (
	// GapEpoch: the position is of another epoch; the history it belongs
	// to was lost.
	GapEpoch Gap = "epoch"
	// GapTrimmed: publications after the position are no longer kept
	// (the size or the TTL pushed them out).
	GapTrimmed Gap = "trimmed"
)

// Backlog is what a store kept of a topic after a position.
type Backlog struct {
	// Entries are the publications kept after the position, oldest first.
	Entries []Entry
	// Gap says why Entries is not everything published after the
	// position; empty when it is.
	Gap Gap
	// Now is the topic's position when the backlog was read: its last
	// offset, zero when nothing is kept.
	Now Position
}

// Deliver is called by a store with each publication of a kept topic, on
// every node that watches the store: in offset order per topic, one call
// at a time per topic. It returns how many connections it reached.
type Deliver func(topic string, e Entry) int

// Store keeps the history of the topics its rules match.
//
// A publication goes through Append and comes back to every watching node
// through its Deliver, the publishing node included: a node delivers a kept
// topic's publications from there only, never from the bus, so that each
// arrives once, in the store's order. A resuming subscriber is registered
// before Since is called and has live publications buffered until the
// backlog is sent: what Since returns and what Deliver brings later overlap
// but never leave a hole, and offsets tell the duplicates apart.
type Store interface {
	// Keeps reports whether a rule keeps topic's history.
	Keeps(topic string) bool
	// Watch starts delivering publications to deliver, until the store is
	// closed. Called once, before the first Append.
	Watch(deliver Deliver) error
	// Append gives data the next offset of topic and keeps it, and returns
	// once this node delivered it, with what Deliver returned; or 0, nil
	// when ctx ends after it was kept but before this node delivered it
	// (every node still will). After an error it may not have been kept,
	// or, when the engine's answer was lost, it may have been. It returns
	// an error wrapping ErrNoHistory for a topic no rule keeps.
	Append(ctx context.Context, topic string, data []byte) (int, error)
	// Since returns what topic kept after from; a from in another epoch
	// gets everything kept, with GapEpoch; a nil from, only the position.
	// It returns an error wrapping ErrNoHistory for a topic no rule keeps.
	Since(ctx context.Context, topic string, from *Position) (Backlog, error)
}

// GapAfter decides the gap of a resume from offset after, in the epoch of
// the position. first is the first publication kept after it, nil when
// none is; last is then the topic's last offset, or, when the store no
// longer knows it (the topic expired whole), an offset no lower than it,
// such as the store's last: publications after the position may have
// expired, and the store cannot tell. An after of zero is a position too:
// the one a subscriber gets while nothing is kept.
func GapAfter(after uint64, first *Entry, last uint64) Gap {
	if first != nil {
		// Nothing was lost when the first kept publication after the
		// position follows it directly; one that knew no previous
		// publication (its topic was forgotten) cannot tell.
		if p := first.Prev; p > after || (p == 0 && after > 0) {
			return GapTrimmed
		}
		return ""
	}
	if last > after {
		return GapTrimmed // published after the position, and expired
	}
	return ""
}
