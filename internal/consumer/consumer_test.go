package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/consumer"
	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }

// recorder is the hub the consumers publish through: it keeps what each
// topic received, and fails the publishes to a topic in fail.
type recorder struct {
	mu       sync.Mutex
	got      map[string][]string // topic: messages
	attempts map[string]int      // topic: publishes tried
	fail     map[string]bool
}

func newRecorder() *recorder {
	return &recorder{got: map[string][]string{}, attempts: map[string]int{}, fail: map[string]bool{}}
}

func (r *recorder) Publish(_ context.Context, topic string, data []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[topic]++
	if r.fail[topic] {
		return 0, errors.New("the bus refused it")
	}
	r.got[topic] = append(r.got[topic], string(data))
	return 1, nil
}

func (r *recorder) count(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[topic])
}

func (r *recorder) tries(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[topic]
}

// backend is one engine a consumer reads: it starts the engine, adds
// events, and reads the dead letters.
type backend struct {
	name string
	// setup starts the engine and returns what the test needs of it.
	setup func(t *testing.T) engine
}

type engine struct {
	// source returns the options' source for node.
	source func(t *testing.T, o *consumer.Options)
	// add appends an event to the stream the consumers read.
	add func(t *testing.T, event string)
	// dead returns the dead letters' reasons.
	dead func(t *testing.T) []string
}

var backends = []backend{
	{"nats", func(t *testing.T) engine {
		srv := testutil.StartNATS(t)
		nc, err := nats.Connect(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx := bounded(t)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
			t.Fatal(err)
		}
		return engine{
			source: func(t *testing.T, o *consumer.Options) {
				o.NATS = &consumer.NATSSource{JS: js, Stream: "ORDERS", Subjects: []string{"orders.>"}, AckWait: time.Second}
			},
			add: func(t *testing.T, event string) {
				if _, err := js.Publish(bounded(t), "orders.new", []byte(event)); err != nil {
					t.Fatal(err)
				}
			},
			dead: func(t *testing.T) []string {
				s, err := js.Stream(bounded(t), "SWITCHBOARD_DEAD_orders")
				if err != nil {
					return nil
				}
				info, err := s.Info(bounded(t))
				if err != nil {
					t.Fatal(err)
				}
				var reasons []string
				for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
					m, err := s.GetMsg(bounded(t), seq)
					if err != nil {
						t.Fatal(err)
					}
					reasons = append(reasons, m.Header.Get("Switchboard-Reason")+" deliveries="+m.Header.Get("Switchboard-Deliveries")+" data="+string(m.Data))
				}
				return reasons
			},
		}
	}},
	{"redis", func(t *testing.T) engine {
		srv := testutil.StartRedis(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { _ = rdb.Close() })
		return engine{
			source: func(t *testing.T, o *consumer.Options) {
				o.Redis = &consumer.RedisSource{Client: rdb, Stream: "orders", MinIdle: 300 * time.Millisecond}
			},
			add: func(t *testing.T, event string) {
				if err := rdb.XAdd(bounded(t), &redis.XAddArgs{Stream: "orders", Values: map[string]any{"data": event}}).Err(); err != nil {
					t.Fatal(err)
				}
			},
			dead: func(t *testing.T) []string {
				entries, err := rdb.XRange(bounded(t), "orders:dead", "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				var reasons []string
				for _, e := range entries {
					reasons = append(reasons, fmt.Sprintf("%v deliveries=%v data=%v", e.Values["reason"], e.Values["deliveries"], e.Values["data"]))
				}
				return reasons
			},
		}
	}},
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustTemplate(t *testing.T, s string) *eventbridge.Template {
	t.Helper()
	tp, err := eventbridge.ParseTemplate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// start starts a consumer named orders on node, publishing to hub: topic
// ${room}, data $.body, key $.id.
func start(t *testing.T, e engine, hub consumer.Publisher, node string, tweak func(*consumer.Options, *consumer.Consumer)) *consumer.Consumer {
	t.Helper()
	o := consumer.Options{Name: "orders", Hub: hub, Node: node, Topic: mustTemplate(t, "room.${room}"),
		Data: mustTemplate(t, "$.body"), Key: mustTemplate(t, "$.id"), Backoff: []time.Duration{50 * time.Millisecond},
		PublishTimeout: time.Second, LagInterval: 100 * time.Millisecond}
	e.source(t, &o)
	if tweak != nil {
		tweak(&o, nil)
	}
	c, err := consumer.Start(bounded(t), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if tweak != nil {
		tweak(nil, c)
	}
	c.Run()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedeliveryPublishedOnce: node-a publishes every event and stops
// before acknowledging any; the events come back to node-b, which finds
// their idempotency keys published and acknowledges them without a second
// publish. Each subscriber gets each event once.
func TestRedeliveryPublishedOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := b.setup(t)
			hub := newRecorder()
			var mu sync.Mutex
			unacked := 0
			a := start(t, e, hub, "node-a", func(_ *consumer.Options, c *consumer.Consumer) {
				if c != nil {
					c.SetBeforeAckForTest(func(string, int) error {
						mu.Lock()
						defer mu.Unlock()
						unacked++
						return errors.New("stopped before the acknowledgement")
					})
				}
			})
			const n = 5
			for i := range n {
				e.add(t, fmt.Sprintf(`{"id":"ev-%d","room":"r%d","body":"hello %d"}`, i, i%2, i))
			}
			testutil.Eventually(t, 20*time.Second, func() bool { return hub.count("room.r0")+hub.count("room.r1") == n },
				"node-a publishes the %d events", n)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			bc := start(t, e, hub, "node-b", nil)
			testutil.Eventually(t, 20*time.Second, func() bool { return bc.Stats().Duplicates >= n },
				"node-b takes the %d redeliveries as duplicates; stats %+v", n, lazy(func() any { return bc.Stats() }))
			testutil.Eventually(t, 20*time.Second, func() bool { return bc.Stats().Lag == 0 },
				"nothing left pending; stats %+v", lazy(func() any { return bc.Stats() }))
			if got := hub.count("room.r0") + hub.count("room.r1"); got != n {
				t.Errorf("published %d times, want %d (once per event): %v", got, n, hub.got)
			}
			if st := bc.Stats(); st.Consumed != 0 {
				t.Errorf("node-b published %d events again, want 0", st.Consumed)
			}
			if got := hub.got["room.r0"]; len(got) != 3 || got[0] != "hello 0" {
				t.Errorf("room.r0 got %q, want hello 0, hello 2, hello 4 (data $.body)", got)
			}
		})
	}
}

// TestRedeliveredAfterFailedPublish: a publish that fails releases the
// key; the event comes back and is published then.
func TestRedeliveredAfterFailedPublish(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := b.setup(t)
			hub := newRecorder()
			hub.fail["room.flaky"] = true
			c := start(t, e, hub, "node-a", nil)
			e.add(t, `{"id":"f1","room":"flaky","body":"once"}`)
			testutil.Eventually(t, 20*time.Second, func() bool { return hub.tries("room.flaky") >= 2 }, "the failed publish is retried")
			hub.mu.Lock()
			hub.fail["room.flaky"] = false
			hub.mu.Unlock()
			testutil.Eventually(t, 20*time.Second, func() bool { return hub.count("room.flaky") == 1 }, "the event is published once the bus takes it")
			if st := c.Stats(); st.Retries < 1 || st.DeadLetters != 0 {
				t.Errorf("stats %+v, want retries >= 1 and no dead letter", st)
			}
		})
	}
}

// TestDeadLetterAfterMaxDeliver: an event whose publish always fails is
// tried maxDeliver times, then dead-lettered with the reason and
// acknowledged; the next event goes through.
func TestDeadLetterAfterMaxDeliver(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := b.setup(t)
			hub := newRecorder()
			hub.fail["room.poison"] = true
			m := metrics.NewConsumers(prometheus.NewRegistry())
			c := start(t, e, hub, "node-a", func(o *consumer.Options, _ *consumer.Consumer) {
				if o != nil {
					o.MaxDeliver = 3
					o.Metrics = m
				}
			})
			e.add(t, `{"id":"p1","room":"poison","body":"bad"}`)
			testutil.Eventually(t, 30*time.Second, func() bool { return len(e.dead(t)) == 1 }, "the poison event is dead-lettered")
			dead := e.dead(t)[0]
			if !strings.HasPrefix(dead, "attempts: publish to room.poison: the bus refused it deliveries=3") {
				t.Errorf("dead letter %q, want reason attempts after 3 deliveries", dead)
			}
			if got := hub.tries("room.poison"); got != 3 {
				t.Errorf("publish tried %d times, want 3 (maxDeliver)", got)
			}
			e.add(t, `{"id":"g1","room":"good","body":"fine"}`)
			testutil.Eventually(t, 20*time.Second, func() bool { return hub.count("room.good") == 1 }, "the next event goes through")
			testutil.Eventually(t, 20*time.Second, func() bool { return c.Stats().Lag == 0 }, "the poison event is no longer pending; stats %+v", lazy(func() any { return c.Stats() }))
			if got := hub.tries("room.poison"); got != 3 {
				t.Errorf("publish tried %d times after the dead letter, want 3", got)
			}
			if st := c.Stats(); st.DeadLetters != 1 || st.Retries != 2 {
				t.Errorf("stats %+v, want 1 dead letter and 2 retries", st)
			}
			for _, mc := range []struct {
				name string
				c    prometheus.Metric
				want float64
			}{
				{"dead letters (attempts)", m.DeadLetters.WithLabelValues("orders", consumer.ReasonAttempts), 1},
				{"dead letters (mapping)", m.DeadLetters.WithLabelValues("orders", consumer.ReasonMapping), 0},
				{"retries", m.Retries.WithLabelValues("orders"), 2},
				{"redeliveries", m.Redeliveries.WithLabelValues("orders"), 2},
				{"events", m.Consumed.WithLabelValues("orders"), 1},
				{"lag", m.Lag.WithLabelValues("orders"), 0},
			} {
				if got := value(t, mc.c); got != mc.want {
					t.Errorf("metric %s = %v, want %v", mc.name, got, mc.want)
				}
			}
		})
	}
}

// TestBadMappingDeadLetters: an event without the field the topic needs is
// dead-lettered at once, on its first delivery, with the reason.
func TestBadMappingDeadLetters(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := b.setup(t)
			hub := newRecorder()
			c := start(t, e, hub, "node-a", nil)
			e.add(t, `{"id":"m1","body":"no room"}`)
			e.add(t, `not json`)
			testutil.Eventually(t, 20*time.Second, func() bool { return len(e.dead(t)) == 2 }, "both events are dead-lettered")
			want := []string{
				`mapping: topic: the event has no field room deliveries=1 data={"id":"m1","body":"no room"}`,
				`mapping: topic: the event has no field room deliveries=1 data=not json`,
			}
			if got := e.dead(t); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("dead letters:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if st := c.Stats(); st.Retries != 0 || st.Consumed != 0 {
				t.Errorf("stats %+v, want no retry and nothing published", st)
			}
		})
	}
}

// TestStartRefuses: options a consumer cannot use fail Start with the reason.
func TestStartRefuses(t *testing.T) {
	t.Parallel()
	topic := mustTemplate(t, "$.room")
	hub := newRecorder()
	tests := []struct {
		name string
		o    consumer.Options
		want string
	}{
		{"bad name", consumer.Options{Name: "a.b", Topic: topic, Hub: hub, Redis: &consumer.RedisSource{}}, `name "a.b"`},
		{"no source", consumer.Options{Name: "a", Topic: topic, Hub: hub}, "exactly one of nats and redis"},
		{"no topic", consumer.Options{Name: "a", Hub: hub, Redis: &consumer.RedisSource{}}, "no topic"},
		{"redis without stream", consumer.Options{Name: "a", Topic: topic, Hub: hub, Redis: &consumer.RedisSource{}}, "a connection and a stream key"},
		{"nats without stream", consumer.Options{Name: "a", Topic: topic, Hub: hub, NATS: &consumer.NATSSource{}}, "a JetStream connection and a stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := consumer.Start(context.Background(), tt.o)
			if !errors.Is(err, consumer.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start() = %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
}

// value reads a counter's or a gauge's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

type lazy func() any

func (l lazy) String() string { return fmt.Sprint(l()) }

// TestLagCountsPending: an event taken and not acknowledged (its publish
// failed, its retry far off) counts in the lag, as do events not yet taken.
func TestLagCountsPending(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := b.setup(t)
			hub := newRecorder()
			hub.fail["room.stuck"] = true
			c := start(t, e, hub, "node-a", func(o *consumer.Options, _ *consumer.Consumer) {
				if o != nil {
					o.Backoff = []time.Duration{time.Minute}
					if o.Redis != nil {
						o.Redis.MinIdle = time.Minute
					}
				}
			})
			e.add(t, `{"id":"s1","room":"stuck","body":"x"}`)
			e.add(t, `{"id":"s2","room":"stuck","body":"y"}`)
			testutil.Eventually(t, 20*time.Second, func() bool { return c.Stats().Lag == 2 && hub.tries("room.stuck") >= 2 },
				"the two events taken and not acknowledged count in the lag; stats %+v", lazy(func() any { return c.Stats() }))
		})
	}
}

// TestEventsBeforeStart: a consumer whose durable consumer or group is new
// reads the stream from its first event.
func TestEventsBeforeStart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := b.setup(t)
			hub := newRecorder()
			if b.name == "redis" {
				// The stream exists before the group.
				e.add(t, `{"id":"b0","room":"early","body":"zero"}`)
			}
			e.add(t, `{"id":"b1","room":"early","body":"first"}`)
			start(t, e, hub, "node-a", nil)
			want := map[string]int{"nats": 1, "redis": 2}[b.name]
			testutil.Eventually(t, 20*time.Second, func() bool { return hub.count("room.early") == want }, "the events added before the start arrive")
		})
	}
}

// TestDeadLetterNotWrittenStaysPending: while the dead-letter stream cannot
// be written (its key holds a string), the event stays pending; once it can,
// the next delivery dead-letters it. Nothing is dropped.
func TestDeadLetterNotWrittenStaysPending(t *testing.T) {
	srv := testutil.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Set(bounded(t), "orders:dead", "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	hub := newRecorder()
	c := start(t, engine{source: func(t *testing.T, o *consumer.Options) {
		o.Redis = &consumer.RedisSource{Client: rdb, Stream: "orders", MinIdle: 200 * time.Millisecond}
	}}, hub, "node-a", nil)
	if err := rdb.XAdd(bounded(t), &redis.XAddArgs{Stream: "orders", Values: map[string]any{"data": `{"id":"x"}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		p, err := rdb.XPending(bounded(t), "orders", "switchboard-orders").Result()
		return err == nil && p.Count == 1 && p.Higher != "" && c.Stats().Retries == 0
	}, "the event stays pending")
	var pend []redis.XPendingExt
	testutil.Eventually(t, 20*time.Second, func() bool {
		var err error
		pend, err = rdb.XPendingExt(bounded(t), &redis.XPendingExtArgs{Stream: "orders", Group: "switchboard-orders", Start: "-", End: "+", Count: 10}).Result()
		return err == nil && len(pend) == 1 && pend[0].RetryCount >= 2
	}, "the event is delivered again while the dead letter cannot be written")
	if st := c.Stats(); st.DeadLetters != 0 {
		t.Fatalf("stats %+v: counted a dead letter that was not written", st)
	}
	if err := rdb.Del(bounded(t), "orders:dead").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		n, err := rdb.XLen(bounded(t), "orders:dead").Result()
		return err == nil && n == 1 && c.Stats().DeadLetters == 1
	}, "the event is dead-lettered once the stream can be written")
}

// TestDeadLetterDropsJetStreamHeaders: an event published with JetStream's
// own headers (an expected stream and last sequence, a message ID) is
// dead-lettered all the same, those headers kept under another name; as
// they are, JetStream would refuse the dead letter and leave the event
// pending.
func TestDeadLetterDropsJetStreamHeaders(t *testing.T) {
	e := backends[0].setup(t)
	hub := newRecorder()
	var js jetstream.JetStream
	start(t, e, hub, "node-a", func(o *consumer.Options, _ *consumer.Consumer) {
		if o != nil {
			js = o.NATS.JS
		}
	})
	m := nats.NewMsg("orders.new")
	m.Data = []byte(`{"id":"h1","body":"no room"}`)
	m.Header.Set("Trace", "t-1")
	if _, err := js.PublishMsg(bounded(t), m, jetstream.WithExpectStream("ORDERS"), jetstream.WithExpectLastSequence(0),
		jetstream.WithMsgID("h1")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return len(e.dead(t)) == 1 }, "the event is dead-lettered")
	s, err := js.Stream(bounded(t), "SWITCHBOARD_DEAD_orders")
	if err != nil {
		t.Fatal(err)
	}
	dm, err := s.GetMsg(bounded(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Trace": "t-1",
		"Switchboard-Original-Nats-Expected-Stream":        "ORDERS",
		"Switchboard-Original-Nats-Expected-Last-Sequence": "0",
		"Switchboard-Original-Nats-Msg-Id":                 "h1",
		"Nats-Expected-Stream":                             "",
		"Nats-Expected-Last-Sequence":                      "",
		"Nats-Msg-Id":                                      "",
	}
	for k, v := range want {
		if got := dm.Header.Get(k); got != v {
			t.Errorf("dead letter's header %s = %q, want %q", k, got, v)
		}
	}
}

// TestReplicasReachWhatIsCreated: each stream and bucket the consumer
// creates asks for Replicas servers, which a single server refuses: the
// stream read when missing, the dead-letter stream, the idempotency keys.
func TestReplicasReachWhatIsCreated(t *testing.T) {
	srv := testutil.StartNATS(t)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: "HAS_STREAM", Subjects: []string{"has.>"}},
		{Name: "HAS_DEAD", Subjects: []string{"both.>"}},
		{Name: "DEAD", Subjects: []string{"dead.both"}},
	} {
		if _, err := js.CreateStream(bounded(t), sc); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, stream, subject, dead, want string
	}{
		{"missing stream", "NEW", "new.>", "", "stream NEW"},
		{"dead-letter stream", "HAS_STREAM", "has.>", "", "dead-letter stream"},
		{"idempotency keys", "HAS_DEAD", "both.>", "dead.both", "idempotency keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := consumer.Options{Name: "r" + strings.ReplaceAll(tt.name, " ", "_"), Hub: newRecorder(), Topic: mustTemplate(t, "$.room"),
				NATS: &consumer.NATSSource{JS: js, Stream: tt.stream, Subjects: []string{tt.subject}, DeadLetter: tt.dead, Replicas: 3}}
			c, err := consumer.Start(bounded(t), o)
			if err == nil {
				_ = c.Close()
				t.Fatalf("Start with 3 replicas on a single server succeeded, want the %s refused", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(strings.ToLower(err.Error()), "replicas") {
				t.Errorf("Start() = %v, want %s refused for its replicas", err, tt.want)
			}
			o.NATS.Replicas = 1
			c, err = consumer.Start(bounded(t), o)
			if err != nil {
				t.Fatalf("Start with 1 replica: %v", err)
			}
			_ = c.Close()
		})
	}
}

// TestIsWrongRevision: every error JetStream answers an update whose
// revision moved on is a lost race, which the claim tries again; others are not.
func TestIsWrongRevision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"key exists", jetstream.ErrKeyExists, true},
		{"wrong last sequence", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{"wrong last sequence, constant", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}, true},
		{"wrapped", fmt.Errorf("update: %w", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		{"other API error", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound}, false},
		{"timeout", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := consumer.IsWrongRevisionForTest(tt.err); got != tt.want {
				t.Errorf("isWrongRevision(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestReclaimReadsEachDeliveryCount: entries claimed from a stopped node
// get their own delivery count, though this node's other pending entries
// (fresh, not claimed) lie between them; delivered more than maxDeliver
// times already, each is dead-lettered, none published.
func TestReclaimReadsEachDeliveryCount(t *testing.T) {
	srv := testutil.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := bounded(t)
	if err := rdb.XGroupCreateMkStream(ctx, "orders", "switchboard-orders", "0").Err(); err != nil {
		t.Fatal(err)
	}
	const n = 11
	for i := range n {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "orders", Values: map[string]any{
			"data": fmt.Sprintf(`{"id":"e%d","room":"r%d","body":"b"}`, i, i%2)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "switchboard-orders", Consumer: "node-x",
		Streams: []string{"orders", ">"}, Count: n}).Result()
	if err != nil || len(read[0].Messages) != n {
		t.Fatalf("XREADGROUP: %v, %v", read, err)
	}
	for i, m := range read[0].Messages {
		// Even entries: node-x's, long idle, delivered 3 times. Odd ones:
		// node-a's, just taken, not yet claimable.
		args := []any{"XCLAIM", "orders", "switchboard-orders", "node-x", 0, m.ID, "IDLE", 600000, "RETRYCOUNT", 3}
		if i%2 == 1 {
			args = []any{"XCLAIM", "orders", "switchboard-orders", "node-a", 0, m.ID}
		}
		if err := rdb.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	hub := newRecorder()
	c := start(t, engine{source: func(t *testing.T, o *consumer.Options) {
		o.Redis = &consumer.RedisSource{Client: rdb, Stream: "orders", MinIdle: time.Minute}
	}}, hub, "node-a", func(o *consumer.Options, _ *consumer.Consumer) {
		if o != nil {
			o.MaxDeliver = 3
		}
	})
	testutil.Eventually(t, 20*time.Second, func() bool { return c.Stats().DeadLetters+c.Stats().Consumed >= (n+1)/2 },
		"the claimed entries are handled; stats %+v", lazy(func() any { return c.Stats() }))
	if got := hub.count("room.r0"); got != 0 {
		t.Errorf("published %d claimed entries, want 0: each was delivered more than maxDeliver times", got)
	}
	entries, err := rdb.XRange(ctx, "orders:dead", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != (n+1)/2 {
		t.Fatalf("%d dead letters, want %d", len(entries), (n+1)/2)
	}
	for _, e := range entries {
		if e.Values["deliveries"] != "4" {
			t.Errorf("dead letter of %v: deliveries %v, want 4 (3, and the claim)", e.Values["id"], e.Values["deliveries"])
		}
	}
}

// TestReclaimPace: a node scans the pending entries at most every
// minIdle/2, and not more than once a second however short minIdle is.
// Only the upper bound is checked: a loaded machine makes fewer calls,
// never more. That the scan happens at all is shown by the reclaim tests.
func TestReclaimPace(t *testing.T) {
	tests := []struct {
		name    string
		minIdle time.Duration
		max     int // XAUTOCLAIM calls within the 3s watched
	}{
		{"short minIdle", 200 * time.Millisecond, 4},
		{"long minIdle", 8 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testutil.StartRedis(t)
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { _ = rdb.Close() })
			calls := func() int {
				info, err := rdb.Info(bounded(t), "commandstats").Result()
				if err != nil {
					t.Fatal(err)
				}
				var n int
				for _, line := range strings.Split(info, "\n") {
					if strings.HasPrefix(line, "cmdstat_xautoclaim:calls=") {
						_, _ = fmt.Sscanf(strings.TrimPrefix(line, "cmdstat_xautoclaim:calls="), "%d", &n)
					}
				}
				return n
			}
			start(t, engine{source: func(t *testing.T, o *consumer.Options) {
				o.Redis = &consumer.RedisSource{Client: rdb, Stream: "orders", MinIdle: tt.minIdle}
			}}, newRecorder(), "node-a", nil)
			testutil.Eventually(t, 10*time.Second, func() bool { return calls() >= 1 }, "the first claim at the start")
			before := calls()
			time.Sleep(3 * time.Second) // the window whose claims are counted
			if got := calls() - before; got > tt.max {
				t.Errorf("minIdle %v: %d claims in 3s, want at most %d", tt.minIdle, got, tt.max)
			}
		})
	}
}
