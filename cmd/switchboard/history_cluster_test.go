package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests in this file run topic history on three gateway processes
// that keep it in their engine.

// clusterHistory is the history configuration of these tests: "feed"
// keeps every publication of a run, "short.*" only five.
const clusterHistory = `history:
  - {topics: "feed", size: 1000}
  - {topics: "short.*", size: 5}
`

// histMessage is what a subscriber with history receives: an envelope, a
// subscribed message or a gap message.
type histMessage struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
	Data   int    `json:"data"`
}

func readHist(t *testing.T, c *websocket.Conn) histMessage {
	t.Helper()
	var m histMessage
	if msg := testutil.ReadText(t, c); json.Unmarshal([]byte(msg), &m) != nil {
		t.Fatalf("message %q", msg)
	}
	return m
}

// reader reads c's messages into a channel as they come, so that c
// answers the gateway's pings while the test is busy with others.
func reader(c *websocket.Conn) <-chan string {
	ch := make(chan string, 4096)
	go func() {
		defer close(ch)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			ch <- string(b)
		}
	}()
	return ch
}

// nextOf returns the next message of ch.
func nextOf(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the connection ended")
		}
		return m
	case <-time.After(30 * time.Second): // bounds the wait; delivery is polled by the reads
		t.Fatal("no message within 30s")
	}
	return ""
}

func histOf(t *testing.T, ch <-chan string) histMessage {
	t.Helper()
	var m histMessage
	if msg := nextOf(t, ch); json.Unmarshal([]byte(msg), &m) != nil {
		t.Fatalf("message %q", msg)
	}
	return m
}

// publishAll publishes 1..total to topic through POST /@topics/{topic},
// each through the next node in turn, one after the other; published
// counts those answered, and the error, if any, ends up in the channel.
func publishAll(cl *cluster, topic string, total int, published *atomic.Int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			n := cl.nodes[i%len(cl.nodes)]
			status, _, body, err := mgmtCall(http.MethodPost, n.http+"/@topics/"+topic, strconv.Itoa(i))
			if err != nil || status != http.StatusOK {
				done <- fmt.Errorf("publication %d through %s: %d %s %v", i, n.name, status, body, err)
				return
			}
			published.Store(int64(i))
		}
		done <- nil
	}()
	return done
}

// TestClusterHistory runs before the package's parallel tests, not among
// them: its nine gateway processes beside TestCluster's would starve the
// leases of both on a small machine.
func TestClusterHistory(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cl := startClusterConfig(t, f, clusterHistory)
			t.Run("resume on another node after a cut", func(t *testing.T) { resumeAfterCut(t, cl) })
			t.Run("trimmed", func(t *testing.T) { resumeTrimmed(t, cl) })
			t.Run("node killed", func(t *testing.T) { resumeAfterKill(t, cl) })
		})
	}
}

// resumeAfterCut: a subscriber on node-a whose TCP connection is cut, with
// no close frame, a third of the way through 1,000 publications made
// through every node in turn, resumes on node-b and receives each once, in
// order. Meanwhile a subscriber of the raw data on node-c receives each
// once, in order, and two enveloped subscribers on node-b and node-c
// receive them with the same increasing offsets.
func resumeAfterCut(t *testing.T, cl *cluster) {
	const total = 1000
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]

	sub := testutil.Dial(t, a.ws, nil)
	testutil.Write(t, sub, `{"action":"subscribe","topic":"feed","history":true}`)
	pos := readHist(t, sub)
	if pos.Type != "subscribed" || pos.Epoch == "" {
		t.Fatalf("first message: %+v, want subscribed with an epoch", pos)
	}
	raw := testutil.Dial(t, c.ws, nil)
	testutil.Write(t, raw, `{"action":"subscribe","topic":"feed"}`)
	rawIn := reader(raw)
	var watchersIn []<-chan string
	for _, n := range []*node{b, c} {
		w := testutil.Dial(t, n.ws, nil)
		testutil.Write(t, w, `{"action":"subscribe","topic":"feed","history":true}`)
		in := reader(w)
		if m := histOf(t, in); m.Type != "subscribed" {
			t.Fatalf("watcher on %s: %+v, want subscribed", n.name, m)
		}
		watchersIn = append(watchersIn, in)
	}
	// Every subscription is in place once the cluster's listing shows it.
	testutil.Eventually(t, 10*time.Second, func() bool {
		n := 0
		for _, l := range listAll(t, c, 100) {
			if slices.Contains(l.Topics, "feed") {
				n++
			}
		}
		return n == 4
	}, "four subscribers of feed")

	var published atomic.Int64
	done := publishAll(cl, "feed", total, &published)
	next := 1
	for next <= total/3 {
		e := readHist(t, sub)
		if e.Type != "" || e.Data != next {
			t.Fatalf("got %+v, want publication %d", e, next)
		}
		if e.Offset <= pos.Offset || e.Epoch != pos.Epoch {
			t.Fatalf("publication %d at offset %d epoch %s after %d epoch %s", next, e.Offset, e.Epoch, pos.Offset, pos.Epoch)
		}
		pos.Offset, next = e.Offset, next+1
	}
	_ = sub.CloseNow() // the TCP connection ends with no close frame
	testutil.Eventually(t, 30*time.Second, func() bool { return published.Load() > int64(next+50) }, "more publications")

	r := testutil.Dial(t, b.ws, nil)
	testutil.Write(t, r, fmt.Sprintf(`{"action":"subscribe","topic":"feed","since":{"epoch":%q,"offset":%d}}`, pos.Epoch, pos.Offset))
	subscribed := false
	for next <= total {
		e := readHist(t, r)
		switch {
		case e.Type == "subscribed" && !subscribed:
			subscribed = true
			continue
		case e.Type != "":
			t.Fatalf("unexpected %+v at %d", e, next)
		case e.Data != next:
			t.Fatalf("resumed on %s: got %d, want %d: lost or duplicated", b.name, e.Data, next)
		case e.Offset <= pos.Offset:
			t.Fatalf("publication %d at offset %d, not after %d", next, e.Offset, pos.Offset)
		}
		pos.Offset = e.Offset
		next++
	}
	if !subscribed {
		t.Error("the resumed subscriber got no subscribed message")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for i := 1; i <= total; i++ {
		if got := nextOf(t, rawIn); got != strconv.Itoa(i) {
			t.Fatalf("raw subscriber on %s: got %q, want %d", c.name, got, i)
		}
	}
	var offsets [2][]uint64
	for wi, w := range watchersIn {
		for i := 1; i <= total; i++ {
			e := histOf(t, w)
			if e.Type != "" || e.Data != i {
				t.Fatalf("watcher %d: got %+v, want publication %d", wi, e, i)
			}
			if n := len(offsets[wi]); n > 0 && e.Offset <= offsets[wi][n-1] {
				t.Fatalf("watcher %d: offset %d after %d", wi, e.Offset, offsets[wi][n-1])
			}
			offsets[wi] = append(offsets[wi], e.Offset)
		}
	}
	if !slices.Equal(offsets[0], offsets[1]) {
		t.Error("the watchers on node-b and node-c saw different offsets")
	}
	// Nothing more: each publication came once to each. The end marker is
	// broadcast to every connection of the cluster.
	testutil.Write(t, raw, `{"action":"sendMessage","data":"end"}`)
	if got := testutil.ReadText(t, r); got != "end" {
		t.Errorf("resumed: after the last publication got %q, want only the end marker", got)
	}
	for name, in := range map[string]<-chan string{"raw": rawIn, "watcher b": watchersIn[0], "watcher c": watchersIn[1]} {
		if got := nextOf(t, in); got != "end" {
			t.Errorf("%s: after the last publication got %q, want only the end marker", name, got)
		}
	}
}

// resumeTrimmed: a resume from a position older than what the topic keeps
// gets the trimmed gap, then what is kept, then the subscribed message.
func resumeTrimmed(t *testing.T, cl *cluster) {
	a, c := cl.nodes[0], cl.nodes[2]
	sub := testutil.Dial(t, a.ws, nil)
	testutil.Write(t, sub, `{"action":"subscribe","topic":"short.t","history":true}`)
	pos := readHist(t, sub)
	testutil.Write(t, sub, `{"action":"publish","topic":"short.t","data":0}`)
	first := readHist(t, sub)
	if first.Type != "" || first.Data != 0 {
		t.Fatalf("first publication: %+v", first)
	}
	_ = sub.CloseNow()
	var published atomic.Int64
	if err := <-publishAll(cl, "short.t", 10, &published); err != nil {
		t.Fatal(err)
	}
	r := testutil.Dial(t, c.ws, nil)
	testutil.Write(t, r, fmt.Sprintf(`{"action":"subscribe","topic":"short.t","since":{"epoch":%q,"offset":%d}}`, first.Epoch, first.Offset))
	if m := readHist(t, r); m.Type != "gap" || m.Reason != "trimmed" || m.Epoch != pos.Epoch {
		t.Fatalf("first message of the resume: %+v, want a trimmed gap in epoch %s", m, pos.Epoch)
	}
	for i := 6; i <= 10; i++ {
		if e := readHist(t, r); e.Type != "" || e.Data != i {
			t.Fatalf("kept publication: %+v, want %d", e, i)
		}
	}
	if m := readHist(t, r); m.Type != "subscribed" {
		t.Fatalf("after the backlog: %+v, want subscribed", m)
	}
}

// resumeAfterKill: the history is the engine's, not a node's: a
// subscriber whose node is SIGKILLed resumes on another node, in the same
// epoch, with nothing lost. On embedded NATS the killed node's server held
// one of the streams' three replicas.
func resumeAfterKill(t *testing.T, cl *cluster) {
	a, b, c := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	sub := testutil.Dial(t, c.ws, nil)
	testutil.Write(t, sub, `{"action":"subscribe","topic":"short.k","history":true}`)
	pos := readHist(t, sub)
	for i, via := range []*node{c, a} {
		i++
		// Its recipients are the connections of the node that took it.
		want := map[*node]string{c: `{"recipients":1}`, a: `{"recipients":0}`}[via]
		if status, body := mgmt(t, http.MethodPost, via.http+"/@topics/short.k", strconv.Itoa(i)); status != http.StatusOK || strings.TrimSpace(body) != want {
			t.Fatalf("publication %d through %s: %d %s, want 200 %s", i, via.name, status, body, want)
		}
		e := readHist(t, sub)
		if e.Type != "" || e.Data != i {
			t.Fatalf("publication %d: got %+v", i, e)
		}
		pos.Offset = e.Offset
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.wait(t)
	// The engine's replicas choose new leaders: probe a topic of the same
	// stream until it takes publications. Then each publication is made
	// once: a failed one may have been kept, and a retry would be a second.
	testutil.Eventually(t, 30*time.Second, func() bool {
		status, _, _, err := mgmtCall(http.MethodPost, a.http+"/@topics/short.probe", "probe")
		return err == nil && status == http.StatusOK
	}, "publications after node-c was killed")
	for i := 3; i <= 4; i++ {
		if status, body := mgmt(t, http.MethodPost, a.http+"/@topics/short.k", strconv.Itoa(i)); status != http.StatusOK {
			t.Fatalf("publication %d after node-c was killed: %d %s", i, status, body)
		}
	}
	// The directory may refuse new connections while its own replicas
	// choose a leader again (a 500 at the handshake): dial until it takes one.
	var r *websocket.Conn
	testutil.Eventually(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, b.ws, nil)
		if err != nil {
			return false
		}
		r = c
		return true
	}, "a connection to %s after node-c was killed", b.name)
	t.Cleanup(func() { _ = r.CloseNow() })
	// The subscription records the connection's presence in the
	// directory, which may answer an error while its replicas choose a
	// leader: the client is told, and subscribes again. The answer may
	// take the engine's call timeout (cluster.callTimeout, 5s) and more:
	// it is awaited three times as long.
	resume := fmt.Sprintf(`{"action":"subscribe","topic":"short.k","since":{"epoch":%q,"offset":%d}}`, pos.Epoch, pos.Offset)
	var first string
	testutil.Eventually(t, 60*time.Second, func() bool {
		testutil.Write(t, r, resume)
		_, first = testutil.Read(t, r, 15*time.Second)
		var refused struct{ Message string }
		return json.Unmarshal([]byte(first), &refused) != nil || refused.Message == ""
	}, "a resume on %s after node-c was killed", b.name)
	for i := 3; i <= 4; i++ {
		var e histMessage
		if i == 3 {
			if err := json.Unmarshal([]byte(first), &e); err != nil {
				t.Fatalf("message %q", first)
			}
		} else {
			e = readHist(t, r)
		}
		if e.Type != "" || e.Data != i {
			t.Fatalf("resumed on %s: got %+v, want publication %d", b.name, e, i)
		}
	}
	if m := readHist(t, r); m.Type != "subscribed" || m.Epoch != pos.Epoch {
		t.Fatalf("after the backlog: %+v, want subscribed in epoch %s", m, pos.Epoch)
	}
}
