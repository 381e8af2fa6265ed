package redisreg_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/redisurl"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/redisreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var prefixSeq atomic.Int64

// newDir returns a Directory over srv under a prefix no other test uses.
func newDir(t *testing.T, srv *testutil.RedisServer) (*redisreg.Directory, *redis.Client) {
	d, rdb, _ := newDirPrefix(t, srv)
	return d, rdb
}

func newDirPrefix(t *testing.T, srv *testutil.RedisServer) (*redisreg.Directory, *redis.Client, string) {
	t.Helper()
	rdb := clientFor(t, srv)
	prefix := fmt.Sprintf("t%d:", prefixSeq.Add(1))
	return redisreg.New(rdb, redisreg.Options{Prefix: prefix}), rdb, prefix
}

// clientFor opens a client of srv, closed at the end of the test.
func clientFor(t *testing.T, srv *testutil.RedisServer) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func rec(id, node string) registry.Record {
	return registry.Record{ConnID: id, Node: node, ConnectedAt: time.Date(2024, 1, 20, 11, 55, 0, 0, time.UTC), SourceIP: "127.0.0.1"}
}

func keepAlive(t *testing.T, d *redisreg.Directory, node string, ttl time.Duration) {
	t.Helper()
	if err := d.KeepAlive(ctx(t), registry.Node{ID: node, Name: "host-" + node}, ttl); err != nil {
		t.Fatalf("KeepAlive(%s): %v", node, err)
	}
}

func mustAdd(t *testing.T, d *redisreg.Directory, r registry.Record) {
	t.Helper()
	if err := d.Add(ctx(t), r); err != nil {
		t.Fatalf("Add(%s): %v", r.ConnID, err)
	}
}

func listAll(t *testing.T, d *redisreg.Directory, limit int) []string {
	t.Helper()
	var got []string
	cursor := ""
	for range 1000 {
		p, err := d.List(ctx(t), cursor, limit)
		if err != nil {
			t.Fatalf("List(%q, %d): %v", cursor, limit, err)
		}
		if p.Next != "" && len(p.Records) != limit {
			t.Errorf("List(%q, %d) = %d records with Next %q: short page before the last", cursor, limit, len(p.Records), p.Next)
		}
		for _, r := range p.Records {
			got = append(got, r.ConnID)
		}
		if p.Next == "" {
			return got
		}
		cursor = p.Next
	}
	t.Fatalf("List by %d did not end", limit)
	return nil
}

func TestDirectory(t *testing.T) {
	srv := testutil.StartRedis(t)

	t.Run("AddLookup", func(t *testing.T) {
		t.Parallel()
		d, _ := newDir(t, srv)
		keepAlive(t, d, "n1", time.Minute)
		at := time.Now().In(time.FixedZone("UTC+2", 2*3600)).Truncate(time.Millisecond)
		want := registry.Record{ConnID: "R1kmxc2VNjMCFIA=", Node: "n1", ConnectedAt: at,
			SourceIP: "203.0.113.7", UserAgent: `Mozilla "quoted"`, Principal: "user|123"}
		mustAdd(t, d, want)
		got, err := d.Lookup(ctx(t), want.ConnID)
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		if !got.ConnectedAt.Equal(at) {
			t.Errorf("ConnectedAt = %v, want %v", got.ConnectedAt, at)
		}
		got.ConnectedAt, want.ConnectedAt = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("Lookup = %+v, want %+v", got, want)
		}
		if _, err := d.Lookup(ctx(t), "nope"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Lookup(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("AddMovesBetweenNodes", func(t *testing.T) {
		t.Parallel()
		d, _ := newDir(t, srv)
		keepAlive(t, d, "n1", time.Minute)
		keepAlive(t, d, "n2", time.Minute)
		mustAdd(t, d, rec("c1", "n1"))
		mustAdd(t, d, rec("c1", "n2"))
		if got, err := d.Lookup(ctx(t), "c1"); err != nil || got.Node != "n2" {
			t.Errorf("Lookup(c1) = %+v, %v; want node n2", got, err)
		}
		if n, err := d.Count(ctx(t)); err != nil || n != 1 {
			t.Errorf("Count = %d, %v; want 1", n, err)
		}
		// n1 leaving must not take c1, now held by n2, with it.
		if err := d.Leave(ctx(t), "n1"); err != nil {
			t.Fatalf("Leave(n1): %v", err)
		}
		if _, err := d.Lookup(ctx(t), "c1"); err != nil {
			t.Errorf("Lookup(c1) after the old holder left: %v", err)
		}
	})

	t.Run("RemoveUnknownIsNotError", func(t *testing.T) {
		t.Parallel()
		d, _ := newDir(t, srv)
		keepAlive(t, d, "n1", time.Minute)
		mustAdd(t, d, rec("c1", "n1"))
		for _, id := range []string{"nope", "c1", "c1"} {
			if err := d.Remove(ctx(t), id); err != nil {
				t.Errorf("Remove(%s) = %v", id, err)
			}
		}
		if _, err := d.Lookup(ctx(t), "c1"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Lookup(removed) = %v, want ErrNotFound", err)
		}
		if n, _ := d.Count(ctx(t)); n != 0 {
			t.Errorf("Count = %d after remove, want 0", n)
		}
	})

	t.Run("ListFullPagesAcrossNodesSkippingLapsed", func(t *testing.T) {
		t.Parallel()
		d, _ := newDir(t, srv)
		keepAlive(t, d, "a", time.Minute)
		keepAlive(t, d, "b", time.Minute)
		keepAlive(t, d, "dead", time.Minute)
		const n = 30
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("conn-%02d", i))
		}
		for _, i := range rand.Perm(n) {
			node := []string{"a", "b"}[i%2]
			if i%3 == 0 {
				node = "dead" // interleaved with live records, so pages must skip them
			}
			mustAdd(t, d, rec(want[i], node))
		}
		if err := d.KeepAlive(ctx(t), registry.Node{ID: "dead"}, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		var live []string
		for i, id := range want {
			if i%3 != 0 {
				live = append(live, id)
			}
		}
		testutil.Eventually(t, 5*time.Second, func() bool {
			_, err := d.Lookup(ctx(t), "conn-00")
			return errors.Is(err, registry.ErrNotFound)
		}, "records of a lapsed node still found")
		for _, limit := range []int{1, 3, 5, 20, 100} {
			if got := listAll(t, d, limit); !slices.Equal(got, live) {
				t.Errorf("paging by %d = %q, want %q", limit, got, live)
			}
		}
		if c, err := d.Count(ctx(t)); err != nil || c != len(live) {
			t.Errorf("Count = %d, %v; want %d", c, err, len(live))
		}
		if _, err := d.List(ctx(t), "", 0); err == nil {
			t.Error("List with limit 0: no error")
		}
	})

	t.Run("LeaseLapseAndSweep", func(t *testing.T) {
		t.Parallel()
		d, rdb, prefix := newDirPrefix(t, srv)
		keepAlive(t, d, "n1", time.Minute)
		keepAlive(t, d, "n2", 200*time.Millisecond)
		mustAdd(t, d, rec("c1", "n1"))
		mustAdd(t, d, rec("c2", "n2"))
		mustAdd(t, d, rec("c3", "n2"))
		testutil.Eventually(t, 5*time.Second, func() bool {
			_, err := d.Lookup(ctx(t), "c2")
			return errors.Is(err, registry.ErrNotFound)
		}, "c2 still found after its node's lease lapsed")
		nodes, err := d.Nodes(ctx(t))
		if err != nil || len(nodes) != 1 || nodes[0].ID != "n1" || nodes[0].Name != "host-n1" || nodes[0].LastSeen.IsZero() {
			t.Errorf("Nodes = %+v, %v; want only n1 with a LastSeen", nodes, err)
		}
		n, err := d.Sweep(ctx(t))
		if err != nil || n != 2 {
			t.Errorf("Sweep = %d, %v; want 2 removed", n, err)
		}
		// The keys are gone, not only hidden.
		keys, err := rdb.Keys(ctx(t), prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.Contains(k, "n2") || strings.HasSuffix(k, ":c2") || strings.HasSuffix(k, ":c3") {
				t.Errorf("key %q left after Sweep", k)
			}
		}
		if _, err := d.Lookup(ctx(t), "c1"); err != nil {
			t.Errorf("Lookup(c1) of the live node: %v", err)
		}
	})

	t.Run("LeaveRemovesAtOnce", func(t *testing.T) {
		t.Parallel()
		d, _ := newDir(t, srv)
		keepAlive(t, d, "n1", time.Minute)
		keepAlive(t, d, "n2", time.Minute)
		for i := range 1200 { // more than one purge batch
			mustAdd(t, d, rec(fmt.Sprintf("c%04d", i), "n1"))
		}
		mustAdd(t, d, rec("other", "n2"))
		if err := d.Leave(ctx(t), "n1"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		if got := listAll(t, d, 50); !slices.Equal(got, []string{"other"}) {
			t.Errorf("listing after Leave = %d records %.3q, want [other]", len(got), got)
		}
		nodes, _ := d.Nodes(ctx(t))
		if len(nodes) != 1 || nodes[0].ID != "n2" {
			t.Errorf("Nodes after Leave = %+v, want n2 only", nodes)
		}
	})

	t.Run("PrefixIsolation", func(t *testing.T) {
		t.Parallel()
		d1, _ := newDir(t, srv)
		d2, _ := newDir(t, srv)
		keepAlive(t, d1, "n1", time.Minute)
		keepAlive(t, d2, "n1", time.Minute)
		mustAdd(t, d1, rec("c1", "n1"))
		if _, err := d2.Lookup(ctx(t), "c1"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("another prefix sees c1: %v", err)
		}
		if n, _ := d2.Count(ctx(t)); n != 0 {
			t.Errorf("another prefix counts %d", n)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		d, _ := newDir(t, srv)
		if err := d.Add(ctx(t), registry.Record{ConnID: "c"}); err == nil {
			t.Error("Add without a node: no error")
		}
		if err := d.KeepAlive(ctx(t), registry.Node{ID: "n"}, 0); err == nil {
			t.Error("KeepAlive with ttl 0: no error")
		}
	})
}

func TestJanitor(t *testing.T) {
	srv := testutil.StartRedis(t)
	d, rdb, prefix := newDirPrefix(t, srv)
	keepAlive(t, d, "gone", 100*time.Millisecond)
	mustAdd(t, d, rec("c1", "gone"))
	c, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.Janitor(c, 50*time.Millisecond, func(err error) { t.Error(err) }) }()
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, err := rdb.Keys(ctx(t), prefix+"*conn*").Result()
		return err == nil && len(n) == 0
	}, "janitor did not remove the lapsed node's records")
	cancel()
	<-done
}

// TestAuth runs against servers that require a password and an ACL user,
// connecting through URLs as the cluster flag gives them.
func TestAuth(t *testing.T) {
	t.Parallel()
	pass := testutil.StartRedis(t, "--requirepass", "s3cret")
	acl := testutil.StartRedis(t, "--user", "gw", "on", ">gwpass", "~*", "&*", "+@all", "--user", "default", "off")
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"password", "redis://:s3cret@" + pass.Addr, true},
		{"wrong password", "redis://:nope@" + pass.Addr, false},
		{"no password", "redis://" + pass.Addr, false},
		{"acl user", "redis://gw:gwpass@" + acl.Addr, true},
		{"acl wrong user", "redis://other:gwpass@" + acl.Addr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := redisurl.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			opts.MaxRetries = -1
			rdb := redis.NewClient(opts)
			defer rdb.Close()
			d := redisreg.New(rdb, redisreg.Options{})
			err = d.KeepAlive(ctx(t), registry.Node{ID: "n1"}, time.Minute)
			if err == nil {
				err = d.Add(ctx(t), rec("c1", "n1"))
			}
			if tc.ok && err != nil {
				t.Errorf("through %s: %v", tc.name, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("through %s: accepted, want refused", tc.name)
			}
		})
	}
}

// TestSweepSparesReturningNode: a node whose lease lapsed and that renews
// it before the sweep keeps its records.
func TestSweepSparesReturningNode(t *testing.T) {
	srv := testutil.StartRedis(t)
	d, _ := newDir(t, srv)
	keepAlive(t, d, "n1", 100*time.Millisecond)
	mustAdd(t, d, rec("c1", "n1"))
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, err := d.Lookup(ctx(t), "c1")
		return errors.Is(err, registry.ErrNotFound)
	}, "c1 still found after the lease lapsed")
	keepAlive(t, d, "n1", time.Minute) // back, e.g. after a partition
	if n, err := d.Sweep(ctx(t)); err != nil || n != 0 {
		t.Errorf("Sweep = %d, %v; want nothing removed", n, err)
	}
	if _, err := d.Lookup(ctx(t), "c1"); err != nil {
		t.Errorf("Lookup(c1) after its node came back: %v", err)
	}
	if c, err := d.Count(ctx(t)); err != nil || c != 1 {
		t.Errorf("Count = %d, %v; want 1", c, err)
	}
}
