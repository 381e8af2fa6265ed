package natshist_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/histtest"
	"github.com/switchboard-gateway/switchboard/internal/history/natshist"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// engines are testutil.NATSEngines: a nats-server process and the
// embedded server.
var engines = testutil.NATSEngines

func connect(t *testing.T, url string) jetstream.JetStream { return testutil.JetStream(t, url) }

func newStore(t *testing.T, js jetstream.JetStream, o natshist.Options) *natshist.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := natshist.New(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the store suite on each engine: n stores are n
// nodes, each with a connection of its own; each subtest is isolated by
// its own prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			var seq atomic.Int64
			histtest.Run(t, func(t *testing.T, rules []history.Rule, n int) []history.Store {
				prefix := fmt.Sprintf("conf%d", seq.Add(1))
				var out []history.Store
				for range n {
					out = append(out, newStore(t, connect(t, url), natshist.Options{Rules: rules, Prefix: prefix}))
				}
				return out
			})
		})
	}
}

// watched is a store whose deliveries are counted.
func watched(t *testing.T, s *natshist.Store) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	if err := s.Watch(func(string, history.Entry) int { n.Add(1); return 1 }); err != nil {
		t.Fatal(err)
	}
	return &n
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A gateway that restarts finds the history where it was, in the same
// epoch, and so does one whose NATS server restarted on its store.
func TestEpochSurvivesRestarts(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	rules := []history.Rule{{Topics: "t"}}
	first := newStore(t, connect(t, n.URL), natshist.Options{Rules: rules})
	watched(t, first)
	var entries []history.Position
	for i := range 3 {
		if _, err := first.Append(bounded(t), "t", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := first.Since(bounded(t), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, b.Now)
	_ = first.Close()

	check := func(what string) {
		t.Helper()
		again := newStore(t, connect(t, n.URL), natshist.Options{Rules: rules})
		got, err := again.Since(bounded(t), "t", &history.Position{Epoch: entries[0].Epoch, Offset: 1})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.Gap != "" || got.Now != entries[0] || len(got.Entries) != 2 {
			t.Errorf("%s: Since = %d entries gap %q at %+v, want 2, no gap, at %+v", what, len(got.Entries), got.Gap, got.Now, entries[0])
		}
	}
	check("a new store")
	n.Stop()
	n.Start()
	check("after the NATS server restarted")
}

// A stream created again (an engine that lost its store) is a new epoch:
// the store notices, delivers the new stream's publications from its
// start, and a resume from the old epoch gets the epoch gap.
func TestStreamCreatedAgainStartsNewEpoch(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	js := connect(t, url)
	s := newStore(t, js, natshist.Options{Rules: []history.Rule{{Topics: "t"}}, Prefix: "wipe", CheckInterval: 50 * time.Millisecond})
	delivered := watched(t, s)
	if _, err := s.Append(bounded(t), "t", []byte("before")); err != nil {
		t.Fatal(err)
	}
	old, err := s.Since(bounded(t), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(bounded(t))
	for name := range names.Name() {
		if err := js.DeleteStream(bounded(t), name); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		b, err := s.Since(bounded(t), "t", nil)
		return err == nil && b.Now.Epoch != old.Now.Epoch
	}, "a new epoch")
	if _, err := s.Append(bounded(t), "t", []byte("after")); err != nil {
		t.Fatalf("Append after the stream was created again: %v", err)
	}
	if got := delivered.Load(); got != 2 {
		t.Errorf("delivered %d publications, want 2", got)
	}
	b, err := s.Since(bounded(t), "t", &old.Now)
	if err != nil || b.Gap != history.GapEpoch || len(b.Entries) != 1 || string(b.Entries[0].Data) != "after" {
		t.Errorf("Since(old epoch) = %d entries gap %q err %v, want the new one with gap epoch", len(b.Entries), b.Gap, err)
	}
}

// A stream created again (here by another node) before this node's next
// check is not read as the continuation of the old one: a resume from the
// old epoch gets the epoch gap and everything the new stream kept, whether
// its position is below the new stream's last sequence or above it.
func TestStreamCreatedAgainBeforeTheCheck(t *testing.T) {
	t.Parallel()
	url := engines["embedded"](t)
	js := connect(t, url)
	rules := []history.Rule{{Topics: "t"}}
	s := newStore(t, js, natshist.Options{Rules: rules, Prefix: "early", CheckInterval: time.Hour})
	watched(t, s)
	for range 5 {
		if _, err := s.Append(bounded(t), "t", []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	old, err := s.Since(bounded(t), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(bounded(t))
	for name := range names.Name() {
		if err := js.DeleteStream(bounded(t), name); err != nil {
			t.Fatal(err)
		}
	}
	other := newStore(t, connect(t, url), natshist.Options{Rules: rules, Prefix: "early", CheckInterval: time.Hour})
	watched(t, other)
	for range 3 {
		if _, err := other.Append(bounded(t), "t", []byte("after")); err != nil {
			t.Fatal(err)
		}
	}
	for _, offset := range []uint64{2, old.Now.Offset, 1000} {
		from := history.Position{Epoch: old.Now.Epoch, Offset: offset}
		b, err := s.Since(bounded(t), "t", &from)
		if err != nil {
			t.Fatalf("Since(%v): %v", from, err)
		}
		if b.Gap != history.GapEpoch || len(b.Entries) != 3 || b.Now.Epoch == old.Now.Epoch {
			t.Errorf("Since(%v) = %d entries gap %q at %v, want the 3 new ones, gap epoch and a new epoch", from, len(b.Entries), b.Gap, b.Now)
		}
	}
}

// Publications older than the rule's TTL are no longer kept (the stream's
// MaxAge), and a resume from before them gets the trimmed gap.
func TestTTLTrims(t *testing.T) {
	t.Parallel()
	js := connect(t, engines["embedded"](t))
	s := newStore(t, js, natshist.Options{Rules: []history.Rule{{Topics: "t", TTL: 200 * time.Millisecond}}})
	watched(t, s)
	if _, err := s.Append(bounded(t), "t", []byte("a")); err != nil {
		t.Fatal(err)
	}
	first, err := s.Since(bounded(t), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(bounded(t), "t", []byte("b")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		b, err := s.Since(bounded(t), "t", &first.Now)
		return err == nil && len(b.Entries) == 0 && b.Gap == history.GapTrimmed
	}, "b expires, and a resume from a gets the trimmed gap")
}
