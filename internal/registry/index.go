package registry

import "context"

// Users is implemented by directories that index connections by
// Record.User, so that a user's connections are found on every node. Every
// engine of this repository implements it. Records of nodes whose lease
// lapsed are skipped, as by Lookup; a record replaced by Add or deleted by
// Remove leaves its user's index at once.
type Users interface {
	// UserConns returns the records of user's connections, sorted by
	// connection ID; a user without connections has none, which is not
	// an error.
	UserConns(ctx context.Context, user string) ([]Record, error)
	// Users returns the users with at least one connection, sorted.
	Users(ctx context.Context) ([]string, error)
}

// Member is one connection subscribed to a topic, as Presence records it.
type Member struct {
	ConnID string
	User   string // empty when the connection has no user
	Node   string // the node holding the connection
}

// Presence is implemented by directories that record which connections
// subscribe to which topic, for the whole cluster. Every engine of this
// repository implements it. A membership lives under its node's lease, as
// a record does: Members skips those of nodes whose lease lapsed, and
// Leave and the engines' sweeps remove them. Remove does not end a
// connection's memberships: its holder parts each topic.
type Presence interface {
	// Join records that m.ConnID subscribes to topic, replacing an
	// earlier membership of the same connection and topic.
	Join(ctx context.Context, topic string, m Member) error
	// Part ends connID's membership of topic; an unknown one is not an
	// error.
	Part(ctx context.Context, topic, connID string) error
	// Members returns topic's members, sorted by connection ID.
	Members(ctx context.Context, topic string) ([]Member, error)
}
