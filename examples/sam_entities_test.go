package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The entity-subscription tutorial as a SAM template (examples/sam-entities),
// run by `switchboard serve` in its folder: clients subscribe over
// WebSocket, events put on EventBridge with the AWS SDK for JavaScript v3
// go through the template's rule into its queue, and the push function
// the queue triggers posts them to the entity's subscribers with
// PostToConnection.
func TestSAMEntitiesTemplate(t *testing.T) {
	t.Parallel()
	dir := npmProjectWith(t, "sam-entities", "@aws-sdk/client-eventbridge")

	t.Run("events", func(t *testing.T) {
		t.Parallel()
		subs, drill := t.TempDir(), filepath.Join(t.TempDir(), "drill")
		// A visibility timeout of 2s: a failed event comes back soon.
		g := startIn(t, dir, []string{"--warm"}, "SWITCHBOARD_DATA_DIR="+t.TempDir(),
			"SWITCHBOARD_PARAMETER_OVERRIDES=SubscriptionsDir="+subs+" DrillFile="+drill+" VisibilityTimeout=2")
		banner := g.stdout.String()
		for _, want := range []string{
			"config: template.yaml (SAM template)",
			"subscribe        -> lambda SubscribeFunction  (two-way)",
			"resources with no local effect: Deployment (AWS::ApiGatewayV2::Deployment), EntityEventsQueuePolicy (AWS::SQS::QueuePolicy)",
		} {
			if !strings.Contains(banner, want) {
				t.Errorf("banner lacks %q:\n%s", want, banner)
			}
		}
		a := dialEntities(t, g.ws)
		a.subscribe(t, "order-42")
		b := dialEntities(t, g.ws)
		b.subscribe(t, "order-7")

		// PutEvents reaches the entity's subscriber: rule, queue, push function.
		shipped := putEvent(t, dir, g.http, "order-42", `{"status":"shipped"}`)
		if p := a.next(t); p.ID != shipped || p.EntityID != "order-42" || p.Type != "EntityChanged" || p.Detail["status"] != "shipped" {
			t.Errorf("order-42's subscriber got %+v, want the event %s with its detail", p, shipped)
		}
		// Not the subscriber of another entity: b's next event is its own.
		packed := putEvent(t, dir, g.http, "order-7", `{"status":"packed"}`)
		if p := b.next(t); p.ID != packed {
			t.Errorf("order-7's subscriber got %+v, want only its own event %s", p, packed)
		}

		// An event of another source matches no rule (the count of matches
		// is taken when PutEvents answers) and reaches no one: the next event
		// order-42's subscriber gets is the one put after it.
		putEvent(t, dir, g.http, "--source", "other.app", "order-42", `{"status":"elsewhere"}`)
		if n := metric(t, g.http, `switchboard_events_matched_total{rule="EntityEventsRule"}`); n != 2 {
			t.Errorf("the rule matched %d events, want 2: not the other source's", n)
		}
		after := putEvent(t, dir, g.http, "order-42", `{"status":"after"}`)
		if p := a.next(t); p.ID != after {
			t.Errorf("order-42's subscriber got %+v, want %s: the other source's event reaches no one", p, after)
		}

		// A poison event: the push function fails it while the drill file
		// says fail; after maxReceiveCount (3) receives it is in the
		// dead-letter queue, and nowhere else.
		writeFile(t, drill, "fail")
		poison := putEvent(t, dir, g.http, "order-42", `{"drill":true}`)
		var dlq queueView
		testutil.Eventually(t, time.Minute, func() bool { dlq = showQueue(t, g.http, "EntityEventsDLQ"); return len(dlq.Messages) == 1 },
			"the poison event did not reach the dead-letter queue; it holds %+v", &dlq)
		if m := dlq.Messages[0]; m.Source != "EntityEventsQueue" || !strings.Contains(m.Body, `"id":"`+poison+`"`) {
			t.Errorf("dead letter %+v, want the event %s from EntityEventsQueue", m, poison)
		}
		if n := metric(t, g.http, `switchboard_queue_messages_left_total{queue="EntityEventsQueue",reason="dead_letter"}`); n != 1 {
			t.Errorf("%d messages moved to the dead-letter queue, want 1", n)
		}
		next := putEvent(t, dir, g.http, "order-42", `{"status":"next"}`)
		if p := a.next(t); p.ID != next {
			t.Errorf("order-42's subscriber got %+v, want %s: the poison event failed", p, next)
		}
		// Fixed, and redriven: it is delivered.
		writeFile(t, drill, "")
		if out := cli(t, "queues", "redrive", "EntityEventsDLQ", "--endpoint", g.http+"/dev"); !strings.Contains(out, "moved 1 message") {
			t.Errorf("queues redrive printed %q, want 1 moved", out)
		}
		if p := a.next(t); p.ID != poison || p.Detail["drill"] != true {
			t.Errorf("after the redrive order-42's subscriber got %+v, want the poison event %s", p, poison)
		}
		if q := showQueue(t, g.http, "EntityEventsDLQ"); len(q.Messages) != 0 {
			t.Errorf("dead-letter queue after the redrive: %+v, want it empty", q)
		}

		// A subscription of a connection that is gone: its post answers 410,
		// and the push function forgets it; the others get the event.
		ghost := filepath.Join(subs, "order-42", "GoneConnection0%3D")
		writeFile(t, ghost, "")
		last := putEvent(t, dir, g.http, "order-42", `{"status":"last"}`)
		if p := a.next(t); p.ID != last {
			t.Errorf("order-42's subscriber got %+v, want %s beside a gone subscriber", p, last)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(ghost); return os.IsNotExist(err) },
			"the gone connection's subscription was not forgotten")

		// $disconnect forgets the subscriptions of a client that leaves.
		_ = b.c.Close(websocket.StatusNormalClosure, "")
		testutil.Eventually(t, 30*time.Second, func() bool { e, _ := os.ReadDir(filepath.Join(subs, "order-7")); return len(e) == 0 },
			"$disconnect did not forget order-7's subscriber")
	})

	// With a data directory, the queue keeps an event the push function
	// has not delivered across a restart: the push function holds the
	// event (the drill file says hold) when the gateway is stopped with
	// SIGTERM; the gateway started again on the same data directory
	// delivers it to the client, subscribed again on a new connection.
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		drill := filepath.Join(t.TempDir(), "drill")
		// A visibility timeout of 15s, above the push function's timeout
		// (10s): the wait, should the event come back with it.
		env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(),
			"SWITCHBOARD_PARAMETER_OVERRIDES=SubscriptionsDir=" + t.TempDir() + " DrillFile=" + drill + " VisibilityTimeout=15"}
		writeFile(t, drill, "hold")
		g := startIn(t, dir, nil, env...)
		dialEntities(t, g.ws).subscribe(t, "order-9")
		held := putEvent(t, dir, g.http, "order-9", `{"status":"before the restart"}`)
		testutil.Eventually(t, time.Minute, func() bool { return strings.Contains(g.stderr.String(), "[PushFunction] holding 1 event(s)") },
			"the push function did not get the event")
		if err := g.stop(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}

		g = startIn(t, dir, nil, env...)
		c := dialEntities(t, g.ws)
		c.subscribe(t, "order-9")
		writeFile(t, drill, "")
		// Delivered at once, or after the visibility timeout if the store
		// or the push function's hold (until its timeout) kept it hidden.
		if p := c.nextWithin(t, time.Minute); p.ID != held {
			t.Errorf("after the restart the subscriber got %+v, want the event %s put before it", p, held)
		}
	})
}

// entityClient is a client of examples/sam-entities. Each event it reads
// once: the queue delivers at least once, so an event may come twice.
type entityClient struct {
	c    *websocket.Conn
	seen map[string]bool
}

// entityPush is what the push function posts.
type entityPush struct {
	EntityID string         `json:"entityId"`
	Type     string         `json:"type"`
	ID       string         `json:"id"`
	Detail   map[string]any `json:"detail"`
}

func dialEntities(t *testing.T, ws string) *entityClient {
	t.Helper()
	return &entityClient{c: testutil.Dial(t, ws, nil), seen: map[string]bool{}}
}

// subscribe subscribes c to entity and waits for the route's answer: the
// subscription is stored.
func (c *entityClient) subscribe(t *testing.T, entity string) {
	t.Helper()
	testutil.Write(t, c.c, fmt.Sprintf(`{"action":"subscribe","entityId":%q}`, entity))
	// The first message of a function waits for its cold start.
	if _, got := testutil.Read(t, c.c, time.Minute); got != fmt.Sprintf(`{"subscribed":%q}`, entity) {
		t.Fatalf("subscribe to %s answered %q", entity, got)
	}
}

// next returns the next event c has not read before; it waits for the
// push function's cold start at most.
func (c *entityClient) next(t *testing.T) entityPush {
	t.Helper()
	return c.nextWithin(t, time.Minute)
}

func (c *entityClient) nextWithin(t *testing.T, timeout time.Duration) entityPush {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, msg := testutil.Read(t, c.c, time.Until(deadline))
		var p entityPush
		if err := json.Unmarshal([]byte(msg), &p); err != nil || p.ID == "" {
			t.Fatalf("pushed %q (%v), want an event", msg, err)
		}
		if !c.seen[p.ID] {
			c.seen[p.ID] = true
			return p
		}
	}
}

// putEvent runs the example's scripts/put-event.js (the AWS SDK for
// JavaScript v3's EventBridge client) against the gateway at base with
// args, and returns the event's ID.
func putEvent(t *testing.T, dir, base string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"scripts/put-event.js"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL_EVENTBRIDGE="+base, "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_PROFILE=")
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var answer struct {
		FailedEntryCount int
		Entries          []struct{ EventId string }
	}
	if err != nil || json.Unmarshal(out, &answer) != nil || answer.FailedEntryCount != 0 || len(answer.Entries) != 1 || answer.Entries[0].EventId == "" {
		t.Fatalf("put-event.js %v: %v\n%s%s", args, err, out, &stderr)
	}
	return answer.Entries[0].EventId
}

// queueView is what `switchboard queues show` prints.
type queueView struct {
	Queue struct {
		Visible  int `json:"visible"`
		InFlight int `json:"inFlight"`
	} `json:"queue"`
	Messages []struct {
		Body   string `json:"body"`
		Source string `json:"source"`
	} `json:"messages"`
}

func showQueue(t *testing.T, base, name string) queueView {
	t.Helper()
	var v queueView
	out := cli(t, "queues", "show", name, "--endpoint", base+"/dev")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("queues show %s printed %q: %v", name, out, err)
	}
	return v
}

// cli runs the switchboard command with args and returns its output.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, switchboardBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// metric returns the value of the gateway's metric series named (labels
// included) by series, 0 when it has none.
func metric(t *testing.T, base, series string) int {
	t.Helper()
	_, body := testutil.Get(t, base+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric %s = %q", series, v)
			}
			return n
		}
	}
	return 0
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
