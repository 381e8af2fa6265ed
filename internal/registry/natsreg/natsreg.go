// Package natsreg is a registry.Directory and registry.Leaser over
// JetStream key-value buckets, so every gateway node of a cluster sees
// which node holds which connection.
//
// Three buckets, named after Options.Bucket (default "switchboard"):
//
//	<bucket>_conns  key: the connection ID (encoded); value: the JSON record, with its Node
//	<bucket>_nodes  key: the node ID (encoded); value: the JSON lease
//	<bucket>_index  key: u.<user>.<connection ID> (encoded tokens); value: the JSON record
//	                key: t.<topic>.<connection ID>; value: the JSON member (registry.Presence)
//
// The index entries live under their node's lease as the records do.
// UserConns and Members read one user's or topic's entries (a watch
// filtered on their prefix); Users reads every user entry.
//
// A lease is live while its key was put less than the ttl given to
// KeepAlive ago (by the server's clock of the put, read by the reader's
// clock, so node clocks must agree to well within ttl). Per-key TTLs are not
// used, since nats-server before 2.11 lacks them: the nodes bucket's MaxAge
// (Options.MaxTTL) purges keys no one renewed, and KeepAlive refuses a ttl
// above it. A node renews every ttl/3 or so. Lookup, List and Count skip the
// records of nodes without a live lease; Sweep (run by every node's
// janitor, see Options.SweepInterval) deletes them; Leave deletes a node's
// lease and records at once.
//
// Cost: Lookup is two reads (record and lease). List and Count read every
// record of the cluster once per call (one watch of the bucket) and sort
// them by ID, so a page costs O(records) on the wire and in memory; the
// cursor is the last ID returned, so paging is stable while records come
// and go. This suits listings of tens of thousands of connections; beyond
// that, a listing should be answered from each node's local index.
package natsreg

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsjs"
	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// Options configure a Directory. The zero value works.
type Options struct {
	// Bucket names the two KV buckets (<Bucket>_conns, <Bucket>_nodes),
	// so that clusters can share an engine. Default "switchboard".
	// Letters, digits, '-' and '_' only.
	Bucket string
	// Replicas is how many servers of a NATS cluster hold each bucket.
	// Default 1: the directory lives on one server and is lost with it.
	// 3 survives losing one server of three. Must not exceed the servers
	// in the cluster.
	Replicas int
	// MaxTTL is the longest lease KeepAlive accepts, and the nodes
	// bucket's MaxAge, after which the server purges an unrenewed lease.
	// Default 1 minute.
	MaxTTL time.Duration
	// SweepInterval is how often the janitor deletes the records of
	// nodes whose lease lapsed. Default 10s; negative: no janitor
	// (call Sweep yourself).
	SweepInterval time.Duration
	// Timeout bounds the janitor's sweeps and the setup in New when its
	// context has no deadline. Default 5s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Bucket == "" {
		o.Bucket = "switchboard"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = time.Minute
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return o
}

// Directory is the JetStream KV directory. Close stops its janitor.
type Directory struct {
	opts  Options
	conns jetstream.KeyValue
	nodes jetstream.KeyValue
	index jetstream.KeyValue

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

var (
	_ registry.Directory = (*Directory)(nil)
	_ registry.Leaser    = (*Directory)(nil)
)

// lease is a node's value in the nodes bucket.
type lease struct {
	Name      string        `json:"name"`
	StartedAt time.Time     `json:"startedAt"`
	TTL       time.Duration `json:"ttl"`
}

// New creates or updates the buckets and starts the janitor.
func New(ctx context.Context, js jetstream.JetStream, opts Options) (*Directory, error) {
	o := opts.withDefaults()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	conns, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.Bucket + "_conns",
		Description: "switchboard: connection ID -> holding node",
		History:     1,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsreg: bucket %s_conns: %w", o.Bucket, err)
	}
	nodes, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.Bucket + "_nodes",
		Description: "switchboard: node leases",
		History:     1,
		Replicas:    o.Replicas,
		TTL:         o.MaxTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("natsreg: bucket %s_nodes: %w", o.Bucket, err)
	}
	index, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.Bucket + "_index",
		Description: "switchboard: users' connections and topics' members",
		History:     1,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsreg: bucket %s_index: %w", o.Bucket, err)
	}
	d := &Directory{opts: o, conns: conns, nodes: nodes, index: index, stop: make(chan struct{})}
	if o.SweepInterval > 0 {
		d.wg.Add(1)
		go d.janitor()
	}
	return d, nil
}

// Close stops the janitor and waits for it. The buckets stay.
func (d *Directory) Close() error {
	d.once.Do(func() { close(d.stop) })
	d.wg.Wait()
	return nil
}

func (d *Directory) janitor() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
			_, _ = d.Sweep(ctx) // the next tick tries again
			cancel()
		}
	}
}

// key encodes an arbitrary ID into a valid KV key.
func key(id string) string { return "x" + base64.RawURLEncoding.EncodeToString([]byte(id)) }

// Add stores rec, replacing a record with the same ID.
func (d *Directory) Add(ctx context.Context, rec registry.Record) error {
	if rec.ConnID == "" || rec.Node == "" {
		return errors.New("natsreg: add: record needs a ConnID and a Node")
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("natsreg: add %s: %w", rec.ConnID, err)
	}
	// Create, not Put: a new ID, the common case, has no previous user to
	// take out of the index, and costs one round trip.
	_, err = d.conns.Create(ctx, key(rec.ConnID), v)
	if errors.Is(err, jetstream.ErrKeyExists) {
		err = d.replace(ctx, rec, v)
	}
	if err != nil {
		return fmt.Errorf("natsreg: add %s: %w", rec.ConnID, err)
	}
	if rec.User != "" {
		if _, err := d.index.Put(ctx, userKey(rec.User, rec.ConnID), v); err != nil {
			return fmt.Errorf("natsreg: add %s: index user: %w", rec.ConnID, err)
		}
	}
	return nil
}

// replace puts rec (encoded as v) over an existing record, taking the ID
// out of its previous user's index.
func (d *Directory) replace(ctx context.Context, rec registry.Record, v []byte) error {
	if old, err := d.get(ctx, rec.ConnID); err == nil && old.User != "" && old.User != rec.User {
		if err := d.index.Delete(ctx, userKey(old.User, rec.ConnID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
	}
	_, err := d.conns.Put(ctx, key(rec.ConnID), v)
	return err
}

// Remove deletes the record, and its user's index entry; an unknown ID is
// not an error.
func (d *Directory) Remove(ctx context.Context, connID string) error {
	old, err := d.get(ctx, connID)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("natsreg: remove %s: %w", connID, err)
	}
	if err := d.conns.Delete(ctx, key(connID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsreg: remove %s: %w", connID, err)
	}
	if old.User != "" {
		if err := d.index.Delete(ctx, userKey(old.User, connID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("natsreg: remove %s: unindex user: %w", connID, err)
		}
	}
	return nil
}

// get returns the record of connID whatever its holder's lease, or
// registry.ErrNotFound.
func (d *Directory) get(ctx context.Context, connID string) (registry.Record, error) {
	e, err := d.conns.Get(ctx, key(connID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return registry.Record{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Record{}, err
	}
	var rec registry.Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return registry.Record{}, fmt.Errorf("bad record: %w", err)
	}
	return rec, nil
}

// Lookup returns the record, or registry.ErrNotFound, also when its
// node's lease lapsed.
func (d *Directory) Lookup(ctx context.Context, connID string) (registry.Record, error) {
	e, err := d.conns.Get(ctx, key(connID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return registry.Record{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Record{}, fmt.Errorf("natsreg: lookup %s: %w", connID, err)
	}
	var rec registry.Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return registry.Record{}, fmt.Errorf("natsreg: lookup %s: bad record: %w", connID, err)
	}
	le, err := d.nodes.Get(ctx, key(rec.Node))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return registry.Record{}, registry.ErrNotFound
	}
	if err != nil {
		return registry.Record{}, fmt.Errorf("natsreg: lookup %s: lease of %s: %w", connID, rec.Node, err)
	}
	if _, ok := liveLease(le, rec.Node, time.Now()); !ok {
		return registry.Record{}, registry.ErrNotFound
	}
	return rec, nil
}

// liveLease decodes a lease entry and says whether it is current at now.
func liveLease(e jetstream.KeyValueEntry, id string, now time.Time) (registry.Node, bool) {
	var l lease
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return registry.Node{}, false
	}
	n := registry.Node{ID: id, Name: l.Name, StartedAt: l.StartedAt, LastSeen: e.Created()}
	return n, now.Before(e.Created().Add(l.TTL))
}

// all reads every current entry of kv with one watch.
func all(ctx context.Context, kv jetstream.KeyValue) ([]jetstream.KeyValueEntry, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, err
	}
	return drain(ctx, w)
}

// drain reads the current entries w delivers, in the order they were
// written, and stops w. w must deliver deletes: drain needs them to know
// when it has read everything. (The client filters deletes on its side
// anyway: they cross the wire either way.)
//
// The watcher's end-of-initial-values marker is not enough on its own:
// it also comes once as many entries arrived as were pending when the
// watch began, and an entry written during the watch (a lease renewed
// every TTL/3, a record replaced, one added) counts as well, so the
// marker can come before every current entry did. A listing then lacked
// a node's records, or a whole node, on a loaded machine often enough to
// see. So after the marker drain reads on until an entry after which the
// stream had nothing more (Delta 0), unless the watch began on an empty
// bucket, and keeps the last entry of each key.
func drain(ctx context.Context, w jetstream.KeyWatcher) ([]jetstream.KeyValueEntry, error) {
	defer func() { _ = w.Stop() }()
	latest := map[string]jetstream.KeyValueEntry{}
	received, marked, caughtUp := 0, false, false
	for !marked || (received > 0 && !caughtUp) {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch ended early")
			}
			if e == nil {
				marked = true
				continue
			}
			received++
			caughtUp = e.Delta() == 0
			if e.Operation() == jetstream.KeyValuePut {
				latest[e.Key()] = e
			} else {
				delete(latest, e.Key())
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := slices.Collect(maps.Values(latest))
	slices.SortFunc(out, func(a, b jetstream.KeyValueEntry) int { return cmp.Compare(a.Revision(), b.Revision()) })
	return out, nil
}

// records returns the records of live nodes, sorted by ID. It reads the
// records before the leases, so a node that renewed before its record was
// read is live.
func (d *Directory) records(ctx context.Context) ([]registry.Record, error) {
	es, err := all(ctx, d.conns)
	if err != nil {
		return nil, err
	}
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	up := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		up[n.ID] = true
	}
	var live []registry.Record
	for _, e := range es {
		var rec registry.Record
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			continue // not ours to read; never served
		}
		if up[rec.Node] {
			live = append(live, rec)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].ConnID < live[j].ConnID })
	return live, nil
}

// List returns up to limit live records with IDs after cursor, by ID.
func (d *Directory) List(ctx context.Context, cursor string, limit int) (registry.Page, error) {
	if limit <= 0 {
		return registry.Page{}, fmt.Errorf("natsreg: list: limit %d, want at least 1", limit)
	}
	live, err := d.records(ctx)
	if err != nil {
		return registry.Page{}, fmt.Errorf("natsreg: list: %w", err)
	}
	i := sort.Search(len(live), func(i int) bool { return live[i].ConnID > cursor })
	live = live[i:]
	var p registry.Page
	if len(live) > limit {
		live = live[:limit]
		p.Next = live[limit-1].ConnID
	}
	p.Records = live
	return p, nil
}

// Count returns the number of records of live nodes.
func (d *Directory) Count(ctx context.Context) (int, error) {
	live, err := d.records(ctx)
	if err != nil {
		return 0, fmt.Errorf("natsreg: count: %w", err)
	}
	return len(live), nil
}

// KeepAlive creates or renews node's lease for ttl, at most Options.MaxTTL.
func (d *Directory) KeepAlive(ctx context.Context, node registry.Node, ttl time.Duration) error {
	if node.ID == "" {
		return errors.New("natsreg: keepalive: node needs an ID")
	}
	if ttl <= 0 || ttl > d.opts.MaxTTL {
		return fmt.Errorf("natsreg: keepalive %s: ttl %v outside (0, %v] (Options.MaxTTL)", node.ID, ttl, d.opts.MaxTTL)
	}
	v, err := json.Marshal(lease{Name: node.Name, StartedAt: node.StartedAt, TTL: ttl})
	if err != nil {
		return fmt.Errorf("natsreg: keepalive %s: %w", node.ID, err)
	}
	if _, err := d.nodes.Put(ctx, key(node.ID), v); err != nil {
		return fmt.Errorf("natsreg: keepalive %s: %w", node.ID, err)
	}
	return nil
}

// Nodes lists the nodes whose lease is current, sorted by ID.
func (d *Directory) Nodes(ctx context.Context) ([]registry.Node, error) {
	es, err := all(ctx, d.nodes)
	if err != nil {
		return nil, fmt.Errorf("natsreg: nodes: %w", err)
	}
	now := time.Now()
	var out []registry.Node
	for _, e := range es {
		raw, err := base64.RawURLEncoding.DecodeString(e.Key()[1:])
		if err != nil {
			continue
		}
		if n, ok := liveLease(e, string(raw), now); ok {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Leave ends node's lease and deletes its records at once, each only at
// the revision it read, as Sweep does.
func (d *Directory) Leave(ctx context.Context, node string) error {
	if err := d.nodes.Delete(ctx, key(node)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsreg: leave %s: %w", node, err)
	}
	es, err := all(ctx, d.conns)
	if err != nil {
		return fmt.Errorf("natsreg: leave %s: %w", node, err)
	}
	for _, e := range es {
		var rec registry.Record
		if json.Unmarshal(e.Value(), &rec) != nil || rec.Node != node {
			continue
		}
		// Only the revision read: a record another node wrote for the same
		// ID since (a connection that moved) is not this node's to delete.
		if err := d.conns.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision())); err != nil && !natsjs.WrongLast(err) {
			return fmt.Errorf("natsreg: leave %s: %w", node, err)
		}
	}
	if _, err := d.sweepIndex(ctx, func(n string) bool { return n != node }); err != nil {
		return fmt.Errorf("natsreg: leave %s: %w", node, err)
	}
	return nil
}

// Sweep deletes the records of nodes without a live lease and returns how
// many it deleted. Every node's janitor runs it; concurrent sweeps are
// harmless. It reads the records before the leases, so a node that renewed
// before its record was read keeps it, and deletes only the revision it
// read, so a record added again meanwhile stays.
func (d *Directory) Sweep(ctx context.Context) (int, error) {
	es, err := all(ctx, d.conns)
	if err != nil {
		return 0, fmt.Errorf("natsreg: sweep: %w", err)
	}
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return 0, fmt.Errorf("natsreg: sweep: %w", err)
	}
	up := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		up[n.ID] = true
	}
	n := 0
	for _, e := range es {
		var rec registry.Record
		if json.Unmarshal(e.Value(), &rec) != nil || up[rec.Node] {
			continue
		}
		err := d.conns.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
		switch {
		case err == nil:
			n++
		case natsjs.WrongLast(err): // written again since read: not ours to delete
		default:
			return n, fmt.Errorf("natsreg: sweep: %w", err)
		}
	}
	m, err := d.sweepIndex(ctx, func(node string) bool { return up[node] })
	if err != nil {
		return n, fmt.Errorf("natsreg: sweep: %w", err)
	}
	return n + m, nil
}
