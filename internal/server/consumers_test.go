package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/consumer"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// TestConsumerOnEmbeddedEngine: a consumer with no URL reads the cluster's
// embedded NATS server, creating its stream on the subjects given; an event
// published to a subject reaches the topic's WebSocket subscriber, mapped
// by template and path; an event that cannot be mapped goes to the dead
// letters with the reason; /_/api/consumers and /metrics count both.
func TestConsumerOnEmbeddedEngine(t *testing.T) {
	t.Parallel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	yaml := func(topic string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
tls: {disable: true}
cluster:
  url: embedded
  node: node-1
  embedded: {listen: %q}
consumers:
  - name: feed
    nats: {stream: FEED, subjects: [feed.>], ackWait: 2s}
    topic: %s
    data: $.text
    idempotencyKey: $.id
`, addr, topic)
	}
	n := startCluster(t, yaml("room.${room}"))[0]
	if banner := n.srv.Banner(n.hs.Listener.Addr().String(), n.hs.Listener.Addr().String(), false); !strings.Contains(banner, "  Consumer:       feed reads nats FEED feed.>\n") {
		t.Errorf("the banner does not name the consumer:\n%s", banner)
	}
	sub := testutil.Dial(t, n.WS, nil)
	testutil.Write(t, sub, `{"action":"subscribe","entityId":"room.lobby"}`)
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, topics := range connIDs(t, n.HTTP) {
			return len(topics) == 1 && topics[0] == "room.lobby"
		}
		return false
	}, "the subscription is registered")

	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.Publish(ctx, "feed.chat", []byte(`{"id":"x","room":"nowhere-in-particular"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "feed.chat", []byte(`{"id":"h","room":"lobby","text":"hello from the stream"}`)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadText(t, sub); got != "hello from the stream" {
		t.Fatalf("subscriber got %q, want the event's text", got)
	}

	var stats struct{ Consumers []consumer.Stats }
	testutil.Eventually(t, 10*time.Second, func() bool {
		code, body := testutil.Get(t, n.HTTP+"/_/api/consumers")
		if code != 200 || json.Unmarshal([]byte(body), &stats) != nil || len(stats.Consumers) != 1 {
			return false
		}
		c := stats.Consumers[0]
		return c.Consumed == 1 && c.DeadLetters == 1 && c.Lag == 0
	}, "/_/api/consumers counts one event published, one dead letter, no lag; got %+v", &stats)
	if c := stats.Consumers[0]; c.Name != "feed" || c.Kind != "nats" || c.Source != "FEED feed.>" {
		t.Errorf("/_/api/consumers = %+v, want feed, nats, FEED feed.>", c)
	}
	dead, err := js.Stream(ctx, "SWITCHBOARD_DEAD_feed")
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	m, err := dead.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Header.Get("Switchboard-Reason"), "mapping: data: the event has no field text"; got != want {
		t.Errorf("dead letter's reason = %q, want %q", got, want)
	}
	if m.Subject != "switchboard.dead.feed" || string(m.Data) != `{"id":"x","room":"nowhere-in-particular"}` {
		t.Errorf("dead letter = %s %s, want the event on switchboard.dead.feed", m.Subject, m.Data)
	}

	// The same event put twice (a producer that retried) reaches the
	// subscriber once: its key was published within the window.
	for _, text := range []string{"once", "once again", "next"} {
		id := "dup"
		if text == "next" {
			id = "next"
		}
		if _, err := js.Publish(ctx, "feed.chat", fmt.Appendf(nil, `{"id":%q,"room":"lobby","text":%q}`, id, text)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"once", "next"} {
		if got := testutil.ReadText(t, sub); got != want {
			t.Fatalf("subscriber got %q, want %q (an event with a key already published is not published again)", got, want)
		}
	}

	// One node publishes its events in the order it takes them.
	for i := range 20 {
		if _, err := js.Publish(ctx, "feed.chat", fmt.Appendf(nil, `{"id":"m%d","room":"lobby","text":"m%d"}`, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if got, want := testutil.ReadText(t, sub), fmt.Sprintf("m%d", i); got != want {
			t.Fatalf("message %d: got %q, want %q (in order)", i, got, want)
		}
	}

	// Consumers change only with a restart: a reload keeps them and says so.
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yaml("elsewhere")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !strings.Contains(n.log.String(), "setting=consumers") {
		t.Errorf("the reload does not say consumers change only with a restart; log:\n%s", n.log.String())
	}
	if _, err := js.Publish(ctx, "feed.chat", []byte(`{"id":"r","room":"lobby","text":"after the reload"}`)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadText(t, sub); got != "after the reload" {
		t.Errorf("after the reload, subscriber got %q, want the event on the running consumer's topic", got)
	}

	_, metrics := testutil.Get(t, n.HTTP+"/metrics")
	for _, want := range []string{
		`switchboard_consumer_events_total{consumer="feed"} 24`,
		`switchboard_consumer_duplicates_total{consumer="feed"} 1`,
		`switchboard_consumer_dead_letters_total{consumer="feed",reason="mapping"} 1`,
		`switchboard_consumer_lag{consumer="feed"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
