package registrytest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// runIndex checks registry.Users and registry.Presence, which every engine
// implements; RunDirectory runs it.
func runIndex(t *testing.T, newRegistry func(t *testing.T) registry.Directory) {
	indexes := func(t *testing.T) (registry.Directory, registry.Users, registry.Presence) {
		t.Helper()
		d := newRegistry(t)
		u, ok := d.(registry.Users)
		if !ok {
			t.Fatalf("%T does not implement registry.Users", d)
		}
		p, ok := d.(registry.Presence)
		if !ok {
			t.Fatalf("%T does not implement registry.Presence", d)
		}
		return d, u, p
	}

	t.Run("UserConnsAcrossNodes", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		d, u, _ := indexes(t)
		for i, user := range []string{"alice", "bob", "alice", "", "alice|x.y"} {
			rec := record(fmt.Sprintf("c%d", i))
			rec.Node, rec.User = fmt.Sprintf("node-%d", i%3), user
			mustAdd(ctx, t, d, rec)
		}
		got := mustUserConns(ctx, t, u, "alice")
		if ids := connIDs(got); !slices.Equal(ids, []string{"c0", "c2"}) {
			t.Fatalf("UserConns(alice) = %q, want c0 and c2", ids)
		}
		if got[0].Node != "node-0" || got[1].Node != "node-2" || got[0].User != "alice" {
			t.Errorf("UserConns(alice) = %+v, want c0 on node-0 and c2 on node-2, with their user", got)
		}
		if ids := connIDs(mustUserConns(ctx, t, u, "alice|x.y")); !slices.Equal(ids, []string{"c4"}) {
			t.Errorf("UserConns(alice|x.y) = %q, want c4", ids)
		}
		if got := mustUserConns(ctx, t, u, "nobody"); len(got) != 0 {
			t.Errorf("UserConns(nobody) = %+v, want none", got)
		}
		if users := mustUsers(ctx, t, u); !slices.Equal(users, []string{"alice", "alice|x.y", "bob"}) {
			t.Errorf("Users() = %q, want alice, alice|x.y, bob", users)
		}
	})

	t.Run("UserIndexFollowsRemoveAndReplace", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		d, u, _ := indexes(t)
		for _, id := range []string{"c1", "c2"} {
			rec := record(id)
			rec.User = "alice"
			mustAdd(ctx, t, d, rec)
		}
		if err := d.Remove(ctx, "c1"); err != nil {
			t.Fatalf("Remove(c1): %v", err)
		}
		moved := record("c2")
		moved.User = "bob"
		mustAdd(ctx, t, d, moved)
		if got := mustUserConns(ctx, t, u, "alice"); len(got) != 0 {
			t.Errorf("UserConns(alice) after one record removed and the other given to bob = %q, want none", connIDs(got))
		}
		if ids := connIDs(mustUserConns(ctx, t, u, "bob")); !slices.Equal(ids, []string{"c2"}) {
			t.Errorf("UserConns(bob) = %q, want c2", ids)
		}
		if users := mustUsers(ctx, t, u); !slices.Equal(users, []string{"bob"}) {
			t.Errorf("Users() = %q, want bob alone", users)
		}
	})

	t.Run("PresenceJoinPart", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		_, _, p := indexes(t)
		join := []struct {
			topic string
			m     registry.Member
		}{
			{"room.1", registry.Member{ConnID: "c2", User: "bob", Node: "node-1"}},
			{"room.1", registry.Member{ConnID: "c1", User: "alice", Node: "node-0"}},
			{"room.1", registry.Member{ConnID: "c3", Node: "node-2"}},
			{"room.1", registry.Member{ConnID: "c3", Node: "node-2"}}, // twice is once
			{"room 2/é", registry.Member{ConnID: "c1", User: "alice", Node: "node-0"}},
		}
		for _, j := range join {
			if err := p.Join(ctx, j.topic, j.m); err != nil {
				t.Fatalf("Join(%q, %+v): %v", j.topic, j.m, err)
			}
		}
		want := []registry.Member{join[1].m, join[0].m, join[2].m}
		if got := mustMembers(ctx, t, p, "room.1"); !slices.Equal(got, want) {
			t.Fatalf("Members(room.1) = %+v, want %+v", got, want)
		}
		if err := p.Part(ctx, "room.1", "c2"); err != nil {
			t.Fatalf("Part: %v", err)
		}
		if err := p.Part(ctx, "room.1", "never"); err != nil {
			t.Errorf("Part of an unknown member = %v, want nil", err)
		}
		if got := mustMembers(ctx, t, p, "room.1"); !slices.Equal(got, []registry.Member{join[1].m, join[2].m}) {
			t.Errorf("Members(room.1) after c2 parted = %+v", got)
		}
		if got := mustMembers(ctx, t, p, "room 2/é"); !slices.Equal(got, []registry.Member{join[4].m}) {
			t.Errorf("Members(room 2/é) = %+v, want c1 alone", got)
		}
		if got := mustMembers(ctx, t, p, "room"); len(got) != 0 {
			t.Errorf("Members(room) = %+v, want none: topics are not prefixes", got)
		}
	})
}

// checkIndexOnly checks that only node's users and members are left of
// the ones checkLeased's caller added: those of users "u-<node>" and topic
// "t".
func checkIndexOnly(ctx context.Context, t *testing.T, d Leased, gone, live string) {
	t.Helper()
	u, ok1 := d.(registry.Users)
	p, ok2 := d.(registry.Presence)
	if !ok1 || !ok2 {
		t.Fatalf("%T does not implement registry.Users and registry.Presence", d)
	}
	if got := mustUserConns(ctx, t, u, "u-"+gone); len(got) != 0 {
		t.Errorf("UserConns(u-%s) = %q, want none: its node is gone", gone, connIDs(got))
	}
	if got := mustUserConns(ctx, t, u, "u-"+live); len(got) == 0 {
		t.Errorf("UserConns(u-%s) = none, want its connections", live)
	}
	if users := mustUsers(ctx, t, u); !slices.Equal(users, []string{"u-" + live}) {
		t.Errorf("Users() = %q, want u-%s alone", users, live)
	}
	for _, m := range mustMembers(ctx, t, p, "t") {
		if m.Node != live {
			t.Errorf("Members(t) lists %+v of a node that is gone", m)
		}
	}
	if len(mustMembers(ctx, t, p, "t")) == 0 {
		t.Errorf("Members(t) = none, want those of %s", live)
	}
}

// joinAll gives each of ids the user "u-<node>" and joins it to topic "t".
func joinAll(ctx context.Context, t *testing.T, d Leased, node string, ids []string) {
	t.Helper()
	p, ok := d.(registry.Presence)
	if !ok {
		t.Fatalf("%T does not implement registry.Presence", d)
	}
	for _, id := range ids {
		rec := record(id)
		rec.Node, rec.User = node, "u-"+node
		mustAdd(ctx, t, d, rec)
		if err := p.Join(ctx, "t", registry.Member{ConnID: id, User: rec.User, Node: node}); err != nil {
			t.Fatalf("Join(t, %s): %v", id, err)
		}
	}
}

func connIDs(recs []registry.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ConnID
	}
	return ids
}

func mustUserConns(ctx context.Context, t *testing.T, u registry.Users, user string) []registry.Record {
	t.Helper()
	recs, err := u.UserConns(ctx, user)
	if err != nil {
		t.Fatalf("UserConns(%q): %v", user, err)
	}
	return recs
}

func mustUsers(ctx context.Context, t *testing.T, u registry.Users) []string {
	t.Helper()
	users, err := u.Users(ctx)
	if err != nil {
		t.Fatalf("Users(): %v", err)
	}
	return users
}

func mustMembers(ctx context.Context, t *testing.T, p registry.Presence, topic string) []registry.Member {
	t.Helper()
	ms, err := p.Members(ctx, topic)
	if err != nil {
		t.Fatalf("Members(%q): %v", topic, err)
	}
	return ms
}
