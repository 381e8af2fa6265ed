package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The history key of the configuration keeps a topic's publications for a
// client that resumes after a reconnect; publications through the
// management API are kept too, and other topics stay as they were.
func TestHistoryFromConfig(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "history: [{topics: \"chat.*\", size: 100, ttl: 10m}]\n")
	post := func(topic, body string) string {
		t.Helper()
		resp, err := http.Post(srv.HTTP+"/@topics/"+topic, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /@topics/%s: %d", topic, resp.StatusCode)
		}
		return string(b)
	}
	c := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, c, `{"action":"subscribe","topic":"chat.room","history":true}`)
	var sub struct {
		Type, Epoch string
		Offset      uint64
	}
	if err := json.Unmarshal([]byte(testutil.ReadText(t, c)), &sub); err != nil || sub.Type != "subscribed" {
		t.Fatalf("subscribe: %+v, %v", sub, err)
	}
	c.CloseNow()
	post("chat.room", "one")
	post("chat.room", `{"n":2}`)

	r := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, r, fmt.Sprintf(`{"action":"subscribe","topic":"chat.room","since":{"epoch":%q,"offset":%d}}`, sub.Epoch, sub.Offset))
	for _, want := range []string{`"data":"one"`, `"data":{"n":2}`, `"type":"subscribed"`} {
		if msg := testutil.ReadText(t, r); !strings.Contains(msg, want) {
			t.Errorf("resume: got %s, want %s", msg, want)
		}
	}

	// A topic no rule matches delivers as before, and keeps nothing.
	testutil.Write(t, r, `{"action":"subscribe","topic":"news"}`)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(post("news", "raw"), `"recipients":1`)
	}, "news subscribed")
	if got := testutil.ReadText(t, r); got != "raw" {
		t.Errorf("news: got %q, want raw", got)
	}
}
