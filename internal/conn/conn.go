// Package conn is the contract every side of a delivery shares, on one node
// or across a cluster: the errors a holder of a connection answers with, and
// the state only the holder knows. It does no I/O, so the gateway, the
// management API and every bus and directory backend can import it.
package conn

import (
	"errors"
	"time"
)

// Errors that cross package and node boundaries. A bus carries them over
// the wire by name, so a caller on another node can match them with
// errors.Is exactly as a caller on the holder's node does.
var (
	// ErrGone is returned for a connection that does not exist, is closing,
	// or whose holder is gone (410 GoneException).
	ErrGone = errors.New("conn: connection gone")
	// ErrSlowConsumer is returned when a send overflowed the connection's
	// queue; the holder is then closing it with 1008 (429 LimitExceededException).
	ErrSlowConsumer = errors.New("conn: connection too slow, closed")
)

// State is what only the node holding a connection knows of it.
type State struct {
	LastActiveAt time.Time
	// Topics the connection is subscribed to, sorted; at most the holder's
	// listing cap, with Truncated set when there were more.
	Topics    []string
	Truncated bool
}
