package memreg

import (
	"context"
	"slices"
	"strings"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// UserConns implements registry.Users.
func (r *Registry) UserConns(_ context.Context, user string) ([]registry.Record, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.now()
	var recs []registry.Record
	for id := range r.users[user] {
		if e := r.conns[id]; r.liveLocked(&e.rec, now) {
			recs = append(recs, e.rec)
		}
	}
	slices.SortFunc(recs, func(a, b registry.Record) int { return strings.Compare(a.ConnID, b.ConnID) })
	return recs, nil
}

// Users implements registry.Users.
func (r *Registry) Users(context.Context) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.now()
	users := make([]string, 0, len(r.users))
	for u, ids := range r.users {
		for id := range ids {
			if e := r.conns[id]; r.liveLocked(&e.rec, now) {
				users = append(users, u)
				break
			}
		}
	}
	slices.Sort(users)
	return users, nil
}

// Join implements registry.Presence.
func (r *Registry) Join(_ context.Context, topic string, m registry.Member) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ms := r.members[topic]
	if ms == nil {
		ms = make(map[string]registry.Member)
		r.members[topic] = ms
	}
	ms[m.ConnID] = m
	return nil
}

// Part implements registry.Presence.
func (r *Registry) Part(_ context.Context, topic, connID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ms := r.members[topic]; ms != nil {
		delete(ms, connID)
		if len(ms) == 0 {
			delete(r.members, topic)
		}
	}
	return nil
}

// Members implements registry.Presence.
func (r *Registry) Members(_ context.Context, topic string) ([]registry.Member, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.now()
	out := make([]registry.Member, 0, len(r.members[topic]))
	for _, m := range r.members[topic] {
		if r.liveLocked(&registry.Record{Node: m.Node}, now) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b registry.Member) int { return strings.Compare(a.ConnID, b.ConnID) })
	return out, nil
}
