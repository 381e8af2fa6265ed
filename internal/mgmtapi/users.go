package mgmtapi

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/registry"
)

// Users is what the user and presence routes need from the gateway; a Hub
// that has it gets the routes.
type Users interface {
	UserConns(ctx context.Context, user string) ([]gateway.UserConn, error)
	Users(ctx context.Context) ([]string, error)
	SendUser(ctx context.Context, user string, data []byte) (gateway.Delivery, error)
	DisconnectUser(ctx context.Context, user string) (gateway.Delivery, error)
	Presence(ctx context.Context, topic string) ([]registry.Member, error)
}

// registerUsers adds the user and presence routes under prefix when the
// hub has them.
func (a *API) registerUsers(mux Mux, prefix string) {
	u, ok := a.hub.(Users)
	if !ok {
		return
	}
	mux.Handle("GET "+prefix+"/@users", a.wrap("ListUsers", func(w http.ResponseWriter, r *http.Request) error { return a.listUsers(u, w, r) }))
	mux.Handle("GET "+prefix+"/@users/{user}", a.wrap("GetUser", func(w http.ResponseWriter, r *http.Request) error { return a.getUser(u, w, r) }))
	mux.Handle("POST "+prefix+"/@users/{user}", a.wrap("PostToUser", func(w http.ResponseWriter, r *http.Request) error { return a.postUser(u, w, r) }))
	mux.Handle("DELETE "+prefix+"/@users/{user}", a.wrap("DeleteUser", func(w http.ResponseWriter, r *http.Request) error { return a.deleteUser(u, w, r) }))
	mux.Handle("GET "+prefix+"/@topics/{topic}/presence", a.wrap("GetPresence", func(w http.ResponseWriter, r *http.Request) error { return a.presence(u, w, r) }))
}

// userID reads the path's user ID.
func userID(r *http.Request) (string, error) {
	u := r.PathValue("user")
	if err := gateway.CheckUser(u); err != nil {
		return "", badRequest(err.Error())
	}
	return u, nil
}

func (a *API) usersErr(err error) error {
	if errors.Is(err, gateway.ErrNoUserIndex) {
		return &apiError{Status: http.StatusNotImplemented, Type: "NotImplementedException", Message: "This gateway's directory indexes no users"}
	}
	return err
}

// page reads ?limit=N&cursor=C: limit defaults to 100 and is capped at
// Options.MaxListLimit.
func (a *API) page(r *http.Request) (limit int, cursor string, err error) {
	limit = 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0, "", badRequest("limit must be a positive integer")
		}
		limit = min(n, a.opts.MaxListLimit)
	}
	return limit, r.URL.Query().Get("cursor"), nil
}

// after returns up to limit of the n sorted keys (key(i)) after cursor,
// as the range [from, to), and the cursor of the next page.
func after(n int, key func(i int) string, cursor string, limit int) (from, to int, next string) {
	from = sort.Search(n, func(i int) bool { return key(i) > cursor })
	to = min(n, from+limit)
	if to < n {
		next = key(to - 1)
	}
	return from, to, next
}

type usersResponse struct {
	Count      int      `json:"count"`
	Items      []string `json:"items"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// listUsers is GET /@users?limit=N&cursor=C: the users online, sorted,
// with how many there are.
func (a *API) listUsers(u Users, w http.ResponseWriter, r *http.Request) error {
	limit, cursor, err := a.page(r)
	if err != nil {
		return err
	}
	users, err := u.Users(r.Context())
	if err != nil {
		return a.usersErr(err)
	}
	from, to, next := after(len(users), func(i int) string { return users[i] }, cursor, limit)
	return writeJSON(w, http.StatusOK, usersResponse{Count: len(users), Items: append([]string{}, users[from:to]...), NextCursor: next})
}

type userConnection struct {
	ConnectionID string `json:"connectionId"`
	Node         string `json:"node,omitempty"`
	ConnectedAt  string `json:"connectedAt"`
}

type userResponse struct {
	UserID      string           `json:"userId"`
	Connections []userConnection `json:"connections"`
}

// getUser is GET /@users/{user}: the user's connections; none for a user
// offline.
func (a *API) getUser(u Users, w http.ResponseWriter, r *http.Request) error {
	user, err := userID(r)
	if err != nil {
		return err
	}
	conns, err := u.UserConns(r.Context(), user)
	if err != nil {
		return a.usersErr(err)
	}
	resp := userResponse{UserID: user, Connections: make([]userConnection, len(conns))}
	for i, c := range conns {
		resp.Connections[i] = userConnection{ConnectionID: c.ConnID, Node: c.Node, ConnectedAt: apigw.FormatTime(c.ConnectedAt)}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// userDelivery is the answer of POST and DELETE /@users/{user}.
type userDelivery struct {
	Delivered int      `json:"delivered"`
	Gone      []string `json:"gone"`
	Slow      []string `json:"slow"`
	Failed    []string `json:"failed"`
}

// postUser is POST /@users/{user}: the body, verbatim, once to each of the
// user's connections.
func (a *API) postUser(u Users, w http.ResponseWriter, r *http.Request) error {
	data, err := a.readBody(r)
	if err != nil {
		return err
	}
	user, err := userID(r)
	if err != nil {
		return err
	}
	d, err := u.SendUser(r.Context(), user, data)
	if err != nil {
		return a.usersErr(err)
	}
	return writeJSON(w, http.StatusOK, userDelivery(d))
}

// deleteUser is DELETE /@users/{user}: every connection of the user is
// closed (1000); "delivered" counts those that were.
func (a *API) deleteUser(u Users, w http.ResponseWriter, r *http.Request) error {
	user, err := userID(r)
	if err != nil {
		return err
	}
	d, err := u.DisconnectUser(r.Context(), user)
	if err != nil {
		return a.usersErr(err)
	}
	return writeJSON(w, http.StatusOK, userDelivery(d))
}

type member struct {
	ConnectionID string `json:"connectionId"`
	UserID       string `json:"userId,omitempty"`
	Node         string `json:"node,omitempty"`
}

type presenceResponse struct {
	Topic      string   `json:"topic"`
	Count      int      `json:"count"`
	Items      []member `json:"items"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// presence is GET /@topics/{topic}/presence?limit=N&cursor=C: how many
// connections subscribe to the topic, and a page of them by ID.
func (a *API) presence(u Users, w http.ResponseWriter, r *http.Request) error {
	topic := r.PathValue("topic")
	if strings.TrimSpace(topic) == "" {
		return badRequest("topic is required")
	}
	limit, cursor, err := a.page(r)
	if err != nil {
		return err
	}
	ms, err := u.Presence(r.Context(), topic)
	if err != nil {
		return err
	}
	from, to, next := after(len(ms), func(i int) string { return ms[i].ConnID }, cursor, limit)
	resp := presenceResponse{Topic: topic, Count: len(ms), Items: make([]member, 0, to-from), NextCursor: next}
	for _, m := range ms[from:to] {
		resp.Items = append(resp.Items, member{ConnectionID: m.ConnID, UserID: m.User, Node: m.Node})
	}
	return writeJSON(w, http.StatusOK, resp)
}
