// Package membus is the in-process bus.Bus: the nodes of one Engine are
// buses in the same process, and calls between them are function calls.
// A node alone needs no bus at all (the gateway's hub takes nil); several
// nodes on one Engine run a cluster in one process, for tests and for
// programs that embed several gateways.
//
// Handlers receive the publisher's bytes, not a copy: they must not modify
// them, as with every bus.
package membus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/conn"
)

// ErrClosed is returned by calls on a Bus after Close.
var ErrClosed = errors.New("membus: bus closed")

var _ bus.Bus = (*Bus)(nil)

// Engine connects the buses created from it. The zero value is ready to use.
type Engine struct {
	mu    sync.RWMutex
	nodes map[string]*Bus // joined buses by node name
}

// NewBus returns a bus of e; it joins e when Run is called.
func (e *Engine) NewBus() *Bus {
	return &Bus{engine: e, topics: make(map[string]struct{})}
}

// New returns a bus alone on its own engine.
func New() *Bus {
	return new(Engine).NewBus()
}

func (e *Engine) node(name string) *Bus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.nodes[name]
}

// others returns the joined buses other than self for which keep is true.
func (e *Engine) others(self *Bus, keep func(*Bus) bool) []*Bus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []*Bus
	for _, b := range e.nodes {
		if b != self && keep(b) {
			out = append(out, b)
		}
	}
	return out
}

// Bus is one node's side of an Engine. Create it with Engine.NewBus or New.
type Bus struct {
	engine *Engine

	mu      sync.Mutex
	name    string
	h       bus.Handler
	topics  map[string]struct{}
	closed  bool
	running sync.WaitGroup // handler calls in progress
}

// Run implements bus.Bus. Joining under a name another bus of the engine
// holds is an error.
func (b *Bus) Run(ctx context.Context, node string, h bus.Handler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if node == "" || h == nil {
		return errors.New("membus: Run needs a node name and a handler")
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.h != nil {
		b.mu.Unlock()
		return fmt.Errorf("membus: already running as %q", b.name)
	}
	b.mu.Unlock()

	e := b.engine
	e.mu.Lock()
	if _, taken := e.nodes[node]; taken {
		e.mu.Unlock()
		return fmt.Errorf("membus: node %q already joined", node)
	}
	if e.nodes == nil {
		e.nodes = make(map[string]*Bus)
	}
	e.nodes[node] = b
	e.mu.Unlock()

	// Joined: only now does the bus take the handler, so that a refused
	// Run leaves nothing behind; a Close meanwhile undoes the join.
	b.mu.Lock()
	closed := b.closed
	if !closed {
		b.name, b.h = node, h
	}
	b.mu.Unlock()
	if closed {
		e.mu.Lock()
		delete(e.nodes, node)
		e.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// enter reserves a handler call; false once b is closed.
func (b *Bus) enter() (bus.Handler, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.h == nil {
		return nil, false
	}
	b.running.Add(1)
	return b.h, true
}

// call runs f on node's handler and returns its answer, or gives up when
// ctx ends.
func (b *Bus) call(ctx context.Context, node string, f func(bus.Handler) error) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	target := b.engine.node(node)
	if target == nil {
		return conn.ErrGone
	}
	h, ok := target.enter()
	if !ok {
		return conn.ErrGone
	}
	done := make(chan error, 1)
	go func() {
		defer target.running.Done()
		done <- f(h)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: node %s: %w", bus.ErrUnavailable, node, ctx.Err())
	}
}

func (b *Bus) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", bus.ErrUnavailable, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: %w", bus.ErrUnavailable, ErrClosed)
	}
	return nil
}

// Send implements bus.Bus.
func (b *Bus) Send(ctx context.Context, node, connID string, data []byte) error {
	return b.call(ctx, node, func(h bus.Handler) error { return h.HandleSend(connID, data) })
}

// Disconnect implements bus.Bus.
func (b *Bus) Disconnect(ctx context.Context, node, connID string) error {
	return b.call(ctx, node, func(h bus.Handler) error { return h.HandleDisconnect(connID) })
}

// Describe implements bus.Bus.
func (b *Bus) Describe(ctx context.Context, node, connID string) (conn.State, error) {
	var st conn.State
	err := b.call(ctx, node, func(h bus.Handler) error {
		var err error
		st, err = h.HandleDescribe(connID)
		return err
	})
	if err != nil {
		return conn.State{}, err
	}
	return st, nil
}

// Subscribe implements bus.Bus.
func (b *Bus) Subscribe(ctx context.Context, topic string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.topics[topic] = struct{}{}
	return nil
}

// Unsubscribe implements bus.Bus.
func (b *Bus) Unsubscribe(ctx context.Context, topic string) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.topics, topic)
	return nil
}

func (b *Bus) wants(topic string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.topics[topic]
	return ok
}

// Publish implements bus.Bus. Handlers are called in the caller's
// goroutine, which is why they must not block.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	for _, o := range b.engine.others(b, func(o *Bus) bool { return o.wants(topic) }) {
		if h, ok := o.enter(); ok {
			h.HandlePublish(topic, data)
			o.running.Done()
		}
	}
	return nil
}

// Broadcast implements bus.Bus.
func (b *Bus) Broadcast(ctx context.Context, data []byte) error {
	if err := b.usable(ctx); err != nil {
		return err
	}
	for _, o := range b.engine.others(b, func(*Bus) bool { return true }) {
		if h, ok := o.enter(); ok {
			h.HandleBroadcast(data)
			o.running.Done()
		}
	}
	return nil
}

// Close implements bus.Bus: it leaves the engine and waits for the handler
// calls in progress. Closing twice is not an error.
func (b *Bus) Close() error {
	b.mu.Lock()
	was := b.closed
	b.closed = true
	name := b.name
	b.mu.Unlock()
	if !was && name != "" {
		e := b.engine
		e.mu.Lock()
		if e.nodes[name] == b {
			delete(e.nodes, name)
		}
		e.mu.Unlock()
	}
	b.running.Wait()
	return nil
}
