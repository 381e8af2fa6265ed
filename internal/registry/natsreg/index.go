package natsreg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/registry"

	"github.com/switchboard-gateway/switchboard/internal/natsjs"
)

var (
	_ registry.Users    = (*Directory)(nil)
	_ registry.Presence = (*Directory)(nil)
)

// userKey and memberKey are the index keys of a user's connection and of
// a topic's member: each token encoded as key does, so that any user,
// topic or ID is a valid key whose prefix selects exactly its entries.
func userKey(user, connID string) string    { return "u." + key(user) + "." + key(connID) }
func memberKey(topic, connID string) string { return "t." + key(topic) + "." + key(connID) }

// indexEntry is what every index entry's JSON value carries: a record's
// fields of that name, or a member's.
type indexEntry struct {
	ConnID string
	User   string
	Node   string
}

// Join implements registry.Presence: one put.
func (d *Directory) Join(ctx context.Context, topic string, m registry.Member) error {
	if m.ConnID == "" || m.Node == "" {
		return fmt.Errorf("natsreg: join %q: member needs a connection ID and a node (got %q, %q)", topic, m.ConnID, m.Node)
	}
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("natsreg: join %q: %w", topic, err)
	}
	if _, err := d.index.Put(ctx, memberKey(topic, m.ConnID), v); err != nil {
		return fmt.Errorf("natsreg: join %q: %w", topic, err)
	}
	return nil
}

// Part implements registry.Presence: one delete.
func (d *Directory) Part(ctx context.Context, topic, connID string) error {
	if err := d.index.Delete(ctx, memberKey(topic, connID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsreg: part %q: %w", topic, err)
	}
	return nil
}

// Members implements registry.Presence: a watch of the topic's entries
// and one of the leases.
func (d *Directory) Members(ctx context.Context, topic string) ([]registry.Member, error) {
	es, err := d.liveEntries(ctx, "t."+key(topic)+".*")
	if err != nil {
		return nil, fmt.Errorf("natsreg: members %q: %w", topic, err)
	}
	ms := make([]registry.Member, len(es))
	for i, e := range es {
		ms[i] = registry.Member(e)
	}
	slices.SortFunc(ms, func(a, b registry.Member) int { return strings.Compare(a.ConnID, b.ConnID) })
	return ms, nil
}

// UserConns implements registry.Users: a watch of the user's entries and
// one of the leases.
func (d *Directory) UserConns(ctx context.Context, user string) ([]registry.Record, error) {
	w, err := d.index.Watch(ctx, "u."+key(user)+".*")
	if err != nil {
		return nil, fmt.Errorf("natsreg: user %q: %w", user, err)
	}
	es, err := drain(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("natsreg: user %q: %w", user, err)
	}
	up, err := d.up(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsreg: user %q: %w", user, err)
	}
	var recs []registry.Record
	for _, e := range es {
		var rec registry.Record
		if json.Unmarshal(e.Value(), &rec) == nil && up[rec.Node] && rec.User == user {
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b registry.Record) int { return strings.Compare(a.ConnID, b.ConnID) })
	return recs, nil
}

// Users implements registry.Users: it reads every user entry of the
// cluster (O(connections with a user)).
func (d *Directory) Users(ctx context.Context) ([]string, error) {
	es, err := d.liveEntries(ctx, "u.>")
	if err != nil {
		return nil, fmt.Errorf("natsreg: users: %w", err)
	}
	seen := make(map[string]struct{})
	var users []string
	for _, e := range es {
		if _, ok := seen[e.User]; !ok && e.User != "" {
			seen[e.User] = struct{}{}
			users = append(users, e.User)
		}
	}
	slices.Sort(users)
	return users, nil
}

// liveEntries returns the decoded index entries matching filter whose
// node holds a live lease.
func (d *Directory) liveEntries(ctx context.Context, filter string) ([]indexEntry, error) {
	w, err := d.index.Watch(ctx, filter)
	if err != nil {
		return nil, err
	}
	es, err := drain(ctx, w)
	if err != nil {
		return nil, err
	}
	up, err := d.up(ctx)
	if err != nil {
		return nil, err
	}
	var out []indexEntry
	for _, e := range es {
		var ie indexEntry
		if json.Unmarshal(e.Value(), &ie) == nil && up[ie.Node] {
			out = append(out, ie)
		}
	}
	return out, nil
}

// up returns the IDs of the nodes whose lease is live.
func (d *Directory) up(ctx context.Context) (map[string]bool, error) {
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	up := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		up[n.ID] = true
	}
	return up, nil
}

// sweepIndex deletes the index entries of the nodes keep refuses, each
// only at the revision it read, and returns how many it deleted.
func (d *Directory) sweepIndex(ctx context.Context, keep func(node string) bool) (int, error) {
	es, err := all(ctx, d.index)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		var ie indexEntry
		if json.Unmarshal(e.Value(), &ie) != nil || keep(ie.Node) {
			continue
		}
		err := d.index.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
		switch {
		case err == nil:
			n++
		case natsjs.WrongLast(err):
		default:
			return n, err
		}
	}
	return n, nil
}
