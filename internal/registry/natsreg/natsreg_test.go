package natsreg_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/bus/natsbus"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/natsreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// engines are testutil.NATSEngines: a nats-server process and the
// embedded server.
var engines = testutil.NATSEngines

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, url string, opts natsreg.Options) *natsreg.Directory {
	t.Helper()
	nc, err := natsbus.Connect(url, natsbus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := natsreg.New(ctx10(t), js, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// bucket opens a KV bucket directly, below the directory.
func bucket(t *testing.T, url, name string) jetstream.KeyValue {
	t.Helper()
	nc, err := natsbus.Connect(url, natsbus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx10(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func rec(id, node string) registry.Record {
	return registry.Record{ConnID: id, Node: node, ConnectedAt: time.Unix(1700000000, 0).UTC(), SourceIP: "10.0.0.1", UserAgent: "ua", Principal: "p"}
}

func listAll(t *testing.T, d *natsreg.Directory, limit int) ([]string, int) {
	t.Helper()
	var ids []string
	cursor, pages := "", 0
	for {
		p, err := d.List(ctx10(t), cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if p.Next != "" && len(p.Records) != limit {
			t.Errorf("page %d has %d records and a next cursor, want full pages", pages, len(p.Records))
		}
		for _, r := range p.Records {
			ids = append(ids, r.ConnID)
		}
		if p.Next == "" {
			return ids, pages
		}
		cursor = p.Next
	}
}

func TestDirectory(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := open(t, start(t), natsreg.Options{})
			ctx := ctx10(t)
			if err := d.KeepAlive(ctx, registry.Node{ID: "n1", Name: "host"}, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			// IDs with characters no KV key may hold.
			odd := []string{"a+b/c=", "x.y", "*", ">", "ü"}
			for _, id := range odd {
				if err := d.Add(ctx, rec(id, "n1")); err != nil {
					t.Fatalf("Add(%q) = %v", id, err)
				}
				got, err := d.Lookup(ctx, id)
				if err != nil || got != rec(id, "n1") {
					t.Errorf("Lookup(%q) = %+v, %v", id, got, err)
				}
			}
			for i := range 23 {
				if err := d.Add(ctx, rec(fmt.Sprintf("c%02d", i), "n1")); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := d.Count(ctx); err != nil || n != 28 {
				t.Errorf("Count = %d, %v, want 28", n, err)
			}
			ids, pages := listAll(t, d, 10)
			if len(ids) != 28 || pages != 3 {
				t.Errorf("listed %d in %d pages, want 28 in 3", len(ids), pages)
			}
			for i := 1; i < len(ids); i++ {
				if ids[i-1] >= ids[i] {
					t.Errorf("listing not sorted at %d: %q, %q", i, ids[i-1], ids[i])
				}
			}
			// Replacing keeps one record.
			r := rec("c00", "n1")
			r.UserAgent = "other"
			if err := d.Add(ctx, r); err != nil {
				t.Fatal(err)
			}
			if got, _ := d.Lookup(ctx, "c00"); got.UserAgent != "other" {
				t.Errorf("after replace UserAgent = %q", got.UserAgent)
			}
			if err := d.Remove(ctx, "c00"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Lookup(ctx, "c00"); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("Lookup removed = %v, want ErrNotFound", err)
			}
			if err := d.Remove(ctx, "never"); err != nil {
				t.Errorf("Remove unknown = %v", err)
			}
			if n, _ := d.Count(ctx); n != 27 {
				t.Errorf("Count after remove = %d, want 27", n)
			}
			// A cursor between IDs (a removed one) still pages on.
			p, err := d.List(ctx, "c00", 2)
			if err != nil || len(p.Records) != 2 || p.Records[0].ConnID != "c01" || p.Next != "c02" {
				t.Errorf("List(c00, 2) = %+v, %v", p, err)
			}
			for _, bad := range []registry.Record{{Node: "n1"}, {ConnID: "x"}} {
				if err := d.Add(ctx, bad); err == nil {
					t.Errorf("Add(%+v) = nil, want an error", bad)
				}
			}
			if _, err := d.List(ctx, "", 0); err == nil {
				t.Error("List limit 0 = nil error")
			}
		})
	}
}

// TestLeases: a node that stops renewing loses its connections to every
// reader, and the janitor deletes them; a node that leaves loses them at
// once; a record whose node never held a lease is not served.
func TestLeases(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			d := open(t, url, natsreg.Options{SweepInterval: -1, MaxTTL: 30 * time.Second})
			other := open(t, url, natsreg.Options{SweepInterval: 50 * time.Millisecond, MaxTTL: 30 * time.Second})
			ctx := ctx10(t)
			started := time.Unix(1700000000, 0).UTC()
			for _, n := range []string{"live", "dying", "leaving"} {
				if err := d.KeepAlive(ctx, registry.Node{ID: n, Name: n + "-host", StartedAt: started}, 30*time.Second); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					if err := d.Add(ctx, rec(fmt.Sprintf("%s-%d", n, i), n)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := d.Add(ctx, rec("orphan", "nobody")); err != nil {
				t.Fatal(err)
			}
			nodes, err := other.Nodes(ctx)
			if err != nil || len(nodes) != 3 || nodes[0].ID != "dying" || nodes[2].Name != "live-host" || !nodes[0].StartedAt.Equal(started) || nodes[0].LastSeen.IsZero() {
				t.Fatalf("Nodes = %+v, %v", nodes, err)
			}
			if _, err := other.Lookup(ctx, "orphan"); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("Lookup of a record without lease = %v, want ErrNotFound", err)
			}

			if err := d.Leave(ctx, "leaving"); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Lookup(ctx, "leaving-0"); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("Lookup after Leave = %v, want ErrNotFound", err)
			}
			if n, _ := other.Count(ctx); n != 6 {
				t.Errorf("Count after Leave = %d, want 6", n)
			}

			// "dying" renews once more with a short lease and then stops.
			if err := d.KeepAlive(ctx, registry.Node{ID: "dying"}, 200*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, func() bool {
				_, err := other.Lookup(ctx, "dying-1")
				return errors.Is(err, registry.ErrNotFound)
			}, "a lapsed node's connection still found")
			ids, _ := listAll(t, other, 2)
			if fmt.Sprint(ids) != "[live-0 live-1 live-2]" {
				t.Errorf("listing = %v, want only live's", ids)
			}
			// other's janitor deletes what the lapsed node left: read the
			// bucket itself, since every reader hides lapsed records.
			kv := bucket(t, url, "switchboard_conns")
			testutil.Eventually(t, 5*time.Second, func() bool {
				for _, id := range []string{"dying-0", "dying-1", "dying-2", "orphan"} {
					if _, err := kv.Get(ctx, "x"+base64.RawURLEncoding.EncodeToString([]byte(id))); !errors.Is(err, jetstream.ErrKeyNotFound) {
						return false
					}
				}
				return true
			}, "janitor did not delete a lapsed node's records")
			if _, err := kv.Get(ctx, "x"+base64.RawURLEncoding.EncodeToString([]byte("live-0"))); err != nil {
				t.Errorf("janitor deleted a live node's record: %v", err)
			}
			if n, err := d.Sweep(ctx); err != nil || n != 0 {
				t.Errorf("Sweep after janitor = %d, %v; want 0", n, err)
			}
			// From here on only d sweeps: other's janitor would otherwise
			// race it for the record below.
			if err := other.Close(); err != nil {
				t.Fatal(err)
			}
			// A record of a node without a lease, added after the last
			// sweep, is removed by the next one and counted.
			if err := d.Add(ctx, rec("late", "gone-node")); err != nil {
				t.Fatal(err)
			}
			if n, err := d.Sweep(ctx); err != nil || n != 1 {
				t.Errorf("Sweep of one lapsed record = %d, %v; want 1", n, err)
			}
			if got, err := d.Lookup(ctx, "live-2"); err != nil || got.Node != "live" {
				t.Errorf("live node's record = %+v, %v", got, err)
			}

			if err := d.KeepAlive(ctx, registry.Node{ID: "x"}, time.Hour); err == nil {
				t.Error("KeepAlive above MaxTTL = nil error")
			}
		})
	}
}
