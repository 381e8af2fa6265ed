// Package registrytest checks that a registry.Directory (RunDirectory) and
// a directory with leases (RunLeaser) behave as the gateway expects.
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// RunDirectory runs the conformance suite of a registry.Directory.
// newRegistry must return an empty directory that no other test uses; it
// may register cleanups on t.
func RunDirectory(t *testing.T, newRegistry func(t *testing.T) registry.Directory) {
	runIndex(t, newRegistry)

	t.Run("LookupMissing", func(t *testing.T) {
		t.Parallel()
		_, err := newRegistry(t).Lookup(t.Context(), "nope")
		if !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Lookup(missing): err = %v, want ErrNotFound", err)
		}
	})

	t.Run("AddLookup", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		// A location other than UTC: a backend that serializes the time must
		// still give back the same instant.
		at := time.Now().In(time.FixedZone("UTC+2", 2*3600)).Truncate(time.Millisecond)
		want := registry.Record{
			ConnID:      "R1kmxc2VNjMCFIA=",
			Node:        "node-1",
			ConnectedAt: at,
			SourceIP:    "203.0.113.7",
			UserAgent:   "Mozilla/5.0 (X11; Linux x86_64) \"quoted\"",
			Principal:   "user|123",
		}
		mustAdd(ctx, t, r, want)
		mustAdd(ctx, t, r, record("other"))
		got, err := r.Lookup(ctx, want.ConnID)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", want.ConnID, err)
		}
		checkRecord(t, got, want)
	})

	t.Run("AddReplaces", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		first := record("c1")
		first.Node, first.Principal = "node-1", "alice"
		second := record("c1")
		second.Node, second.Principal = "node-2", "bob"
		second.ConnectedAt = first.ConnectedAt.Add(time.Minute)
		mustAdd(ctx, t, r, first)
		mustAdd(ctx, t, r, second)
		got, err := r.Lookup(ctx, "c1")
		if err != nil {
			t.Fatalf("Lookup(%q): %v", "c1", err)
		}
		checkRecord(t, got, second)
		if n := mustCount(ctx, t, r); n != 1 {
			t.Errorf("Count() = %d after adding the same ID twice, want 1", n)
		}
	})

	t.Run("RemoveUnknownIsNotError", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		mustAdd(ctx, t, r, record("c1"))
		if err := r.Remove(ctx, "nope"); err != nil {
			t.Errorf("Remove(unknown) = %v, want nil", err)
		}
		if err := r.Remove(ctx, "c1"); err != nil {
			t.Fatalf("Remove(%q) = %v", "c1", err)
		}
		if err := r.Remove(ctx, "c1"); err != nil {
			t.Errorf("Remove(%q) a second time = %v, want nil", "c1", err)
		}
		if _, err := r.Lookup(ctx, "c1"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Lookup(removed): err = %v, want ErrNotFound", err)
		}
	})

	t.Run("ListPaging", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		const n = 25
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("conn-%02d", i))
		}
		for _, i := range rand.Perm(n) { // insertion order must not matter
			mustAdd(ctx, t, r, record(want[i]))
		}
		// 10 leaves a short last page; 5 and 25 divide n exactly, so the
		// last page is full and must still end the listing.
		for _, limit := range []int{10, 5, 25, 100} {
			got := listAll(ctx, t, r, limit, n)
			if !slices.Equal(got, want) {
				t.Errorf("paging by %d collected %q, want %q (each once, ascending)", limit, got, want)
			}
		}
	})

	t.Run("ListEmpty", func(t *testing.T) {
		t.Parallel()
		p, err := newRegistry(t).List(t.Context(), "", 10)
		if err != nil {
			t.Fatalf("List on an empty registry: %v", err)
		}
		if len(p.Records) != 0 || p.Next != "" {
			t.Errorf("List on an empty registry = %d records, Next %q; want none", len(p.Records), p.Next)
		}
	})

	t.Run("Count", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		if n := mustCount(ctx, t, r); n != 0 {
			t.Errorf("Count() on an empty registry = %d, want 0", n)
		}
		for i := range 5 {
			mustAdd(ctx, t, r, record(fmt.Sprintf("c%d", i)))
		}
		if n := mustCount(ctx, t, r); n != 5 {
			t.Errorf("Count() after 5 adds = %d, want 5", n)
		}
		for _, id := range []string{"c0", "c3", "nope"} {
			if err := r.Remove(ctx, id); err != nil {
				t.Fatalf("Remove(%q) = %v", id, err)
			}
		}
		if n := mustCount(ctx, t, r); n != 3 {
			t.Errorf("Count() after removing 2 = %d, want 3", n)
		}
	})

	t.Run("ConcurrentAddRemove", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		const workers, perWorker = 8, 50
		var wg sync.WaitGroup
		errc := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					id := fmt.Sprintf("w%d-%03d", w, i)
					if err := r.Add(ctx, record(id)); err != nil {
						errc <- fmt.Errorf("Add(%q): %w", id, err)
						return
					}
					if _, err := r.Lookup(ctx, id); err != nil {
						errc <- fmt.Errorf("Lookup(%q): %w", id, err)
						return
					}
					if i%2 == 1 { // remove every odd connection
						if err := r.Remove(ctx, id); err != nil {
							errc <- fmt.Errorf("Remove(%q): %w", id, err)
							return
						}
					}
					if _, err := r.Count(ctx); err != nil {
						errc <- fmt.Errorf("Count: %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		var want []string
		for w := range workers {
			for i := 0; i < perWorker; i += 2 {
				want = append(want, fmt.Sprintf("w%d-%03d", w, i))
			}
		}
		if n := mustCount(ctx, t, r); n != len(want) {
			t.Errorf("Count() = %d, want %d", n, len(want))
		}
		if got := listAll(ctx, t, r, 64, len(want)); !slices.Equal(got, want) {
			t.Errorf("List after concurrent adds and removes = %q, want %q", got, want)
		}
	})

	t.Run("RecordsOfSeveralNodes", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		r := newRegistry(t)
		var want []string
		for i := range 6 {
			rec := record(fmt.Sprintf("c%d", i))
			rec.Node = fmt.Sprintf("node-%d", i%3)
			mustAdd(ctx, t, r, rec)
			want = append(want, rec.ConnID)
		}
		if got := listAll(ctx, t, r, 4, len(want)); !slices.Equal(got, want) {
			t.Errorf("List = %q, want every node's records %q", got, want)
		}
		for i, id := range want {
			got, err := r.Lookup(ctx, id)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", id, err)
			}
			if wantNode := fmt.Sprintf("node-%d", i%3); got.Node != wantNode {
				t.Errorf("Lookup(%q).Node = %q, want %q", id, got.Node, wantNode)
			}
		}
	})
}

// listAll pages through r with limit, following Next until it is empty, and
// returns the IDs in the order listed. n is how many records r holds.
func listAll(ctx context.Context, t *testing.T, r registry.Directory, limit, n int) []string {
	t.Helper()
	var got []string
	cursor := ""
	for page := 1; ; page++ {
		if page > n+1 {
			t.Fatalf("List by %d did not end after %d pages; got %q", limit, n+1, got)
		}
		p, err := r.List(ctx, cursor, limit)
		if err != nil {
			t.Fatalf("List(%q, %d): %v", cursor, limit, err)
		}
		if len(p.Records) > limit {
			t.Errorf("List(%q, %d) returned %d records", cursor, limit, len(p.Records))
		}
		for _, rec := range p.Records {
			got = append(got, rec.ConnID)
		}
		if len(got) >= n && p.Next != "" {
			t.Errorf("List(%q, %d).Next = %q on the page with the last record, want empty", cursor, limit, p.Next)
		}
		if p.Next == "" {
			return got
		}
		if p.Next == cursor {
			t.Fatalf("List(%q, %d).Next = %q: no progress", cursor, limit, p.Next)
		}
		cursor = p.Next
	}
}

// record returns a minimal record for id.
func record(id string) registry.Record {
	return registry.Record{
		ConnID:      id,
		Node:        "node-1",
		ConnectedAt: time.Date(2024, time.January, 20, 11, 55, 0, 0, time.UTC),
		SourceIP:    "127.0.0.1",
	}
}

func mustAdd(ctx context.Context, t *testing.T, r registry.Directory, rec registry.Record) {
	t.Helper()
	if err := r.Add(ctx, rec); err != nil {
		t.Fatalf("Add(%q) = %v", rec.ConnID, err)
	}
}

func mustCount(ctx context.Context, t *testing.T, r registry.Directory) int {
	t.Helper()
	n, err := r.Count(ctx)
	if err != nil {
		t.Fatalf("Count() = %v", err)
	}
	return n
}

func checkRecord(t *testing.T, got, want registry.Record) {
	t.Helper()
	if !got.ConnectedAt.Equal(want.ConnectedAt) {
		t.Errorf("Lookup(%q).ConnectedAt = %v, want %v", want.ConnID, got.ConnectedAt, want.ConnectedAt)
	}
	got.ConnectedAt, want.ConnectedAt = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("Lookup(%q) = %+v, want %+v", want.ConnID, got, want)
	}
}
