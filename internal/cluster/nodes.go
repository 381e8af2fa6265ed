package cluster

import (
	"context"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// Nodes lists the nodes whose lease is current, sorted by ID, as the
// directory has them now (one read, within ctx); a node's ID is its name.
func (c *Cluster) Nodes(ctx context.Context) ([]registry.Node, error) {
	return c.leaser.Nodes(ctx)
}

// Problem returns why the node is cut off from the engine (a renewal or a
// health check that failed), nil while Status's State is StateOK.
func (c *Cluster) Problem() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateOK {
		return nil
	}
	return c.healthErr
}
