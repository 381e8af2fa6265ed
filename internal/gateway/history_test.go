package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/memhist"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// startHistoryGateway serves a node alone whose topics matching rules keep
// history, with the built-in subscribe and publish routes.
func startHistoryGateway(t testing.TB, rules ...history.Rule) (*gateway.Hub, string) {
	t.Helper()
	var hist gateway.History
	if len(rules) > 0 {
		st, err := memhist.New(memhist.Options{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		hist = st
	}
	hub, err := gateway.StartHub(context.Background(), gateway.HubOptions{Directory: memreg.New(), Node: "test", History: hist})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]gateway.Route{}
	for _, kind := range []string{builtin.KindSubscribe, builtin.KindPublish, builtin.KindUnsubscribe} {
		in, err := builtin.New(kind, hub, builtin.Options{})
		if err != nil {
			t.Fatal(err)
		}
		routes[kind] = gateway.Route{Integration: in, Inline: true}
	}
	gw := gateway.New(hub, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Routes: routes})
	hs := httptest.NewServer(gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Drain(ctx)
		hs.Close()
	})
	return hub, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// kept is any message of a subscription with history: an envelope, a gap
// or a subscribed message.
type kept struct {
	Type   string          `json:"type"`
	Topic  string          `json:"topic"`
	Epoch  string          `json:"epoch"`
	Offset uint64          `json:"offset"`
	Reason string          `json:"reason"`
	Data   json.RawMessage `json:"data"`
}

func readKept(t testing.TB, c *websocket.Conn) kept {
	t.Helper()
	msg := testutil.ReadText(t, c)
	var k kept
	if err := json.Unmarshal([]byte(msg), &k); err != nil {
		t.Fatalf("message %q: %v", msg, err)
	}
	return k
}

// subscribeKept subscribes c to topic with msg's history fields and reads
// up to the subscribed message, returning what came before it and it.
func subscribeKept(t testing.TB, c *websocket.Conn, msg string) ([]kept, kept) {
	t.Helper()
	testutil.Write(t, c, msg)
	var before []kept
	for {
		k := readKept(t, c)
		if k.Type == "subscribed" {
			return before, k
		}
		before = append(before, k)
	}
}

func publish(t testing.TB, hub *gateway.Hub, topic, data string) {
	t.Helper()
	if _, err := hub.Publish(context.Background(), topic, []byte(data)); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

func TestHistoryEnvelopeIsOptIn(t *testing.T) {
	t.Parallel()
	hub, url := startHistoryGateway(t, history.Rule{Topics: "chat.*"})
	plain := testutil.Dial(t, url, nil)
	testutil.Write(t, plain, `{"action":"subscribe","topic":"chat.a"}`)
	enveloped := testutil.Dial(t, url, nil)
	_, sub := subscribeKept(t, enveloped, `{"action":"subscribe","topic":"chat.a","history":true}`)
	if sub.Topic != "chat.a" || sub.Epoch == "" || sub.Offset != 0 {
		t.Errorf("subscribed = %+v, want topic chat.a, an epoch, offset 0", sub)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, err := hub.Publish(context.Background(), "chat.a", []byte("Hello"))
		if err != nil {
			t.Fatal(err)
		}
		return n == 2
	}, "both subscribed")
	if got := testutil.ReadText(t, plain); got != "Hello" {
		t.Errorf("plain subscriber got %q, want the raw data Hello", got)
	}
	k := readKept(t, enveloped)
	if k.Topic != "chat.a" || k.Epoch != sub.Epoch || k.Offset == 0 || string(k.Data) != `"Hello"` {
		t.Errorf("enveloped subscriber got %+v, want chat.a, epoch %s, an offset, data \"Hello\"", k, sub.Epoch)
	}
	publish(t, hub, "chat.a", `{"n":1}`)
	if got := testutil.ReadText(t, plain); got != `{"n":1}` {
		t.Errorf("plain subscriber got %q, want {\"n\":1}", got)
	}
	if k2 := readKept(t, enveloped); string(k2.Data) != `{"n":1}` || k2.Offset <= k.Offset {
		t.Errorf("enveloped subscriber got %+v, want data {\"n\":1} after offset %d", k2, k.Offset)
	}
	publish(t, hub, "chat.a", "\xff\x00")
	if msg := testutil.ReadText(t, enveloped); !strings.Contains(msg, `"data":"/wA=","isBase64Encoded":true`) {
		t.Errorf("binary data in the envelope = %s, want base64", msg)
	}

	// A topic no rule keeps: the client is told, and is not subscribed.
	testutil.Write(t, enveloped, `{"action":"subscribe","topic":"news","history":true}`)
	if msg := testutil.ReadText(t, enveloped); !strings.Contains(msg, `Topic \"news\" keeps no history`) {
		t.Errorf("history of a topic that keeps none: got %s", msg)
	}
	for _, bad := range []string{`"since":5`, `"since":{"offset":1}`, `"since":{"epoch":"e","offset":-1}`, `"history":"yes"`} {
		testutil.Write(t, enveloped, `{"action":"subscribe","topic":"chat.a",`+bad+`}`)
		if msg := testutil.ReadText(t, enveloped); !strings.Contains(msg, "Bad request") && !strings.Contains(msg, "bad request") {
			t.Errorf("subscribe with %s: got %s, want a bad request", bad, msg)
		}
	}
}

func TestHistoryOffNoEnvelope(t *testing.T) {
	t.Parallel()
	hub, url := startHistoryGateway(t)
	c := testutil.Dial(t, url, nil)
	testutil.Write(t, c, `{"action":"subscribe","topic":"chat.a","history":true}`)
	if msg := testutil.ReadText(t, c); !strings.Contains(msg, "keeps no history") {
		t.Errorf("history with none configured: got %s", msg)
	}
	testutil.Write(t, c, `{"action":"subscribe","topic":"chat.a"}`)
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, _ := hub.Publish(context.Background(), "chat.a", []byte("raw"))
		return n == 1
	}, "subscribed")
	if got := testutil.ReadText(t, c); got != "raw" {
		t.Errorf("got %q, want raw", got)
	}
}

func TestHistoryResumeCatchesUp(t *testing.T) {
	t.Parallel()
	hub, url := startHistoryGateway(t, history.Rule{Topics: "t"})
	first := testutil.Dial(t, url, nil)
	subscribeKept(t, first, `{"action":"subscribe","topic":"t","history":true}`)
	publish(t, hub, "t", "1")
	seen := readKept(t, first)
	first.CloseNow()
	for i := 2; i <= 5; i++ {
		publish(t, hub, "t", strconv.Itoa(i))
	}
	c := testutil.Dial(t, url, nil)
	backlog, sub := subscribeKept(t, c, fmt.Sprintf(`{"action":"subscribe","topic":"t","since":{"epoch":%q,"offset":%d}}`, seen.Epoch, seen.Offset))
	var got []string
	for _, k := range backlog {
		if k.Type != "" {
			t.Errorf("unexpected %s message: %+v", k.Type, k)
		}
		got = append(got, string(k.Data))
	}
	if strings.Join(got, ",") != "2,3,4,5" {
		t.Errorf("caught up with %v, want 2,3,4,5", got)
	}
	if sub.Offset != backlog[len(backlog)-1].Offset {
		t.Errorf("subscribed at %d, want the last offset %d", sub.Offset, backlog[len(backlog)-1].Offset)
	}
	publish(t, hub, "t", "6")
	if k := readKept(t, c); string(k.Data) != "6" || k.Offset <= sub.Offset {
		t.Errorf("live after the catch-up: %+v, want 6 after %d", k, sub.Offset)
	}
}

func TestHistoryGap(t *testing.T) {
	t.Parallel()
	hub, url := startHistoryGateway(t, history.Rule{Topics: "t", Size: 3})
	c := testutil.Dial(t, url, nil)
	_, sub := subscribeKept(t, c, `{"action":"subscribe","topic":"t","history":true}`)
	for i := 1; i <= 10; i++ {
		publish(t, hub, "t", strconv.Itoa(i))
	}
	var last kept
	for range 10 {
		last = readKept(t, c)
	}
	tests := []struct {
		name, since, reason, want string
	}{
		{"older than the size", fmt.Sprintf(`{"epoch":%q,"offset":%d}`, sub.Epoch, sub.Offset), "trimmed", "8,9,10"},
		{"another epoch", fmt.Sprintf(`{"epoch":"gone","offset":%d}`, last.Offset), "epoch", "8,9,10"},
		{"up to date", fmt.Sprintf(`{"epoch":%q,"offset":%d}`, sub.Epoch, last.Offset), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.Dial(t, url, nil)
			backlog, _ := subscribeKept(t, c, `{"action":"subscribe","topic":"t","since":`+tt.since+`}`)
			reason := ""
			if len(backlog) > 0 && backlog[0].Type == "gap" {
				reason, backlog = backlog[0].Reason, backlog[1:]
				if len(backlog) > 0 && backlog[0].Epoch != sub.Epoch {
					t.Errorf("gap epoch differs from the entries'")
				}
			}
			var got []string
			for _, k := range backlog {
				got = append(got, string(k.Data))
			}
			if reason != tt.reason || strings.Join(got, ",") != tt.want {
				t.Errorf("resume = gap %q then %v, want gap %q then %s", reason, got, tt.reason, tt.want)
			}
		})
	}
}

// A subscriber that resumes while publications keep coming receives every
// one exactly once, in order, across the switch from the backlog to live.
func TestHistoryLiveSwitchNoGapNoDuplicate(t *testing.T) {
	t.Parallel()
	const total = 1000 // within the default send queue: the reader never overflows it
	hub, url := startHistoryGateway(t, history.Rule{Topics: "t", Size: total})
	c := testutil.Dial(t, url, nil)
	_, sub := subscribeKept(t, c, `{"action":"subscribe","topic":"t","history":true}`)
	var wg sync.WaitGroup
	wg.Add(1)
	started := make(chan struct{})
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if i == total/4 {
				close(started)
			}
			if _, err := hub.Publish(context.Background(), "t", []byte(strconv.Itoa(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	<-started
	r := testutil.Dial(t, url, nil)
	testutil.Write(t, r, fmt.Sprintf(`{"action":"subscribe","topic":"t","since":{"epoch":%q,"offset":%d}}`, sub.Epoch, sub.Offset))
	next, prev := 1, uint64(0)
	for next <= total {
		k := readKept(t, r)
		if k.Type == "subscribed" {
			continue
		}
		if k.Type != "" {
			t.Fatalf("unexpected %s message at %d", k.Type, next)
		}
		if string(k.Data) != strconv.Itoa(next) || k.Offset <= prev {
			t.Fatalf("got %s at offset %d, want %d after offset %d", k.Data, k.Offset, next, prev)
		}
		next, prev = next+1, k.Offset
	}
	wg.Wait()
}

// Deliveries of a kept topic reach the hub from the store, and are counted
// under the (history) source.
func TestHistoryDeliveriesCounted(t *testing.T) {
	t.Parallel()
	st, err := memhist.New(memhist.Options{Rules: []history.Rule{{Topics: "news"}}})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	hub, err := gateway.StartHub(context.Background(), gateway.HubOptions{Directory: memreg.New(), Node: "test", History: st, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(hub, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	testutil.Dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	var id string
	testutil.Eventually(t, 5*time.Second, func() bool {
		ids := hub.LocalRecords()
		if len(ids) == 1 {
			id = ids[0].ConnID
		}
		return id != ""
	}, "the connection")
	if err := hub.Subscribe(context.Background(), id, "news", -1); err != nil {
		t.Fatal(err)
	}
	if n, err := hub.Publish(context.Background(), "news", []byte("x")); err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1, nil", n, err)
	}
	var got dto.Metric
	if err := m.MessagesOut.WithLabelValues("(history)").Write(&got); err != nil {
		t.Fatal(err)
	}
	if v := got.GetCounter().GetValue(); v != 1 {
		t.Errorf("messages out from (history) = %v, want 1", v)
	}
}

// fakeStore is a history.Store whose deliveries the test makes.
type fakeStore struct {
	mu      sync.Mutex
	deliver history.Deliver
	now     history.Position
	backlog history.Backlog // what Since answers a from, with now
}

func (f *fakeStore) Keeps(topic string) bool { return topic == "news" }
func (f *fakeStore) Watch(d history.Deliver) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deliver = d
	return nil
}
func (f *fakeStore) Append(context.Context, string, []byte) (int, error) { return 0, nil }
func (f *fakeStore) Since(_ context.Context, _ string, from *history.Position) (history.Backlog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if from == nil {
		return history.Backlog{Now: f.now}, nil
	}
	b := f.backlog
	b.Now = f.now
	return b, nil
}
func (f *fakeStore) push(e history.Entry) int {
	f.mu.Lock()
	d := f.deliver
	f.mu.Unlock()
	return d("news", e)
}

// startFakeHub serves a gateway whose history is st and dials it.
func startFakeHub(t *testing.T, st *fakeStore) *websocket.Conn {
	t.Helper()
	hub, err := gateway.StartHub(context.Background(), gateway.HubOptions{Directory: memreg.New(), Node: "test", History: st})
	if err != nil {
		t.Fatal(err)
	}
	in, err := builtin.New(builtin.KindSubscribe, hub, builtin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(hub, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]gateway.Route{builtin.KindSubscribe: {Integration: in, Inline: true}}})
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	return testutil.Dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
}

// A resume from a position ahead of the topic's (a store that lost its
// data and says so by the epoch gap in the same epoch's name, or one that
// knows the topic only up to an older offset) takes the topic's position,
// not the client's: what the store kept and the next live publication are
// sent, not left out as already received.
func TestHistoryResumeAheadOfTheTopic(t *testing.T) {
	t.Parallel()
	entries := []history.Entry{{Epoch: "one", Offset: 1, Data: []byte(`1`)}, {Epoch: "one", Offset: 2, Prev: 1, Data: []byte(`2`)}}
	tests := []struct {
		name    string
		backlog history.Backlog
		want    []kept
	}{
		{"epoch gap in the same epoch", history.Backlog{Entries: entries, Gap: history.GapEpoch},
			[]kept{{Type: "gap", Epoch: "one", Reason: "epoch"}, {Epoch: "one", Offset: 1}, {Epoch: "one", Offset: 2}}},
		{"no gap, nothing kept after it", history.Backlog{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := &fakeStore{now: history.Position{Epoch: "one", Offset: 2}, backlog: tt.backlog}
			c := startFakeHub(t, st)
			testutil.Write(t, c, `{"action":"subscribe","topic":"news","since":{"epoch":"one","offset":1000}}`)
			want := append(tt.want, kept{Type: "subscribed", Epoch: "one", Offset: 2})
			for _, w := range want {
				if k := readKept(t, c); k.Type != w.Type || k.Epoch != w.Epoch || k.Offset != w.Offset || k.Reason != w.Reason {
					t.Fatalf("got %+v, want %+v", k, w)
				}
			}
			st.push(history.Entry{Epoch: "one", Offset: 3, Prev: 2, Data: []byte(`3`)})
			if k := readKept(t, c); k.Type != "" || k.Epoch != "one" || k.Offset != 3 {
				t.Fatalf("got %+v, want the live publication at 3", k)
			}
		})
	}
}

// A live subscriber whose store starts a new epoch (an engine that lost
// its data) is told so with the epoch gap, then receives the new epoch's
// publications, whose offsets start again.
func TestHistoryNewEpochWhileLive(t *testing.T) {
	t.Parallel()
	st := &fakeStore{now: history.Position{Epoch: "one", Offset: 5}}
	hub, err := gateway.StartHub(context.Background(), gateway.HubOptions{Directory: memreg.New(), Node: "test", History: st})
	if err != nil {
		t.Fatal(err)
	}
	in, err := builtin.New(builtin.KindSubscribe, hub, builtin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(hub, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Routes: map[string]gateway.Route{builtin.KindSubscribe: {Integration: in, Inline: true}}})
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	c := testutil.Dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	testutil.Write(t, c, `{"action":"subscribe","topic":"news","history":true}`)
	if k := readKept(t, c); k.Type != "subscribed" || k.Offset != 5 {
		t.Fatalf("first message %+v, want subscribed at 5", k)
	}
	st.push(history.Entry{Epoch: "one", Offset: 6, Prev: 5, Data: []byte(`1`)})
	st.push(history.Entry{Epoch: "two", Offset: 1, Data: []byte(`2`)})
	want := []kept{{Epoch: "one", Offset: 6}, {Type: "gap", Epoch: "two", Reason: "epoch"}, {Epoch: "two", Offset: 1}}
	for _, w := range want {
		k := readKept(t, c)
		if k.Type != w.Type || k.Epoch != w.Epoch || k.Offset != w.Offset || k.Reason != w.Reason {
			t.Fatalf("got %+v, want %+v", k, w)
		}
	}
}
