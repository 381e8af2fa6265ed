package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// waitFor bounds the waits of the presence tests.
const waitFor = 5 * time.Second

// presence.announce: the subscribers of a matching topic receive a join
// when a connection subscribes and a leave when it goes; other topics are
// silent.
func TestPresenceAnnounce(t *testing.T) {
	t.Parallel()
	connect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Query map[string]string `json:"queryStringParameters"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		w.Header().Set("X-Switchboard-User", ev.Query["user"])
	}))
	t.Cleanup(connect.Close)
	srv := servertest.StartYAML(t, `presence: {announce: ["room.*"]}
routes:
  $connect:  {integration: {type: http, url: "`+connect.URL+`"}}
  subscribe: {integration: {type: subscribe}}
  publish:   {integration: {type: publish}}
`)
	type event struct {
		Type, Event, Topic, ConnectionID, UserID string
	}
	read := func(c *websocket.Conn) event {
		t.Helper()
		var e event
		msg := testutil.ReadText(t, c)
		if err := json.Unmarshal([]byte(msg), &e); err != nil {
			t.Fatalf("got %q, want a presence event", msg)
		}
		return e
	}
	ann := testutil.Dial(t, srv.WS+"/?user=ann", nil)
	ben := testutil.Dial(t, srv.WS+"/?user=ben", nil)
	testutil.Write(t, ann, `{"action":"subscribe","entityId":"room.1"}`)
	if e := read(ann); e.Type != "presence" || e.Event != "join" || e.Topic != "room.1" || e.UserID != "ann" || e.ConnectionID == "" {
		t.Fatalf("ann's own join = %+v", e)
	}
	testutil.Write(t, ben, `{"action":"subscribe","entityId":"room.1"}`)
	benJoin := read(ann)
	if benJoin.Event != "join" || benJoin.UserID != "ben" {
		t.Fatalf("ann got %+v, want ben's join", benJoin)
	}
	if e := read(ben); e != benJoin {
		t.Errorf("ben got %+v, want its own join %+v", e, benJoin)
	}
	// A topic no pattern names is silent: ann's next message is the publish.
	testutil.Write(t, ann, `{"action":"subscribe","entityId":"lobby"}`)
	testutil.Eventually(t, waitFor, func() bool {
		_, body := testutil.Get(t, srv.HTTP+"/@topics/lobby/presence")
		return strings.Contains(body, `"count":1`)
	}, "ann is not in the lobby's presence")
	testutil.Write(t, ben, `{"action":"publish","entityId":"lobby","data":"not an event"}`)
	if got := testutil.ReadText(t, ann); got != "not an event" {
		t.Errorf("ann got %q after subscribing to lobby, want the publish alone", got)
	}
	ben.Close(websocket.StatusNormalClosure, "")
	if e := read(ann); e.Event != "leave" || e.UserID != "ben" || e.ConnectionID != benJoin.ConnectionID || e.Topic != "room.1" {
		t.Errorf("ann got %+v, want ben's leave", e)
	}
}
