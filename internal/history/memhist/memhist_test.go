package memhist_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/memhist"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// store is a Store and the last publication it delivered.
type store struct {
	*memhist.Store
	last history.Entry
}

func newStore(t *testing.T, c *clock, rules ...history.Rule) *store {
	t.Helper()
	s, err := memhist.New(memhist.Options{Rules: rules, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	st := &store{Store: s}
	if err := s.Watch(func(_ string, e history.Entry) int { st.last = e; return 1 }); err != nil {
		t.Fatal(err)
	}
	return st
}

func appendN(t *testing.T, s *store, topic string, n int) []history.Entry {
	t.Helper()
	var out []history.Entry
	for i := range n {
		got, err := s.Append(context.Background(), topic, fmt.Appendf(nil, "%d", i))
		if err != nil || got != 1 {
			t.Fatalf("Append = %d, %v; want 1, nil", got, err)
		}
		out = append(out, s.last)
	}
	return out
}

type result struct {
	backlog []history.Entry
	gap     history.Gap
	pos     history.Position
}

func since(t *testing.T, s *store, topic string, from *history.Position) result {
	t.Helper()
	b, err := s.Since(context.Background(), topic, from)
	if err != nil {
		t.Fatal(err)
	}
	return result{b.Entries, b.Gap, b.Now}
}

func offsets(es []history.Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Offset)
	}
	return out
}

func TestOffsetsIncreaseAndChain(t *testing.T) {
	t.Parallel()
	s := newStore(t, &clock{time.Unix(0, 0)}, history.Rule{Topics: "chat.*"})
	a := appendN(t, s, "chat.a", 2)
	b := appendN(t, s, "chat.b", 1)
	c := appendN(t, s, "chat.a", 1)
	if got, want := offsets(slices.Concat(a, b, c)), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("offsets = %v, want %v", got, want)
	}
	if c[0].Prev != 2 || b[0].Prev != 0 || a[1].Prev != 1 {
		t.Errorf("prev = %d, %d, %d, want 2, 0, 1", c[0].Prev, b[0].Prev, a[1].Prev)
	}
	if a[0].Epoch != s.Epoch() || a[0].Epoch == "" {
		t.Errorf("epoch = %q, want the store's %q", a[0].Epoch, s.Epoch())
	}
}

func TestSinceReplaysWhatWasMissed(t *testing.T) {
	t.Parallel()
	s := newStore(t, &clock{time.Unix(0, 0)}, history.Rule{Topics: "t"})
	es := appendN(t, s, "t", 5)
	r := since(t, s, "t", &history.Position{Epoch: s.Epoch(), Offset: es[1].Offset})
	if got, want := offsets(r.backlog), offsets(es[2:]); !slices.Equal(got, want) || r.gap != "" {
		t.Errorf("Since(2) = %v gap %q, want %v and no gap", got, r.gap, want)
	}
	if r.pos.Offset != es[4].Offset {
		t.Errorf("position = %d, want %d", r.pos.Offset, es[4].Offset)
	}
	r = since(t, s, "t", &history.Position{Epoch: s.Epoch(), Offset: es[4].Offset})
	if len(r.backlog) != 0 || r.gap != "" {
		t.Errorf("Since(last) = %v gap %q, want nothing", offsets(r.backlog), r.gap)
	}
}

func TestSizeBound(t *testing.T) {
	t.Parallel()
	s := newStore(t, &clock{time.Unix(0, 0)}, history.Rule{Topics: "t", Size: 3})
	es := appendN(t, s, "t", 6)
	r := since(t, s, "t", &history.Position{Epoch: s.Epoch(), Offset: es[1].Offset})
	if got, want := offsets(r.backlog), offsets(es[3:]); !slices.Equal(got, want) || r.gap != history.GapTrimmed {
		t.Errorf("Since(2) = %v gap %q, want %v and gap trimmed", got, r.gap, want)
	}
	r = since(t, s, "t", &history.Position{Epoch: s.Epoch(), Offset: es[2].Offset})
	if got, want := offsets(r.backlog), offsets(es[3:]); !slices.Equal(got, want) || r.gap != "" {
		t.Errorf("Since(3) = %v gap %q, want %v and no gap", got, r.gap, want)
	}
}

func TestTTLBound(t *testing.T) {
	t.Parallel()
	c := &clock{time.Unix(0, 0)}
	s := newStore(t, c, history.Rule{Topics: "t", TTL: time.Minute})
	old := appendN(t, s, "t", 2)
	c.t = c.t.Add(40 * time.Second)
	young := appendN(t, s, "t", 1)
	c.t = c.t.Add(30 * time.Second) // old ones are 70s old, the young one 30s
	r := since(t, s, "t", &history.Position{Epoch: s.Epoch(), Offset: old[0].Offset})
	if got, want := offsets(r.backlog), offsets(young); !slices.Equal(got, want) || r.gap != history.GapTrimmed {
		t.Errorf("Since(first) = %v gap %q, want %v and gap trimmed", got, r.gap, want)
	}
	c.t = c.t.Add(time.Minute) // everything expired
	r = since(t, s, "t", &history.Position{Epoch: s.Epoch(), Offset: old[1].Offset})
	if len(r.backlog) != 0 || r.gap != history.GapTrimmed {
		t.Errorf("Since(after expiry) = %v gap %q, want nothing and gap trimmed", offsets(r.backlog), r.gap)
	}
}

func TestOtherEpochReplaysAllWithGap(t *testing.T) {
	t.Parallel()
	s := newStore(t, &clock{time.Unix(0, 0)}, history.Rule{Topics: "t"})
	es := appendN(t, s, "t", 2)
	r := since(t, s, "t", &history.Position{Epoch: "gone", Offset: 1})
	if got, want := offsets(r.backlog), offsets(es); !slices.Equal(got, want) || r.gap != history.GapEpoch {
		t.Errorf("Since(other epoch) = %v gap %q, want %v and gap epoch", got, r.gap, want)
	}
	other := newStore(t, &clock{time.Unix(0, 0)}, history.Rule{Topics: "t"})
	if other.Epoch() == s.Epoch() {
		t.Error("two stores share an epoch")
	}
}

func TestTopicsWithoutRule(t *testing.T) {
	t.Parallel()
	s := newStore(t, &clock{time.Unix(0, 0)}, history.Rule{Topics: "chat.*"})
	if s.Keeps("news") || !s.Keeps("chat.a") {
		t.Error("Keeps: want chat.a only")
	}
	if _, err := s.Append(context.Background(), "news", nil); !errors.Is(err, history.ErrNoHistory) {
		t.Errorf("Append(news) = %v, want ErrNoHistory", err)
	}
	if _, err := s.Since(context.Background(), "news", nil); !errors.Is(err, history.ErrNoHistory) {
		t.Errorf("Since(news) = %v, want ErrNoHistory", err)
	}
	if _, err := memhist.New(memhist.Options{Rules: []history.Rule{{Topics: "a..b"}}}); err == nil {
		t.Error("New(bad pattern) = nil error")
	}
}

func TestSweepForgetsIdleTopics(t *testing.T) {
	t.Parallel()
	c := &clock{time.Unix(0, 0)}
	s := newStore(t, c, history.Rule{Topics: ">", TTL: time.Second})
	for i := range 100 {
		appendN(t, s, fmt.Sprint("idle", i), 1)
	}
	c.t = c.t.Add(2 * time.Second)
	appendN(t, s, "busy", 1)
	if n := s.TopicsForTest(); n != 1 {
		t.Errorf("topics kept after the sweep = %d, want 1", n)
	}
}

// Once a topic's whole history expired and was swept, the store no longer
// knows its last offset: a resume gets the gap message even when nothing
// was published on the topic since, rather than a silent loss.
func TestExpiredTopicResumesWithGap(t *testing.T) {
	t.Parallel()
	c := &clock{time.Unix(0, 0)}
	s := newStore(t, c, history.Rule{Topics: ">", TTL: time.Second})
	seen := appendN(t, s, "quiet", 1)
	c.t = c.t.Add(2 * time.Second)
	appendN(t, s, "busy", 1) // sweeps "quiet"
	r := since(t, s, "quiet", &history.Position{Epoch: s.Epoch(), Offset: seen[0].Offset})
	if len(r.backlog) != 0 || r.gap != history.GapTrimmed || r.pos.Offset != 0 {
		t.Errorf("Since(swept topic) = %v gap %q at %d, want nothing, gap trimmed, position 0", offsets(r.backlog), r.gap, r.pos.Offset)
	}
}

// A publication kept after its topic was forgotten knows no previous one:
// a client that had seen the topic gets the gap message, since what was
// published between may have expired unseen.
func TestForgottenTopicResumesWithGap(t *testing.T) {
	t.Parallel()
	c := &clock{time.Unix(0, 0)}
	s := newStore(t, c, history.Rule{Topics: ">", TTL: time.Second})
	seen := appendN(t, s, "quiet", 1)
	c.t = c.t.Add(2 * time.Second)
	appendN(t, s, "busy", 1) // sweeps "quiet"
	again := appendN(t, s, "quiet", 1)
	r := since(t, s, "quiet", &history.Position{Epoch: s.Epoch(), Offset: seen[0].Offset})
	if got := offsets(r.backlog); !slices.Equal(got, offsets(again)) || r.gap != history.GapTrimmed {
		t.Errorf("Since(before the topic was forgotten) = %v gap %q, want %v and gap trimmed", got, r.gap, offsets(again))
	}
}
