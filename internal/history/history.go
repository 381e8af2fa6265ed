// Package history defines the contract of topic history: which topics keep
// their recent publications (Rule, Match), the offsets that order them
// (Entry, Position), and why a resume cannot be served whole (Gap). Stores
// live in subpackages (memhist on a node alone). It imports nothing of the
// gateway and does no I/O.
package history

import (
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
