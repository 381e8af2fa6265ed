// Package memreg is the embedded, in-process registry.Registry used by a
// single gateway node.
package memreg

import (
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

var _ registry.Registry = (*Registry)(nil)

// Registry keeps records and subscriptions in maps under one RWMutex. The zero
// value is not usable; call New.
type Registry struct {
	mu     sync.RWMutex
	conns  map[string]*entry
	topics map[string]map[string]struct{} // topic -> conn IDs
}

type entry struct {
	rec    registry.Record
	topics map[string]struct{}
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{conns: make(map[string]*entry), topics: make(map[string]map[string]struct{})}
}

// Add implements registry.Registry.
func (r *Registry) Add(_ context.Context, rec registry.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(rec.ConnID)
	r.conns[rec.ConnID] = &entry{rec: rec}
	return nil
}

// Remove implements registry.Registry.
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
	for t := range e.topics {
		r.dropSubscriber(t, connID)
	}
	delete(r.conns, connID)
}

func (r *Registry) dropSubscriber(topic, connID string) {
	subs := r.topics[topic]
	delete(subs, connID)
	if len(subs) == 0 {
		delete(r.topics, topic)
	}
}

// Lookup implements registry.Registry.
func (r *Registry) Lookup(_ context.Context, connID string) (registry.Record, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.conns[connID]
	if !ok {
		return registry.Record{}, registry.ErrNotFound
	}
	return e.rec, nil
}

// List implements registry.Registry. Records are ordered by connection ID;
// the cursor is the last ID of the previous page. Listing sorts every ID, which
// is fine for an admin call on one node.
func (r *Registry) List(_ context.Context, cursor string, limit int) (registry.Page, error) {
	r.mu.RLock()
	ids := make([]string, 0, len(r.conns))
	for id := range r.conns {
		if id > cursor {
			ids = append(ids, id)
		}
	}
	r.mu.RUnlock()
	sort.Strings(ids)
	var p registry.Page
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
		p.Next = ids[limit-1]
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, id := range ids {
		if e, ok := r.conns[id]; ok {
			p.Records = append(p.Records, e.rec)
		}
	}
	return p, nil
}

// Count implements registry.Registry.
func (r *Registry) Count(context.Context) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns), nil
}

// Subscribe implements registry.Registry.
func (r *Registry) Subscribe(_ context.Context, connID, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.conns[connID]
	if !ok {
		return registry.ErrNotFound
	}
	if e.topics == nil {
		e.topics = make(map[string]struct{})
	}
	e.topics[topic] = struct{}{}
	subs := r.topics[topic]
	if subs == nil {
		subs = make(map[string]struct{})
		r.topics[topic] = subs
	}
	subs[connID] = struct{}{}
	return nil
}

// Unsubscribe implements registry.Registry.
func (r *Registry) Unsubscribe(_ context.Context, connID, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.conns[connID]; ok {
		delete(e.topics, topic)
	}
	r.dropSubscriber(topic, connID)
	return nil
}

// Subscribers implements registry.Registry.
func (r *Registry) Subscribers(_ context.Context, topic string) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	subs := r.topics[topic]
	ids := make([]string, 0, len(subs))
	for id := range subs {
		ids = append(ids, id)
	}
	return ids, nil
}

// Topics implements registry.Registry.
func (r *Registry) Topics(_ context.Context, connID string) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.conns[connID]
	if !ok {
		return nil, registry.ErrNotFound
	}
	topics := make([]string, 0, len(e.topics))
	for t := range e.topics {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	return topics, nil
}
