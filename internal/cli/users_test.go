package cli_test

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

// The user and presence commands, against a gateway whose $connect names
// the user of the "user" query parameter (X-Switchboard-User).
func TestManageUsers(t *testing.T) {
	t.Parallel()
	connect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Query map[string]string `json:"queryStringParameters"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		w.Header().Set("X-Switchboard-User", ev.Query["user"])
	}))
	t.Cleanup(connect.Close)
	gw := servertest.StartYAML(t, `routes:
  $connect:  {integration: {type: http, url: "`+connect.URL+`"}}
  subscribe: {integration: {type: subscribe}}
`)
	d1 := testutil.Dial(t, gw.WS+"/?user=dana", nil)
	d2 := testutil.Dial(t, gw.WS+"/?user=dana", nil)
	testutil.Dial(t, gw.WS+"/?user=eve", nil)
	testutil.Write(t, d1, `{"action":"subscribe","entityId":"lobby"}`)

	ep := []string{"--endpoint", gw.HTTP}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(mustManage(t, noEnv, "presence", append(ep, "lobby")...), `"userId": "dana"`)
	}, "presence lobby does not list dana")
	if out := mustManage(t, noEnv, "users", ep...); !strings.Contains(out, `"count": 2`) || !strings.Contains(out, `"dana"`) || !strings.Contains(out, `"eve"`) {
		t.Errorf("users printed %q, want dana and eve", out)
	}
	if out := mustManage(t, noEnv, "user", append([]string{"list"}, append(ep, "dana")...)...); strings.Count(out, `"connectionId"`) != 2 {
		t.Errorf("user list dana printed %q, want two connections", out)
	}
	if out := mustManage(t, noEnv, "user", append([]string{"send"}, append(ep, "dana", "hi dana")...)...); out != "sent 7 bytes to 2 connections of dana\n" {
		t.Errorf("user send printed %q", out)
	}
	for _, c := range []*websocket.Conn{d1, d2} {
		if got := testutil.ReadText(t, c); got != "hi dana" {
			t.Errorf("dana's connection got %q", got)
		}
	}
	if out := mustManage(t, noEnv, "user", append([]string{"disconnect"}, append(ep, "dana")...)...); out != "disconnected 2 connections of dana\n" {
		t.Errorf("user disconnect printed %q", out)
	}
	for _, c := range []*websocket.Conn{d1, d2} {
		if code, _ := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusNormalClosure {
			t.Errorf("dana's connection closed with %d, want 1000", code)
		}
	}
	if _, err := manage(t, noEnv, strings.NewReader(""), "user", "shout", "dana"); err == nil || !strings.Contains(err.Error(), "send|list|disconnect") {
		t.Errorf("user shout: err = %v, want the usage", err)
	}
}
