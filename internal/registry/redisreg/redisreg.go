// Package redisreg is the cluster directory over one Redis server: which
// node holds which connection, with node leases so that a dead node's
// connections vanish. It implements registry.Directory and registry.Leaser.
//
// Keys, under Options.Prefix (default "switchboard:"):
//
//	conn:<id>         string, the record as JSON (no TTL: the holder's lease governs it)
//	conns             sorted set of every connection ID, all scores 0 (ordered by ID)
//	nodeconns:<node>  set of the IDs a node holds
//	lease:<node>      string, the node as JSON, with a PX TTL renewed by KeepAlive
//	nodes             set of node IDs that ever took a lease and were not swept
//	user:<user>       set of the IDs of a user's connections (Record.User)
//	users             set of the users with a connection
//	members:<topic>   hash, connection ID -> the member as JSON (registry.Presence)
//	nodemembers:<node> set of a node's memberships, each the JSON array [topic, id]
//
// Lookup, List and Count skip records of nodes without a live lease; Sweep
// (run periodically by Janitor) removes them, and Leave removes a node's
// records at once. Writes that touch several keys run as Lua scripts, so a
// record, the listing index and the node's set never disagree.
//
// Costs: Add, Remove and Lookup are one round trip each. List is
// ZRANGEBYLEX from the cursor (O(log N + page)) plus one MGET of the page
// and one EXISTS per distinct node on it; records of lapsed nodes are read
// and skipped, so a page can take several such rounds until the janitor has
// swept them. Count is one SCARD per live node.
package redisreg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// Options configures a Directory. The zero value is ready to use.
type Options struct {
	// Prefix starts every key, so several clusters can share one server.
	// Empty means "switchboard:".
	Prefix string
	// SweepBatch is how many of a lapsed node's records one script removes
	// at a time (Sweep, Leave). Zero means 500.
	SweepBatch int
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard:"
	}
	if o.SweepBatch == 0 {
		o.SweepBatch = 500
	}
	return o
}

// Directory is a registry.Directory and registry.Leaser over Redis. It does
// not own the client: the caller closes it. Safe for concurrent use.
type Directory struct {
	rdb  *redis.Client
	opts Options
}

var (
	_ registry.Directory = (*Directory)(nil)
	_ registry.Leaser    = (*Directory)(nil)
)

// New returns a Directory over rdb, one standalone server (Redis Cluster
// and Sentinel are refused, see redisurl).
func New(rdb *redis.Client, opts Options) *Directory {
	return &Directory{rdb: rdb, opts: opts.withDefaults()}
}

// wire is a record as stored.
type wire struct {
	ConnID      string    `json:"id"`
	Node        string    `json:"node"`
	ConnectedAt time.Time `json:"at"`
	SourceIP    string    `json:"ip,omitempty"`
	UserAgent   string    `json:"ua,omitempty"`
	Principal   string    `json:"sub,omitempty"`
	User        string    `json:"user,omitempty"`
}

type wireNode struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	StartedAt time.Time `json:"started"`
	LastSeen  time.Time `json:"seen"`
}

func (d *Directory) key(parts ...string) string {
	k := d.opts.Prefix
	for _, p := range parts {
		k += p
	}
	return k
}

// unindexUser is the Lua that takes the ID id out of the index of user
// (a string or nil), and user out of the users set when it has no ID left.
const unindexUser = `
local function unindexUser(prefix, user, id)
  if type(user) ~= 'string' or user == '' then return end
  local uk = prefix .. 'user:' .. user
  redis.call('SREM', uk, id)
  if redis.call('SCARD', uk) == 0 then redis.call('SREM', prefix .. 'users', user) end
end
`

// addScript stores a record, moving the ID out of its previous holder's set
// and its previous user's.
// KEYS: conn:<id>, conns, nodeconns:<node>, nodes. ARGV: json, id, node, prefix, user.
var addScript = redis.NewScript(unindexUser + `
local old = redis.call('GET', KEYS[1])
if old then
  local o = cjson.decode(old)
  if o.node ~= ARGV[3] then redis.call('SREM', ARGV[4] .. 'nodeconns:' .. o.node, ARGV[2]) end
  if o.user ~= ARGV[5] then unindexUser(ARGV[4], o.user, ARGV[2]) end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('SADD', ARGV[4] .. 'user:' .. ARGV[5], ARGV[2])
  redis.call('SADD', ARGV[4] .. 'users', ARGV[5])
end
return 1
`)

// removeScript deletes a record and its index entries.
// KEYS: conn:<id>, conns. ARGV: id, prefix.
var removeScript = redis.NewScript(unindexUser + `
local old = redis.call('GET', KEYS[1])
if old then
  local o = cjson.decode(old)
  redis.call('SREM', ARGV[2] .. 'nodeconns:' .. o.node, ARGV[1])
  unindexUser(ARGV[2], o.user, ARGV[1])
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// lookupScript returns the record when its holder's lease is live.
// KEYS: conn:<id>. ARGV: prefix.
var lookupScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
local o = cjson.decode(v)
if redis.call('EXISTS', ARGV[1] .. 'lease:' .. o.node) == 0 then return false end
return v
`)

// purgeScript removes up to ARGV[3] records of a node (those whose record
// still names it) and returns how many IDs it took from the node's set, or
// -1 without touching anything when the node holds a lease again (it came
// back, e.g. after a partition, and its records are live).
// KEYS: nodeconns:<node>, conns, lease:<node>. ARGV: node, prefix, count.
var purgeScript = redis.NewScript(unindexUser + `
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local k = ARGV[2] .. 'conn:' .. id
  local v = redis.call('GET', k)
  if v then
    local o = cjson.decode(v)
    if o.node == ARGV[1] then
      redis.call('DEL', k)
      redis.call('ZREM', KEYS[2], id)
      unindexUser(ARGV[2], o.user, id)
    end
  end
end
return #ids
`)

// forgetScript drops a node from the nodes set unless it has a lease.
// KEYS: lease:<node>, nodes. ARGV: node.
var forgetScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
`)

// Add stores rec, replacing a record with the same ID. The holder must
// hold a lease (KeepAlive) before its records are visible, and should take
// it before its first Add, or Sweep may remove what it added.
func (d *Directory) Add(ctx context.Context, rec registry.Record) error {
	if rec.ConnID == "" || rec.Node == "" {
		return fmt.Errorf("redisreg: add: record needs a connection ID and a node (got %q, %q)", rec.ConnID, rec.Node)
	}
	b, err := json.Marshal(wire(rec))
	if err != nil {
		return fmt.Errorf("redisreg: add %s: %w", rec.ConnID, err)
	}
	keys := []string{d.key("conn:", rec.ConnID), d.key("conns"), d.key("nodeconns:", rec.Node), d.key("nodes")}
	if err := addScript.Run(ctx, d.rdb, keys, b, rec.ConnID, rec.Node, d.opts.Prefix, rec.User).Err(); err != nil {
		return fmt.Errorf("redisreg: add %s: %w", rec.ConnID, err)
	}
	return nil
}

// Remove deletes the record; an unknown ID is not an error.
func (d *Directory) Remove(ctx context.Context, connID string) error {
	keys := []string{d.key("conn:", connID), d.key("conns")}
	if err := removeScript.Run(ctx, d.rdb, keys, connID, d.opts.Prefix).Err(); err != nil {
		return fmt.Errorf("redisreg: remove %s: %w", connID, err)
	}
	return nil
}

// Lookup returns the record, or registry.ErrNotFound when there is none or
// its holder's lease has lapsed.
func (d *Directory) Lookup(ctx context.Context, connID string) (registry.Record, error) {
	v, err := lookupScript.Run(ctx, d.rdb, []string{d.key("conn:", connID)}, d.opts.Prefix).Text()
	if errors.Is(err, redis.Nil) {
		return registry.Record{}, fmt.Errorf("lookup %s: %w", connID, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Record{}, fmt.Errorf("redisreg: lookup %s: %w", connID, err)
	}
	return decode(connID, v)
}

func decode(connID, v string) (registry.Record, error) {
	var w wire
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		return registry.Record{}, fmt.Errorf("redisreg: record %s is corrupt: %w", connID, err)
	}
	return registry.Record(w), nil
}

// List returns up to limit records of live nodes, ordered by ID, starting
// after cursor (the last ID of the previous page). A page is short only
// when it is the last.
func (d *Directory) List(ctx context.Context, cursor string, limit int) (registry.Page, error) {
	if limit <= 0 {
		return registry.Page{}, fmt.Errorf("redisreg: list: limit %d, want > 0", limit)
	}
	min := "-"
	if cursor != "" {
		min = "(" + cursor
	}
	live := map[string]bool{}
	var page registry.Page
	batch := int64(limit + 1)
	for {
		ids, err := d.rdb.ZRangeByLex(ctx, d.key("conns"), &redis.ZRangeBy{Min: min, Max: "+", Count: batch}).Result()
		if err != nil {
			return registry.Page{}, fmt.Errorf("redisreg: list: %w", err)
		}
		if len(ids) == 0 {
			return page, nil
		}
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = d.key("conn:", id)
		}
		vals, err := d.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return registry.Page{}, fmt.Errorf("redisreg: list: %w", err)
		}
		recs := make([]registry.Record, 0, len(ids))
		for i, v := range vals {
			s, ok := v.(string)
			if !ok { // removed since the range was read
				continue
			}
			rec, err := decode(ids[i], s)
			if err != nil {
				return registry.Page{}, err
			}
			recs = append(recs, rec)
		}
		if err := d.checkLive(ctx, recs, live); err != nil {
			return registry.Page{}, err
		}
		for _, rec := range recs {
			if !live[rec.Node] {
				continue
			}
			if len(page.Records) == limit {
				page.Next = page.Records[limit-1].ConnID
				return page, nil
			}
			page.Records = append(page.Records, rec)
		}
		if int64(len(ids)) < batch {
			return page, nil
		}
		min = "(" + ids[len(ids)-1]
	}
}

// checkLive fills live with the lease state of every node of recs not in it yet.
func (d *Directory) checkLive(ctx context.Context, recs []registry.Record, live map[string]bool) error {
	var nodes []string
	for _, r := range recs {
		if _, ok := live[r.Node]; !ok && !slices.Contains(nodes, r.Node) {
			nodes = append(nodes, r.Node)
		}
	}
	if len(nodes) == 0 {
		return nil
	}
	pipe := d.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(nodes))
	for i, n := range nodes {
		cmds[i] = pipe.Exists(ctx, d.key("lease:", n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisreg: check leases: %w", err)
	}
	for i, n := range nodes {
		live[n] = cmds[i].Val() == 1
	}
	return nil
}

// Count returns the number of connections held by nodes with a live lease.
func (d *Directory) Count(ctx context.Context) (int, error) {
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	if len(nodes) == 0 {
		return 0, nil
	}
	pipe := d.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(nodes))
	for i, n := range nodes {
		cmds[i] = pipe.SCard(ctx, d.key("nodeconns:", n.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redisreg: count: %w", err)
	}
	total := 0
	for _, c := range cmds {
		total += int(c.Val())
	}
	return total, nil
}

// KeepAlive creates or renews node's lease for ttl (at millisecond
// precision). Renew well within ttl, e.g. every ttl/3.
func (d *Directory) KeepAlive(ctx context.Context, node registry.Node, ttl time.Duration) error {
	if node.ID == "" {
		return errors.New("redisreg: keepalive: node needs an ID")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("redisreg: keepalive %s: ttl %v, want at least 1ms", node.ID, ttl)
	}
	w := wireNode(node)
	w.LastSeen = time.Now()
	if w.StartedAt.IsZero() {
		w.StartedAt = w.LastSeen
	}
	b, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("redisreg: keepalive %s: %w", node.ID, err)
	}
	pipe := d.rdb.TxPipeline()
	pipe.Set(ctx, d.key("lease:", node.ID), b, ttl)
	pipe.SAdd(ctx, d.key("nodes"), node.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisreg: keepalive %s: %w", node.ID, err)
	}
	return nil
}

// Nodes lists the nodes whose lease is current, sorted by ID.
func (d *Directory) Nodes(ctx context.Context) ([]registry.Node, error) {
	ids, err := d.rdb.SMembers(ctx, d.key("nodes")).Result()
	if err != nil {
		return nil, fmt.Errorf("redisreg: nodes: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = d.key("lease:", id)
	}
	vals, err := d.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redisreg: nodes: %w", err)
	}
	var nodes []registry.Node
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var w wireNode
		if err := json.Unmarshal([]byte(s), &w); err != nil {
			return nil, fmt.Errorf("redisreg: lease of node %s is corrupt: %w", ids[i], err)
		}
		nodes = append(nodes, registry.Node(w))
	}
	return nodes, nil
}

// Leave ends node's lease and removes its records at once.
func (d *Directory) Leave(ctx context.Context, node string) error {
	if err := d.rdb.Del(ctx, d.key("lease:", node)).Err(); err != nil {
		return fmt.Errorf("redisreg: leave %s: %w", node, err)
	}
	if _, err := d.purge(ctx, node); err != nil {
		return fmt.Errorf("redisreg: leave %s: %w", node, err)
	}
	return nil
}

// purge removes node's records batch by batch, stopping as soon as the
// node holds a lease again, then forgets the node unless it does. It
// returns how many IDs it took.
func (d *Directory) purge(ctx context.Context, node string) (int, error) {
	keys := []string{d.key("nodeconns:", node), d.key("conns"), d.key("lease:", node)}
	total := 0
	for {
		n, err := purgeScript.Run(ctx, d.rdb, keys, node, d.opts.Prefix, d.opts.SweepBatch).Int()
		if err != nil {
			return total, err
		}
		if n <= 0 {
			break
		}
		total += n
	}
	if err := d.purgeMembers(ctx, node); err != nil {
		return total, err
	}
	// Forget the node only while it has no lease (it may have come back).
	if err := forgetScript.Run(ctx, d.rdb, []string{d.key("lease:", node), d.key("nodes")}, node).Err(); err != nil {
		return total, err
	}
	return total, nil
}

// Sweep removes the records of every node whose lease has lapsed and
// returns how many it removed. Reads already skip them; Sweep reclaims
// the memory.
func (d *Directory) Sweep(ctx context.Context) (int, error) {
	ids, err := d.rdb.SMembers(ctx, d.key("nodes")).Result()
	if err != nil {
		return 0, fmt.Errorf("redisreg: sweep: %w", err)
	}
	total := 0
	for _, id := range ids {
		live, err := d.rdb.Exists(ctx, d.key("lease:", id)).Result()
		if err != nil {
			return total, fmt.Errorf("redisreg: sweep: %w", err)
		}
		if live == 1 {
			continue
		}
		n, err := d.purge(ctx, id)
		total += n
		if err != nil {
			return total, fmt.Errorf("redisreg: sweep node %s: %w", id, err)
		}
	}
	return total, nil
}

// Janitor runs Sweep every interval until ctx ends, each under a deadline
// of one interval. Errors go to report (nil drops them); the next round
// tries again.
func (d *Directory) Janitor(ctx context.Context, interval time.Duration, report func(error)) {
	if interval <= 0 {
		interval = 15 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(ctx, interval)
		_, err := d.Sweep(sctx)
		cancel()
		if err != nil && report != nil && ctx.Err() == nil {
			report(err)
		}
	}
}
