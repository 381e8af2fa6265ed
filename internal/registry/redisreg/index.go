package redisreg

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

var (
	_ registry.Users    = (*Directory)(nil)
	_ registry.Presence = (*Directory)(nil)
)

// wireMember is a membership as stored in members:<topic>.
type wireMember struct {
	ConnID string `json:"id"`
	User   string `json:"user,omitempty"`
	Node   string `json:"node"`
}

// joinScript stores a membership, moving it out of a previous holder's set.
// KEYS: members:<topic>, nodemembers:<node>. ARGV: json, id, node, prefix, [topic, id].
var joinScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old then
  local o = cjson.decode(old)
  if o.node ~= ARGV[3] then redis.call('SREM', ARGV[4] .. 'nodemembers:' .. o.node, ARGV[5]) end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[5])
return 1
`)

// partScript deletes a membership and its holder's entry of it.
// KEYS: members:<topic>. ARGV: id, prefix, [topic, id].
var partScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('SREM', ARGV[2] .. 'nodemembers:' .. cjson.decode(old).node, ARGV[3])
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
`)

// purgeMembersScript removes up to ARGV[3] memberships of a node, as
// purgeScript does its records, and returns how many it took, or -1 when
// the node holds a lease again.
// KEYS: nodemembers:<node>, lease:<node>. ARGV: node, prefix, count.
var purgeMembersScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local ms = redis.call('SPOP', KEYS[1], tonumber(ARGV[3]))
for _, m in ipairs(ms) do
  local tm = cjson.decode(m)
  local k = ARGV[2] .. 'members:' .. tm[1]
  local v = redis.call('HGET', k, tm[2])
  if v and cjson.decode(v).node == ARGV[1] then redis.call('HDEL', k, tm[2]) end
end
return #ms
`)

// membership is a node's entry of a membership in nodemembers:<node>.
func membership(topic, connID string) string {
	b, _ := json.Marshal([2]string{topic, connID}) // strings always encode
	return string(b)
}

// Join implements registry.Presence: one round trip.
func (d *Directory) Join(ctx context.Context, topic string, m registry.Member) error {
	if m.ConnID == "" || m.Node == "" {
		return fmt.Errorf("redisreg: join %q: member needs a connection ID and a node (got %q, %q)", topic, m.ConnID, m.Node)
	}
	b, err := json.Marshal(wireMember(m))
	if err != nil {
		return fmt.Errorf("redisreg: join %q: %w", topic, err)
	}
	keys := []string{d.key("members:", topic), d.key("nodemembers:", m.Node)}
	if err := joinScript.Run(ctx, d.rdb, keys, b, m.ConnID, m.Node, d.opts.Prefix, membership(topic, m.ConnID)).Err(); err != nil {
		return fmt.Errorf("redisreg: join %q: %w", topic, err)
	}
	return nil
}

// Part implements registry.Presence: one round trip.
func (d *Directory) Part(ctx context.Context, topic, connID string) error {
	keys := []string{d.key("members:", topic)}
	if err := partScript.Run(ctx, d.rdb, keys, connID, d.opts.Prefix, membership(topic, connID)).Err(); err != nil {
		return fmt.Errorf("redisreg: part %q: %w", topic, err)
	}
	return nil
}

// Members implements registry.Presence: one HGETALL of the topic and one
// EXISTS per distinct node, O(members).
func (d *Directory) Members(ctx context.Context, topic string) ([]registry.Member, error) {
	all, err := d.rdb.HGetAll(ctx, d.key("members:", topic)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisreg: members %q: %w", topic, err)
	}
	recs := make([]registry.Record, 0, len(all))
	ms := make([]registry.Member, 0, len(all))
	for id, v := range all {
		var w wireMember
		if err := json.Unmarshal([]byte(v), &w); err != nil {
			return nil, fmt.Errorf("redisreg: member %s of %q is corrupt: %w", id, topic, err)
		}
		ms = append(ms, registry.Member(w))
		recs = append(recs, registry.Record{Node: w.Node})
	}
	live := map[string]bool{}
	if err := d.checkLive(ctx, recs, live); err != nil {
		return nil, err
	}
	ms = slices.DeleteFunc(ms, func(m registry.Member) bool { return !live[m.Node] })
	slices.SortFunc(ms, func(a, b registry.Member) int { return strings.Compare(a.ConnID, b.ConnID) })
	return ms, nil
}

// purgeMembers removes node's memberships batch by batch, stopping as
// soon as the node holds a lease again.
func (d *Directory) purgeMembers(ctx context.Context, node string) error {
	keys := []string{d.key("nodemembers:", node), d.key("lease:", node)}
	for {
		n, err := purgeMembersScript.Run(ctx, d.rdb, keys, node, d.opts.Prefix, d.opts.SweepBatch).Int()
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
	}
}

// UserConns implements registry.Users: one SMEMBERS, one MGET and one
// EXISTS per distinct node, O(the user's connections).
func (d *Directory) UserConns(ctx context.Context, user string) ([]registry.Record, error) {
	ids, err := d.rdb.SMembers(ctx, d.key("user:", user)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisreg: user %q: %w", user, err)
	}
	recs, err := d.liveRecords(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("redisreg: user %q: %w", user, err)
	}
	recs = slices.DeleteFunc(recs, func(r registry.Record) bool { return r.User != user })
	slices.SortFunc(recs, func(a, b registry.Record) int { return strings.Compare(a.ConnID, b.ConnID) })
	return recs, nil
}

// Users implements registry.Users. It reads the records of every user's
// connections (O(connections with a user)) to skip the users whose
// connections are all on nodes whose lease lapsed.
func (d *Directory) Users(ctx context.Context) ([]string, error) {
	users, err := d.rdb.SMembers(ctx, d.key("users")).Result()
	if err != nil {
		return nil, fmt.Errorf("redisreg: users: %w", err)
	}
	pipe := d.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.SMembers(ctx, d.key("user:", u))
	}
	if len(users) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("redisreg: users: %w", err)
		}
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	recs, err := d.liveRecords(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("redisreg: users: %w", err)
	}
	online := make(map[string]struct{}, len(users))
	for _, r := range recs {
		if r.User != "" {
			online[r.User] = struct{}{}
		}
	}
	out := make([]string, 0, len(online))
	for u := range online {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}

// liveRecords reads the records of ids, 500 at a time, and returns those
// whose holder has a live lease.
func (d *Directory) liveRecords(ctx context.Context, ids []string) ([]registry.Record, error) {
	var recs []registry.Record
	live := map[string]bool{}
	for chunk := range slices.Chunk(ids, 500) {
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = d.key("conn:", id)
		}
		vals, err := d.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		var batch []registry.Record
		for i, v := range vals {
			s, ok := v.(string)
			if !ok { // removed since the index was read
				continue
			}
			rec, err := decode(chunk[i], s)
			if err != nil {
				return nil, err
			}
			batch = append(batch, rec)
		}
		if err := d.checkLive(ctx, batch, live); err != nil {
			return nil, err
		}
		for _, r := range batch {
			if live[r.Node] {
				recs = append(recs, r)
			}
		}
	}
	return recs, nil
}
