package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// ErrNoUserIndex is returned by the user methods of a hub whose directory
// does not index connections by user (registry.Users).
var ErrNoUserIndex = errors.New("gateway: the directory indexes no users")

// checkUser reports why u cannot be a user ID: empty, longer than
// integration.MaxUserBytes, not UTF-8, or with control characters.
func checkUser(u string) error {
	switch {
	case u == "":
		return errors.New("user ID is empty")
	case len(u) > integration.MaxUserBytes:
		return fmt.Errorf("user ID is %d bytes long; at most %d are allowed", len(u), integration.MaxUserBytes)
	case !utf8.ValidString(u):
		return errors.New("user ID is not UTF-8")
	case strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("user ID has control characters")
	}
	return nil
}

// CheckUser reports why u cannot be a user ID, for callers that take one
// from a request.
func CheckUser(u string) error { return checkUser(u) }

// UserConn is one connection of a user.
type UserConn struct {
	ConnID      string
	Node        string // empty on a node alone
	ConnectedAt time.Time
}

// Delivery says what became of a message or a disconnect addressed to
// several connections: IDs neither gone, slow nor failed were reached.
type Delivery struct {
	Delivered int
	Gone      []string // closed since they were listed
	Slow      []string // the queue overflowed; the connection is being closed
	Failed    []string // the node holding it could not be reached
}

// userWorkers is how many calls to other nodes one user-wide send or
// disconnect makes at once.
const userWorkers = 16

// UserConns lists user's connections across the cluster, by connection ID.
func (h *Hub) UserConns(ctx context.Context, user string) ([]UserConn, error) {
	recs, err := h.userRecords(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]UserConn, len(recs))
	for i, r := range recs {
		out[i] = UserConn{ConnID: r.ConnID, ConnectedAt: r.ConnectedAt}
		if h.bus != nil {
			out[i].Node = r.Node
		}
	}
	return out, nil
}

func (h *Hub) userRecords(ctx context.Context, user string) ([]registry.Record, error) {
	if h.users == nil {
		return nil, ErrNoUserIndex
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	recs, err := h.users.UserConns(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("connections of user %q: %w", user, err)
	}
	for _, r := range recs {
		h.learn(r)
	}
	return recs, nil
}

// Users lists the users with a connection on a live node, sorted.
func (h *Hub) Users(ctx context.Context) ([]string, error) {
	if h.users == nil {
		return nil, ErrNoUserIndex
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	users, err := h.users.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return users, nil
}

// SendUser sends data once to each connection of user, wherever it is.
func (h *Hub) SendUser(ctx context.Context, user string, data []byte) (Delivery, error) {
	return h.eachOfUser(ctx, user, func(ctx context.Context, id string) error { return h.Send(ctx, id, data) })
}

// DisconnectUser closes every connection of user normally (1000).
func (h *Hub) DisconnectUser(ctx context.Context, user string) (Delivery, error) {
	return h.eachOfUser(ctx, user, h.Disconnect)
}

// eachOfUser calls do for each connection of user, a few at a time when
// they may wait on other nodes, and sorts the outcomes.
func (h *Hub) eachOfUser(ctx context.Context, user string, do func(ctx context.Context, id string) error) (Delivery, error) {
	recs, err := h.userRecords(ctx, user)
	if err != nil {
		return Delivery{}, err
	}
	errs := make([]error, len(recs))
	if h.bus == nil {
		for i, r := range recs {
			errs[i] = do(ctx, r.ConnID)
		}
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, userWorkers)
		for i, r := range recs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[i] = do(ctx, r.ConnID)
			})
		}
		wg.Wait()
	}
	d := Delivery{Gone: []string{}, Slow: []string{}, Failed: []string{}}
	for i, err := range errs {
		id := recs[i].ConnID
		switch {
		case err == nil:
			d.Delivered++
		case errors.Is(err, conn.ErrGone):
			d.Gone = append(d.Gone, id)
		case errors.Is(err, conn.ErrSlowConsumer):
			d.Slow = append(d.Slow, id)
		default:
			d.Failed = append(d.Failed, id)
		}
	}
	return d, nil
}

// Presence lists the connections subscribed to topic across the cluster,
// by connection ID. A node alone answers from its own index; on a bus,
// the directory's members of nodes with a live lease.
func (h *Hub) Presence(ctx context.Context, topic string) ([]registry.Member, error) {
	if h.presence == nil {
		h.mu.RLock()
		out := make([]registry.Member, 0, len(h.topics[topic]))
		for c := range h.topics[topic] {
			out = append(out, registry.Member{ConnID: c.info.ID, User: c.info.User})
		}
		h.mu.RUnlock()
		slices.SortFunc(out, func(a, b registry.Member) int { return strings.Compare(a.ConnID, b.ConnID) })
		return out, nil
	}
	ctx, cancel := h.bounded(ctx)
	defer cancel()
	ms, err := h.presence.Members(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("presence of %q: %w", topic, err)
	}
	return ms, nil
}

// join records c's membership of topic in the directory, on a bus.
func (h *Hub) join(ctx context.Context, c *client, topic string) error {
	if h.presence == nil {
		return nil
	}
	m := registry.Member{ConnID: c.info.ID, User: c.info.User, Node: h.node}
	// A directory whose replicas elect a leader (an engine's server just
	// died) fails writes for a moment: try again, paced, while ctx lasts.
	// Joining is idempotent, so a write that took effect unanswered is
	// harmless to repeat.
	for wait := joinRetryFirst; ; wait = min(2*wait, joinRetryMax) {
		err := h.presence.Join(ctx, topic, m)
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("record presence: %w", err)
		case <-t.C:
		}
	}
}

// The pacing of join's retries: from joinRetryFirst, doubling up to
// joinRetryMax.
const (
	joinRetryFirst = 50 * time.Millisecond
	joinRetryMax   = time.Second
)

// part ends id's memberships of topics in the directory, on a bus; each
// call has a bound of its own and is made even when ctx ended.
func (h *Hub) part(ctx context.Context, id string, topics ...string) error {
	if h.presence == nil {
		return nil
	}
	var errs []error
	for _, topic := range topics {
		pctx, cancel := h.detached(ctx)
		if err := h.presence.Part(pctx, topic, id); err != nil {
			errs = append(errs, fmt.Errorf("end presence of %s in %q: %w", id, topic, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// PresenceEvent is the message a topic's subscribers receive when a
// connection joins or leaves a topic that HubOptions.Announce names.
type PresenceEvent struct {
	Type         string `json:"type"`  // always "presence"
	Event        string `json:"event"` // "join" or "leave"
	Topic        string `json:"topic"`
	ConnectionID string `json:"connectionId"`
	UserID       string `json:"userId,omitempty"`
}

func (h *Hub) announceJoin(ctx context.Context, c *client, topic string) {
	h.announceEvent(ctx, c, topic, "join")
}

// announceLeave is made even when ctx ended (a disconnect, a drain).
func (h *Hub) announceLeave(ctx context.Context, c *client, topic string) {
	h.announceEvent(context.WithoutCancel(ctx), c, topic, "leave")
}

// announceEvent publishes c's event in topic to its subscribers, on every
// node, when topic is announced. The joiner gets its own join; a leaver is
// no subscriber any more. A publish the bus did not take for the other
// nodes is counted and logged by the bus.
func (h *Hub) announceEvent(ctx context.Context, c *client, topic, event string) {
	if h.announce == nil || c == nil || !h.announce(topic) {
		return
	}
	data, err := json.Marshal(PresenceEvent{Type: "presence", Event: event, Topic: topic, ConnectionID: c.info.ID, UserID: c.info.User})
	if err != nil {
		return // strings always encode
	}
	_, _ = h.Publish(ctx, topic, data)
}
