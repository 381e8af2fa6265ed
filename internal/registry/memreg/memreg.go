// Package memreg is the embedded, in-process registry.Directory of a single
// gateway node, or of several nodes in one process, with leases.
package memreg

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

var (
	_ registry.Directory = (*Registry)(nil)
	_ registry.Leaser    = (*Registry)(nil)
	_ registry.Users     = (*Registry)(nil)
	_ registry.Presence  = (*Registry)(nil)
)

// Registry keeps records and leases in maps under one RWMutex. The zero
// value is not usable; call New.
//
// Records of a node that never took a lease are always live (a single node
// needs none); those of a node whose lease lapsed are skipped, and removed
// on the next KeepAlive or Nodes.
type Registry struct {
	mu     sync.RWMutex
	conns  map[string]*entry
	leases map[string]lease // node ID -> its lease
	now    func() time.Time

	users   map[string]map[string]struct{}        // user -> its connection IDs
	members map[string]map[string]registry.Member // topic -> connection ID -> member
}

type lease struct {
	node    registry.Node
	expires time.Time
}

type entry struct {
	rec registry.Record
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{
		conns:  make(map[string]*entry),
		leases: make(map[string]lease),
		now:    time.Now,

		users:   make(map[string]map[string]struct{}),
		members: make(map[string]map[string]registry.Member),
	}
}

// liveLocked reports whether rec's holder is alive: no lease taken, or a
// current one.
// NeverWaits reports that every call returns at once: the directory is in
// memory (see registry.NeverWaits).
func (r *Registry) NeverWaits() bool { return true }

func (r *Registry) liveLocked(rec *registry.Record, now time.Time) bool {
	l, ok := r.leases[rec.Node]
	return !ok || now.Before(l.expires)
}

// KeepAlive implements registry.Leaser.
func (r *Registry) KeepAlive(_ context.Context, node registry.Node, ttl time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.expireLocked(now)
	node.LastSeen = now
	r.leases[node.ID] = lease{node: node, expires: now.Add(ttl)}
	return nil
}

// Nodes implements registry.Leaser.
func (r *Registry) Nodes(context.Context) ([]registry.Node, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(r.now())
	nodes := make([]registry.Node, 0, len(r.leases))
	for _, l := range r.leases {
		nodes = append(nodes, l.node)
	}
	slices.SortFunc(nodes, func(a, b registry.Node) int { return strings.Compare(a.ID, b.ID) })
	return nodes, nil
}

// Leave implements registry.Leaser.
func (r *Registry) Leave(_ context.Context, node string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropNodeLocked(node)
	return nil
}

// expireLocked drops the lapsed leases and their records.
func (r *Registry) expireLocked(now time.Time) {
	for id, l := range r.leases {
		if !now.Before(l.expires) {
			r.dropNodeLocked(id)
		}
	}
}

func (r *Registry) dropNodeLocked(node string) {
	delete(r.leases, node)
	for id, e := range r.conns {
		if e.rec.Node == node {
			r.removeLocked(id)
		}
	}
	for topic, ms := range r.members {
		for id, m := range ms {
			if m.Node == node {
				delete(ms, id)
			}
		}
		if len(ms) == 0 {
			delete(r.members, topic)
		}
	}
}

// Add implements registry.Directory.
func (r *Registry) Add(_ context.Context, rec registry.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(rec.ConnID)
	r.conns[rec.ConnID] = &entry{rec: rec}
	if rec.User != "" {
		ids := r.users[rec.User]
		if ids == nil {
			ids = make(map[string]struct{})
			r.users[rec.User] = ids
		}
		ids[rec.ConnID] = struct{}{}
	}
	return nil
}

// Remove implements registry.Directory.
func (r *Registry) Remove(_ context.Context, connID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(connID)
	return nil
}

func (r *Registry) removeLocked(connID string) {
	e, ok := r.conns[connID]
	if !ok {
		return
	}
	delete(r.conns, connID)
	if u := e.rec.User; u != "" {
		delete(r.users[u], connID)
		if len(r.users[u]) == 0 {
			delete(r.users, u)
		}
	}
}

// Lookup implements registry.Directory.
func (r *Registry) Lookup(_ context.Context, connID string) (registry.Record, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.conns[connID]
	if !ok || !r.liveLocked(&e.rec, r.now()) {
		return registry.Record{}, registry.ErrNotFound
	}
	return e.rec, nil
}

// List implements registry.Directory. Records are ordered by connection ID;
// the cursor is the last ID of the previous page. Listing sorts every ID, which
// is fine for an admin call on one node.
func (r *Registry) List(_ context.Context, cursor string, limit int) (registry.Page, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.now()
	ids := make([]string, 0, len(r.conns))
	for id, e := range r.conns {
		if id > cursor && r.liveLocked(&e.rec, now) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var p registry.Page
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
		p.Next = ids[limit-1]
	}
	p.Records = make([]registry.Record, 0, len(ids))
	for _, id := range ids {
		p.Records = append(p.Records, r.conns[id].rec)
	}
	return p, nil
}

// Count implements registry.Directory.
func (r *Registry) Count(context.Context) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.leases) == 0 {
		return len(r.conns), nil
	}
	now := r.now()
	n := 0
	for _, e := range r.conns {
		if r.liveLocked(&e.rec, now) {
			n++
		}
	}
	return n, nil
}
