package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

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

// A client whose TCP connection is cut mid-stream (no close frame)
// reconnects and resumes: over 1,000 publications made continuously
// through the management API, it receives each once, in order.
func TestHistoryResumeAfterCutConnection(t *testing.T) {
	t.Parallel()
	const total = 1000
	srv := servertest.StartYAML(t, "history: [{topics: \"feed\", size: 1000}]\n")
	client := &http.Client{}
	var published atomic.Int64
	done := make(chan error, 1)
	start := func() {
		go func() {
			for i := 1; i <= total; i++ {
				resp, err := client.Post(srv.HTTP+"/@topics/feed", "text/plain", strings.NewReader(strconv.Itoa(i)))
				if err != nil {
					done <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					done <- fmt.Errorf("publication %d: status %d", i, resp.StatusCode)
					return
				}
				published.Store(int64(i))
			}
			done <- nil
		}()
	}
	type envelope struct {
		Type   string `json:"type"`
		Epoch  string `json:"epoch"`
		Offset uint64 `json:"offset"`
		Data   int    `json:"data"`
	}
	read := func(c *websocket.Conn) envelope {
		t.Helper()
		var e envelope
		if msg := testutil.ReadText(t, c); json.Unmarshal([]byte(msg), &e) != nil {
			t.Fatalf("message %q", msg)
		}
		return e
	}

	c := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, c, `{"action":"subscribe","topic":"feed","history":true}`)
	pos := read(c)
	if pos.Type != "subscribed" {
		t.Fatalf("first message: %+v, want subscribed", pos)
	}
	start()
	next := 1
	for next <= total/3 {
		e := read(c)
		if e.Data != next {
			t.Fatalf("got %d, want %d", e.Data, next)
		}
		pos.Offset, next = e.Offset, next+1
	}
	c.CloseNow() // the socket closes with no close frame
	// The cut happens while publications go on.
	testutil.Eventually(t, 10*time.Second, func() bool { return published.Load() > int64(next+50) }, "more publications")

	r := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, r, fmt.Sprintf(`{"action":"subscribe","topic":"feed","since":{"epoch":%q,"offset":%d}}`, pos.Epoch, pos.Offset))
	for next <= total {
		e := read(r)
		switch {
		case e.Type == "subscribed":
			continue
		case e.Type != "":
			t.Fatalf("unexpected %+v at %d", e, next)
		case e.Data != next:
			t.Fatalf("got %d, want %d: lost or duplicated", e.Data, next)
		}
		next++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
