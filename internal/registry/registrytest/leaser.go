package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// Leased is a directory whose records live under their node's lease.
type Leased interface {
	registry.Directory
	registry.Leaser
}

// ShortTTL is the lease RunLeaser lets lapse. Backends whose leases are
// coarser must round up, not refuse it.
const ShortTTL = 2 * time.Second

// longTTL outlives every test.
const longTTL = 5 * time.Minute

// RunLeaser runs the conformance suite of a directory with leases.
// newEngine is called once per subtest: it starts (or reuses, isolated
// from every other subtest) one engine, empty, and returns a function that
// opens a new client of it, as each node of a cluster would. The suite does
// not close clients: newEngine registers their cleanups on t.
func RunLeaser(t *testing.T, newEngine func(t *testing.T) func() Leased) {
	t.Run("NodesSortedWithTheirDetails", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		c1, c2 := open(), open()
		started := time.Now().Truncate(time.Millisecond)
		nb := registry.Node{ID: "node-b", Name: "host-b", StartedAt: started}
		na := registry.Node{ID: "node-a", Name: "host-a", StartedAt: started.Add(-time.Hour)}
		mustKeepAlive(ctx, t, c1, nb, longTTL)
		mustKeepAlive(ctx, t, c2, na, longTTL)
		mustKeepAlive(ctx, t, c2, na, longTTL) // a renewal is not a second node
		for i, c := range []Leased{c1, c2} {
			nodes, err := c.Nodes(ctx)
			if err != nil {
				t.Fatalf("Nodes through client %d: %v", i+1, err)
			}
			if len(nodes) != 2 || nodes[0].ID != "node-a" || nodes[1].ID != "node-b" {
				t.Fatalf("Nodes through client %d = %+v, want node-a then node-b", i+1, nodes)
			}
			for j, want := range []registry.Node{na, nb} {
				got := nodes[j]
				if got.Name != want.Name || !got.StartedAt.Equal(want.StartedAt) {
					t.Errorf("Nodes()[%d] = %+v, want name %q started %v", j, got, want.Name, want.StartedAt)
				}
				if got.LastSeen.IsZero() {
					t.Errorf("Nodes()[%d].LastSeen is zero", j)
				}
			}
		}
	})

	t.Run("LeaveRemovesAtOnce", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		ca, cb := open(), open()
		mustKeepAlive(ctx, t, ca, registry.Node{ID: "node-a"}, longTTL)
		mustKeepAlive(ctx, t, cb, registry.Node{ID: "node-b"}, longTTL)
		onA, onB := addFor(ctx, t, ca, "node-a", 5), addFor(ctx, t, cb, "node-b", 5)
		for _, id := range onA {
			if _, err := cb.Lookup(ctx, id); err != nil {
				t.Fatalf("Lookup(%q) through another client: %v", id, err)
			}
		}
		if err := ca.Leave(ctx, "node-a"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		checkOnly(ctx, t, cb, onA, onB, "node-b")
		if err := cb.Leave(ctx, "never-joined"); err != nil {
			t.Errorf("Leave of an unknown node = %v, want nil", err)
		}
	})

	t.Run("LapsedLeaseHidesRecords", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		ca, cb := open(), open()
		mustKeepAlive(ctx, t, cb, registry.Node{ID: "node-b"}, longTTL)
		mustKeepAlive(ctx, t, ca, registry.Node{ID: "node-a"}, ShortTTL)
		onA, onB := addFor(ctx, t, ca, "node-a", 7), addFor(ctx, t, cb, "node-b", 7)
		if n := mustCount(ctx, t, cb); n != 14 {
			t.Fatalf("Count() with both leases current = %d, want 14", n)
		}
		// node-a stops renewing, as a killed process does.
		testutil.Eventually(t, 10*ShortTTL, func() bool {
			_, err := cb.Lookup(ctx, onA[0])
			return errors.Is(err, registry.ErrNotFound)
		}, "a record of a node whose lease lapsed is still found")
		checkOnly(ctx, t, cb, onA, onB, "node-b")
	})

	t.Run("LapsedLeaseHidesUsersAndMembers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		ca, cb := open(), open()
		mustKeepAlive(ctx, t, cb, registry.Node{ID: "node-b"}, longTTL)
		mustKeepAlive(ctx, t, ca, registry.Node{ID: "node-a"}, ShortTTL)
		joinAll(ctx, t, ca, "node-a", []string{"a1", "a2"})
		joinAll(ctx, t, cb, "node-b", []string{"b1"})
		p := cb.(registry.Presence)
		if n := len(mustMembers(ctx, t, p, "t")); n != 3 {
			t.Fatalf("Members(t) with both leases current: %d, want 3", n)
		}
		// node-a stops renewing, as a killed process does.
		testutil.Eventually(t, 10*ShortTTL, func() bool {
			ms, err := p.Members(ctx, "t")
			return err == nil && len(ms) == 1
		}, "the members of a node whose lease lapsed are still listed")
		checkIndexOnly(ctx, t, cb, "node-a", "node-b")
	})

	t.Run("LeaveRemovesUsersAndMembers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		ca, cb := open(), open()
		mustKeepAlive(ctx, t, ca, registry.Node{ID: "node-a"}, longTTL)
		mustKeepAlive(ctx, t, cb, registry.Node{ID: "node-b"}, longTTL)
		joinAll(ctx, t, ca, "node-a", []string{"a1", "a2"})
		joinAll(ctx, t, cb, "node-b", []string{"b1"})
		if err := ca.Leave(ctx, "node-a"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		checkIndexOnly(ctx, t, cb, "node-a", "node-b")
		// Back after a Leave, the node starts with no members.
		mustKeepAlive(ctx, t, ca, registry.Node{ID: "node-a"}, longTTL)
		if ms := mustMembers(ctx, t, cb.(registry.Presence), "t"); len(ms) != 1 {
			t.Errorf("Members(t) after node-a left and came back = %+v, want b1 alone", ms)
		}
	})

	t.Run("RenewalKeepsRecords", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		ca, cb := open(), open()
		node := registry.Node{ID: "node-a"}
		mustKeepAlive(ctx, t, ca, node, ShortTTL)
		onA := addFor(ctx, t, ca, "node-a", 3)
		// Renew well within the TTL for twice its length.
		stop := time.Now().Add(2 * ShortTTL)
		for time.Now().Before(stop) {
			mustKeepAlive(ctx, t, ca, node, ShortTTL)
			time.Sleep(ShortTTL / 8)
		}
		for _, id := range onA {
			if _, err := cb.Lookup(ctx, id); err != nil {
				t.Errorf("Lookup(%q) of a renewed node: %v", id, err)
			}
		}
		if nodes, err := cb.Nodes(ctx); err != nil || len(nodes) != 1 || nodes[0].ID != "node-a" {
			t.Errorf("Nodes() of a renewed node = %+v, %v; want node-a", nodes, err)
		}
	})

	t.Run("ConcurrentNodes", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t)
		open := newEngine(t)
		const nodes, each = 4, 20
		var wg sync.WaitGroup
		errc := make(chan error, nodes)
		for n := range nodes {
			c := open()
			wg.Go(func() {
				id := fmt.Sprintf("node-%d", n)
				if err := c.KeepAlive(ctx, registry.Node{ID: id}, longTTL); err != nil {
					errc <- err
					return
				}
				for i := range each {
					rec := record(fmt.Sprintf("%s-%02d", id, i))
					rec.Node = id
					if err := c.Add(ctx, rec); err != nil {
						errc <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if n := mustCount(ctx, t, open()); n != nodes*each {
			t.Errorf("Count() = %d, want %d", n, nodes*each)
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustKeepAlive(ctx context.Context, t *testing.T, l registry.Leaser, n registry.Node, ttl time.Duration) {
	t.Helper()
	if err := l.KeepAlive(ctx, n, ttl); err != nil {
		t.Fatalf("KeepAlive(%s, %v): %v", n.ID, ttl, err)
	}
}

// addFor adds n records held by node, with IDs that interleave with every
// other node's in listing order, and returns their IDs.
func addFor(ctx context.Context, t *testing.T, d registry.Directory, node string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		rec := record(fmt.Sprintf("c%02d-%s", i, node))
		rec.Node = node
		mustAdd(ctx, t, d, rec)
		ids = append(ids, rec.ConnID)
	}
	return ids
}

// checkOnly asserts that d knows live's records and node only, none of
// gone's, in lookups, counts and every page of its listings.
func checkOnly(ctx context.Context, t *testing.T, d Leased, gone, live []string, node string) {
	t.Helper()
	for _, id := range gone {
		if _, err := d.Lookup(ctx, id); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Lookup(%q) of a gone node's record: err = %v, want ErrNotFound", id, err)
		}
	}
	if n := mustCount(ctx, t, d); n != len(live) {
		t.Errorf("Count() = %d, want %d (the live node's only)", n, len(live))
	}
	want := slices.Sorted(slices.Values(live))
	for _, limit := range []int{1, 3, len(live), 100} {
		if got := listAll(ctx, t, d, limit, len(live)); !slices.Equal(got, want) {
			t.Errorf("List by %d = %q, want %q", limit, got, want)
		}
		// Pages are full but the last.
		p, err := d.List(ctx, "", limit)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if wantN := min(limit, len(live)); len(p.Records) != wantN {
			t.Errorf("first page by %d has %d records, want %d: a gone node's records must not make pages short", limit, len(p.Records), wantN)
		}
	}
	nodes, err := d.Nodes(ctx)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	if len(nodes) != 1 || nodes[0].ID != node {
		t.Errorf("Nodes() = %+v, want only %s", nodes, node)
	}
}
