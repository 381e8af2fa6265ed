// Package bus defines delivery between the nodes of a cluster: addressed
// calls to the node that holds a connection, and publish/broadcast to the
// nodes that want them. Implementations live in subpackages (membus in one
// process, natsbus, redisbus; a node alone uses none); bustest checks any of
// them.
package bus

import (
	"context"
	"errors"

	"github.com/switchboard-gateway/switchboard/internal/conn"
)

// ErrUnavailable wraps failures to reach the engine or the addressed node
// (not connected, timed out). Errors a holder answered with (conn.ErrGone,
// conn.ErrSlowConsumer) are returned as they are, never wrapped in it.
var ErrUnavailable = errors.New("bus: unavailable")

// Handler is the node's side of the bus: a Bus calls it for what other
// nodes send to this one. Implemented by the gateway. Its methods must not
// block on a client (they queue, as local deliveries do) and are called
// concurrently.
type Handler interface {
	// HandleSend delivers data to a connection this node holds; conn.ErrGone
	// when it does not hold it.
	HandleSend(connID string, data []byte) error
	// HandleDisconnect closes a connection this node holds as
	// DeleteConnection does; conn.ErrGone when it does not hold it.
	HandleDisconnect(connID string) error
	// HandleDescribe reports a held connection's state; conn.ErrGone when
	// this node does not hold it.
	HandleDescribe(connID string) (conn.State, error)
	// HandlePublish delivers data to this node's subscribers of topic.
	HandlePublish(topic string, data []byte)
	// HandleBroadcast delivers data to every connection of this node.
	HandleBroadcast(data []byte)
}

// Bus carries calls between nodes. Every method that can block takes a
// context and returns when it ends. Methods are safe for concurrent use.
type Bus interface {
	// Run joins the bus as node and serves h until Close is called; ctx
	// bounds only the joining. It returns once the node can receive (nil),
	// or the error that kept it from joining. Other methods may be called
	// after Run returns.
	Run(ctx context.Context, node string, h Handler) error

	// Send asks node to deliver data to connID; the holder's answer
	// (nil, conn.ErrGone, conn.ErrSlowConsumer) comes back as the error.
	// A node that does not answer (gone, unreachable) yields conn.ErrGone
	// when the engine knows no one listens for it, else an error wrapping
	// ErrUnavailable.
	Send(ctx context.Context, node, connID string, data []byte) error
	// Disconnect asks node to close connID; answers as Send.
	Disconnect(ctx context.Context, node, connID string) error
	// Describe asks node for connID's state; answers as Send.
	Describe(ctx context.Context, node, connID string) (conn.State, error)

	// Subscribe declares this node's interest in topic (on its first local
	// subscriber); Unsubscribe withdraws it (on its last). Both are
	// idempotent.
	Subscribe(ctx context.Context, topic string) error
	Unsubscribe(ctx context.Context, topic string) error
	// Publish hands data to every other node that declared interest in
	// topic, once each; the caller delivers to its own subscribers itself.
	// Delivery is at most once: a node that is cut off misses it.
	Publish(ctx context.Context, topic string, data []byte) error
	// Broadcast hands data to every other node, once each; the caller
	// delivers to its own connections itself.
	Broadcast(ctx context.Context, data []byte) error

	// Close leaves the bus; it returns once no Handler call is running.
	Close() error
}

// Healther is implemented by buses that can report the engine's state:
// nil while connected and delivering.
type Healther interface {
	Health(ctx context.Context) error
}
