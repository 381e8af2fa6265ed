// Package registry defines the directory of live connections that every
// gateway node shares (which node holds which connection, with leases so
// that a dead node's connections vanish): the contract, its errors and the
// record type. Implementations live in subpackages (memreg for the embedded
// single-node default, natsreg, redisreg); registrytest checks any of them.
package registry

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when no connection has the given ID.
var ErrNotFound = errors.New("registry: connection not found")

// Record describes one connection. It is written once at connect; what
// changes afterwards (last activity, topics) is asked of the owning node.
type Record struct {
	ConnID      string
	Node        string // the gateway node holding the socket
	ConnectedAt time.Time
	SourceIP    string
	UserAgent   string
	Principal   string // the authorized subject, empty when no authorizer ran
	// User is the user the connection belongs to (see Users): the user ID
	// $connect's integration named, else Principal; empty for none.
	User string
}

// Page is one page of a listing.
type Page struct {
	Records []Record
	// Next is the cursor for the following page; empty on the last page.
	Next string
}

// Directory records which node holds which connection, for the whole
// cluster. Every method may cross the network, so each takes a context and
// can fail; methods are safe for concurrent use. Deliveries to a topic's
// subscribers are not its business: each node indexes its own; the
// directory records them only for presence (see Presence).
type Directory interface {
	// Add stores a new connection record (rec.Node is the holder),
	// replacing one with the same ID.
	Add(ctx context.Context, rec Record) error
	// Remove deletes the record. Removing an unknown ID is not an error.
	Remove(ctx context.Context, connID string) error
	// Lookup returns the record, or ErrNotFound, also when the holder's
	// lease has lapsed.
	Lookup(ctx context.Context, connID string) (Record, error)
	// List returns up to limit records of the whole cluster in a stable
	// order, starting after cursor; records of nodes whose lease lapsed
	// are skipped, and a page is short only when it is the last.
	List(ctx context.Context, cursor string, limit int) (Page, error)
	// Count returns the number of connections of live nodes.
	Count(ctx context.Context) (int, error)
}

// Node is one gateway of a cluster as the directory knows it.
type Node struct {
	// ID is unique per process (random); Name is for people (hostname).
	ID   string
	Name string
	// StartedAt is when the node joined; LastSeen when it last renewed.
	StartedAt time.Time
	LastSeen  time.Time
}

// Leaser is implemented by networked directories, whose nodes can die
// without removing their records: a node renews its lease well within ttl,
// and when the lease lapses the node's records are treated as gone
// (Lookup, List and Count skip them) and removed.
type Leaser interface {
	// KeepAlive creates or renews node's lease for ttl.
	KeepAlive(ctx context.Context, node Node, ttl time.Duration) error
	// Nodes lists the nodes whose lease is current, sorted by ID.
	Nodes(ctx context.Context) ([]Node, error)
	// Leave ends node's lease and removes its records at once (a drain).
	Leave(ctx context.Context, node string) error
}

// NeverWaits reports whether d declares that its calls never wait (an
// in-memory directory), so that callers may skip bounding them.
func NeverWaits(d Directory) bool {
	nw, ok := d.(interface{ NeverWaits() bool })
	return ok && nw.NeverWaits()
}
