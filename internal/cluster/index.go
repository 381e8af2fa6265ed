package cluster

import (
	"context"
	"errors"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// Operation labels of metrics.Cluster.CallFailures for the user index and
// topic presence.
const (
	opUserConns = "directory_user_conns"
	opUsers     = "directory_users"
	opJoin      = "directory_join"
	opPart      = "directory_part"
	opMembers   = "directory_members"
)

var (
	_ registry.Users    = (*countingDirectory)(nil)
	_ registry.Presence = (*countingDirectory)(nil)
)

// errNoIndex is returned by the index methods of an engine's directory
// that has no such index; every engine of this repository has them.
var errNoIndex = errors.New("cluster: the engine's directory has no user or presence index")

// UserConns implements registry.Users.
func (d *countingDirectory) UserConns(ctx context.Context, user string) ([]registry.Record, error) {
	u, ok := d.Directory.(registry.Users)
	if !ok {
		return nil, errNoIndex
	}
	recs, err := u.UserConns(ctx, user)
	return recs, d.count(opUserConns, err)
}

// Users implements registry.Users.
func (d *countingDirectory) Users(ctx context.Context) ([]string, error) {
	u, ok := d.Directory.(registry.Users)
	if !ok {
		return nil, errNoIndex
	}
	users, err := u.Users(ctx)
	return users, d.count(opUsers, err)
}

// Join implements registry.Presence.
func (d *countingDirectory) Join(ctx context.Context, topic string, m registry.Member) error {
	p, ok := d.Directory.(registry.Presence)
	if !ok {
		return errNoIndex
	}
	return d.count(opJoin, p.Join(ctx, topic, m))
}

// Part implements registry.Presence.
func (d *countingDirectory) Part(ctx context.Context, topic, connID string) error {
	p, ok := d.Directory.(registry.Presence)
	if !ok {
		return errNoIndex
	}
	return d.count(opPart, p.Part(ctx, topic, connID))
}

// Members implements registry.Presence.
func (d *countingDirectory) Members(ctx context.Context, topic string) ([]registry.Member, error) {
	p, ok := d.Directory.(registry.Presence)
	if !ok {
		return nil, errNoIndex
	}
	ms, err := p.Members(ctx, topic)
	return ms, d.count(opMembers, err)
}
