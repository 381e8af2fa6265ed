// Package histtest checks that a history.Store behaves as the gateway
// expects: offsets that increase and chain per topic, a resume that gets
// what it missed or a gap saying why not, each publication delivered once
// to every watching node in one order, and appends from several nodes at
// once that never break a topic's chain.
package histtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// wait bounds each call and each wait for a delivery.
const wait = 10 * time.Second

// NewStores returns n stores of rules that share one history, as n nodes
// of a cluster would (each test gets a history of its own), or nil when the
// store is a node's own and n > 1. The stores are not yet watched; the
// factory closes them with t's cleanups.
type NewStores func(t *testing.T, rules []history.Rule, n int) []history.Store

// recorder is a Deliver that keeps what it was given.
type recorder struct {
	mu  sync.Mutex
	got map[string][]history.Entry
}

func (r *recorder) deliver(topic string, e history.Entry) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[topic] = append(r.got[topic], e)
	return 1
}

func (r *recorder) entries(topic string) []history.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[topic])
}

type node struct {
	history.Store
	rec *recorder
}

func start(t *testing.T, newStores NewStores, rules []history.Rule, n int) []node {
	t.Helper()
	stores := newStores(t, rules, n)
	if stores == nil {
		t.Skip("a node's own store: no history shared between nodes")
	}
	var nodes []node
	for _, s := range stores {
		rec := &recorder{got: map[string][]history.Entry{}}
		if err := s.Watch(rec.deliver); err != nil {
			t.Fatalf("Watch: %v", err)
		}
		nodes = append(nodes, node{s, rec})
	}
	return nodes
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// appendN appends n publications "0".."n-1" to topic through s and returns
// what s's watcher received of topic.
func appendN(t *testing.T, s node, topic string, n int) []history.Entry {
	t.Helper()
	for i := range n {
		got, err := s.Append(ctxFor(t), topic, fmt.Appendf(nil, "%d", i))
		if err != nil || got != 1 {
			t.Fatalf("Append(%s, %d) = %d, %v; want 1, nil", topic, i, got, err)
		}
	}
	return s.rec.entries(topic)
}

func offsets(es []history.Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Offset)
	}
	return out
}

// chained reports what is wrong with es as a topic's publications in
// order, each after the one before; nil when nothing is.
func chained(es []history.Entry) error {
	for i, e := range es {
		if i == 0 {
			continue
		}
		if e.Offset <= es[i-1].Offset || e.Prev != es[i-1].Offset || e.Epoch != es[i-1].Epoch {
			return fmt.Errorf("entry %d: offset %d prev %d epoch %s after offset %d epoch %s",
				i, e.Offset, e.Prev, e.Epoch, es[i-1].Offset, es[i-1].Epoch)
		}
	}
	return nil
}

// Run runs the suite against the stores newStores makes.
func Run(t *testing.T, newStores NewStores) {
	t.Run("OffsetsIncreaseAndChain", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "chat.*"}}, 1)[0]
		appendN(t, s, "chat.a", 2)
		b := appendN(t, s, "chat.b", 1)
		a := appendN(t, s, "chat.a", 3)
		if len(a) != 5 || len(b) != 1 {
			t.Fatalf("delivered %d of chat.a and %d of chat.b, want 5 and 1", len(a), len(b))
		}
		if err := chained(a); err != nil {
			t.Errorf("chat.a: %v", err)
		}
		if a[0].Prev != 0 || b[0].Prev != 0 {
			t.Errorf("first publications' prev = %d, %d, want 0", a[0].Prev, b[0].Prev)
		}
		if a[0].Epoch == "" || string(a[4].Data) != "2" {
			t.Errorf("epoch %q data %q, want an epoch and data 2", a[0].Epoch, a[4].Data)
		}
	})

	t.Run("SinceReplaysWhatWasMissed", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "t"}}, 1)[0]
		es := appendN(t, s, "t", 5)
		b, err := s.Since(ctxFor(t), "t", &history.Position{Epoch: es[1].Epoch, Offset: es[1].Offset})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := offsets(b.Entries), offsets(es[2:]); !slices.Equal(got, want) || b.Gap != "" {
			t.Errorf("Since(second) = %v gap %q, want %v and no gap", got, b.Gap, want)
		}
		if b.Now != (history.Position{Epoch: es[4].Epoch, Offset: es[4].Offset}) {
			t.Errorf("position %+v, want the last publication's", b.Now)
		}
		b, err = s.Since(ctxFor(t), "t", &history.Position{Epoch: es[4].Epoch, Offset: es[4].Offset})
		if err != nil || len(b.Entries) != 0 || b.Gap != "" {
			t.Errorf("Since(last) = %v gap %q err %v, want nothing", offsets(b.Entries), b.Gap, err)
		}
		b, err = s.Since(ctxFor(t), "t", nil)
		if err != nil || len(b.Entries) != 0 || b.Now.Offset != es[4].Offset {
			t.Errorf("Since(nil) = %v at %d err %v, want only the position %d", offsets(b.Entries), b.Now.Offset, err, es[4].Offset)
		}
	})

	t.Run("SizeTrims", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "t", Size: 3}}, 1)[0]
		es := appendN(t, s, "t", 6)
		b, err := s.Since(ctxFor(t), "t", &history.Position{Epoch: es[0].Epoch, Offset: es[0].Offset})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := offsets(b.Entries), offsets(es[3:]); !slices.Equal(got, want) || b.Gap != history.GapTrimmed {
			t.Errorf("Since(first) = %v gap %q, want %v and gap trimmed", got, b.Gap, want)
		}
		b, err = s.Since(ctxFor(t), "t", &history.Position{Epoch: es[2].Epoch, Offset: es[2].Offset})
		if err != nil || b.Gap != "" || len(b.Entries) != 3 {
			t.Errorf("Since(just before what is kept) = %v gap %q err %v, want 3 and no gap", offsets(b.Entries), b.Gap, err)
		}
	})

	t.Run("SizeTrimsFromOffsetZero", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "t", Size: 3}}, 1)[0]
		b, err := s.Since(ctxFor(t), "t", nil) // a subscriber while nothing is kept
		if err != nil || b.Now.Offset != 0 {
			t.Fatalf("Since(nil) at %d err %v, want offset 0", b.Now.Offset, err)
		}
		from := b.Now
		es := appendN(t, s, "t", 6)
		b, err = s.Since(ctxFor(t), "t", &from)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := offsets(b.Entries), offsets(es[3:]); !slices.Equal(got, want) || b.Gap != history.GapTrimmed {
			t.Errorf("Since(offset 0) = %v gap %q, want %v and gap trimmed", got, b.Gap, want)
		}
	})

	t.Run("EverythingExpiredResumeFromZero", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "t", TTL: 200 * time.Millisecond}}, 1)[0]
		b, err := s.Since(ctxFor(t), "t", nil)
		if err != nil || b.Now.Offset != 0 {
			t.Fatalf("Since(nil) at %d err %v, want offset 0", b.Now.Offset, err)
		}
		from := b.Now
		appendN(t, s, "t", 2)
		testutil.Eventually(t, wait, func() bool {
			b, err = s.Since(ctxFor(t), "t", &from)
			return err == nil && len(b.Entries) == 0
		}, "the publications did not expire")
		if b.Gap != history.GapTrimmed {
			t.Errorf("Since(offset 0) after everything expired: gap %q, want trimmed", b.Gap)
		}
	})

	t.Run("OtherEpochReplaysAllWithGap", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "t"}}, 1)[0]
		es := appendN(t, s, "t", 3)
		b, err := s.Since(ctxFor(t), "t", &history.Position{Epoch: "another", Offset: 2})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := offsets(b.Entries), offsets(es); !slices.Equal(got, want) || b.Gap != history.GapEpoch {
			t.Errorf("Since(other epoch) = %v gap %q, want %v and gap epoch", got, b.Gap, want)
		}
	})

	t.Run("TopicsWithoutRule", func(t *testing.T) {
		t.Parallel()
		s := start(t, newStores, []history.Rule{{Topics: "chat.*"}}, 1)[0]
		if s.Keeps("news") || !s.Keeps("chat.a") {
			t.Error("Keeps: want chat.a only")
		}
		if _, err := s.Append(ctxFor(t), "news", nil); !errors.Is(err, history.ErrNoHistory) {
			t.Errorf("Append(news) = %v, want ErrNoHistory", err)
		}
		if _, err := s.Since(ctxFor(t), "news", nil); !errors.Is(err, history.ErrNoHistory) {
			t.Errorf("Since(news) = %v, want ErrNoHistory", err)
		}
	})

	t.Run("KeptBeforeDeliveredHere", func(t *testing.T) {
		t.Parallel()
		// A store nobody watches never delivers: Append keeps the
		// publication and, once ctx ends, answers 0 and no error.
		s := newStores(t, []history.Rule{{Topics: "t"}}, 1)[0]
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if n, err := s.Append(ctx, "t", []byte("x")); n != 0 || err != nil {
			t.Fatalf("Append with no watcher = %d, %v; want 0, nil", n, err)
		}
		b, err := s.Since(ctxFor(t), "t", &history.Position{Epoch: "another"})
		if err != nil || len(b.Entries) != 1 || string(b.Entries[0].Data) != "x" {
			t.Errorf("Since = %d entries, err %v; want the publication kept", len(b.Entries), err)
		}
	})

	t.Run("EveryNodeDeliversInOneOrder", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newStores, []history.Rule{{Topics: "t"}}, 3)
		const total = 30
		for i := range total {
			s := nodes[i%len(nodes)]
			if n, err := s.Append(ctxFor(t), "t", fmt.Appendf(nil, "%d", i)); err != nil || n != 1 {
				t.Fatalf("Append(%d) through node %d = %d, %v; want 1, nil", i, i%len(nodes), n, err)
			}
		}
		testutil.Eventually(t, wait, func() bool {
			for _, s := range nodes {
				if len(s.rec.entries("t")) < total {
					return false
				}
			}
			return true
		}, "every node delivers %d publications", total)
		want := nodes[0].rec.entries("t")
		if err := chained(want); err != nil {
			t.Errorf("node 0: %v", err)
		}
		for i, e := range want {
			if string(e.Data) != fmt.Sprint(i) {
				t.Fatalf("node 0's publication %d is %q, want %d: not in the order made", i, e.Data, i)
			}
		}
		for i, s := range nodes[1:] {
			if got := s.rec.entries("t"); !slices.EqualFunc(got, want, func(a, b history.Entry) bool {
				return a.Offset == b.Offset && a.Prev == b.Prev && a.Epoch == b.Epoch && string(a.Data) == string(b.Data)
			}) {
				t.Errorf("node %d delivered %v, node 0 %v", i+1, offsets(got), offsets(want))
			}
		}
		b, err := nodes[2].Since(ctxFor(t), "t", &history.Position{Epoch: want[9].Epoch, Offset: want[9].Offset})
		if err != nil || b.Gap != "" || !slices.Equal(offsets(b.Entries), offsets(want[10:])) {
			t.Errorf("Since on another node = %v gap %q err %v, want %v", offsets(b.Entries), b.Gap, err, offsets(want[10:]))
		}
	})

	t.Run("ConcurrentAppendsKeepTheChain", func(t *testing.T) {
		t.Parallel()
		nodes := start(t, newStores, []history.Rule{{Topics: "t"}}, 3)
		const each = 20
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)*each)
		ctx := ctxFor(t)
		for _, s := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.Append(ctx, "t", fmt.Appendf(nil, "%d", i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Append: %v", err)
		}
		for i, s := range nodes {
			testutil.Eventually(t, wait, func() bool { return len(s.rec.entries("t")) >= each*len(nodes) },
				"node %d delivers every publication", i)
			if err := chained(s.rec.entries("t")); err != nil {
				t.Errorf("node %d: %v", i, err)
			}
		}
	})
}
