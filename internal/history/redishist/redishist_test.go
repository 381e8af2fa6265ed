package redishist_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/histtest"
	"github.com/switchboard-gateway/switchboard/internal/history/redishist"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func newStore(t *testing.T, rdb *redis.Client, o redishist.Options) *redishist.Store {
	t.Helper()
	s, err := redishist.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestConformance runs the store suite against a real redis-server: n
// stores are n nodes, each with a client of its own; each subtest is
// isolated by its own prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	var seq atomic.Int64
	histtest.Run(t, func(t *testing.T, rules []history.Rule, n int) []history.Store {
		prefix := fmt.Sprintf("conf%d:", seq.Add(1))
		var out []history.Store
		for range n {
			out = append(out, newStore(t, client(t, r.Addr), redishist.Options{Rules: rules, Prefix: prefix, Block: 100 * time.Millisecond}))
		}
		return out
	})
}

// A gateway that restarts finds the history in the same epoch; a Redis
// that restarted without its data starts a new one, which a running store
// notices, delivering the new epoch's publications.
func TestEpochs(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	rules := []history.Rule{{Topics: "t"}}
	o := redishist.Options{Rules: rules, Block: 50 * time.Millisecond}
	first := newStore(t, client(t, r.Addr), o)
	var delivered atomic.Int64
	if err := first.Watch(func(string, history.Entry) int { delivered.Add(1); return 1 }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := first.Append(bounded(t), "t", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := first.Since(bounded(t), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	again := newStore(t, client(t, r.Addr), o)
	b, err := again.Since(bounded(t), "t", &history.Position{Epoch: before.Now.Epoch, Offset: 1})
	if err != nil || b.Gap != "" || b.Now != before.Now || len(b.Entries) != 2 {
		t.Errorf("a new store: Since = %d entries gap %q at %+v err %v, want 2, no gap, at %+v", len(b.Entries), b.Gap, b.Now, err, before.Now)
	}

	r.Kill()
	r.Start() // no persistence: the data is gone
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := first.Append(bounded(t), "t", []byte("after"))
		return err == nil
	}, "an append after the restart")
	b, err = first.Since(bounded(t), "t", &before.Now)
	if err != nil || b.Gap != history.GapEpoch || b.Now.Epoch == before.Now.Epoch || len(b.Entries) == 0 {
		t.Errorf("after the restart: Since(old position) = %d entries gap %q epoch %s err %v, want a new epoch's with gap epoch",
			len(b.Entries), b.Gap, b.Now.Epoch, err)
	}
	if got := delivered.Load(); got < 4 {
		t.Errorf("delivered %d publications, want the 3 before and the one after", got)
	}
}

// Publications older than the rule's TTL are no longer replayed, and a
// resume from before them gets the trimmed gap.
func TestTTLTrims(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	s := newStore(t, client(t, r.Addr), redishist.Options{Rules: []history.Rule{{Topics: "t", TTL: 200 * time.Millisecond}}})
	if err := s.Watch(func(string, history.Entry) int { return 1 }); err != nil {
		t.Fatal(err)
	}
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
