package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
)

var fanoutHelp = &cli.Help{
	Usage: []string{"switchboard bench fanout [flags]"},
	Text: `Opens --subscribers connections. Without --topic each one receives
broadcasts; with --topic each first sends {"action":"subscribe","topic":T}.
Each then sends {"action":"bench.sync"} and waits for any answer (the echo
of a $default route, or the Forbidden frame without one): a connection's
messages are handled in order, so its subscription is then in place. Once
all are ready, --messages payloads of --size bytes, each carrying a sequence
number and its send time, are sent --via ws, by one more connection, as
{"action":"sendMessage","data":PAYLOAD} or {"action":"publish","topic":T,"data":PAYLOAD},
or --via mgmt, as POST /@broadcast or POST /@topics/T with the payload as the
body. Reports deliveries/s (from the first send to the last delivery), the
delivery latency, and deliveries lost (not there --settle after the last one
arrived) or duplicated; given --pid (the server, on this machine), its CPU
time (/proc/PID/stat, Linux) per delivery, from the first send to the end of
the wait for deliveries.

With --protocol centrifuge, each subscriber subscribes to the channel --topic
(default "bench") and is ready once the subscription is answered; the
messages are publish commands in it, sent by one more client that is not
subscribed (--via ws), or POST /api/publish with {"channel":C,"data":PAYLOAD}
(--via mgmt), the server API of the peer in bench/peer-centrifuge.

Against a cluster, --url lists the nodes (comma separated): subscriber i
connects to the i-th modulo their number, and the messages are sent through
the first (over WebSocket, or its management API); --pid lists the nodes'
processes, whose CPU times are summed.

--via jetstream publishes each message to a NATS JetStream subject
(--nats-url, --subject) as the event {"topic":T,"data":PAYLOAD}, for a
gateway whose consumer reads that subject with topic $.topic and data $.data
(docs/events.md): the figures are then from the stream to the subscribers.
Publishing is asynchronous, at most 1000 events awaiting JetStream's
acknowledgement; it needs --topic.

--via putevents sends each message as an EventBridge event, one PutEvents
call of one entry at a time, to the gateway's listener (--mgmt-url): source
--event-source, detail {"topic":T,"data":PAYLOAD}, for a gateway whose rule
matches that source and reaches the topic's subscribers, through a topic
target (topic $.detail.topic, data $.detail.data) or through a queue and a
function that publishes to the topic (docs/events.md): the figures are then
from the PutEvents call to the subscribers. It needs --topic.`,
	Examples: []string{
		`switchboard bench fanout --url ws://127.0.0.1:3001 --subscribers 100 --messages 50 --size 100`,
		`switchboard bench fanout --url ws://127.0.0.1:3001 --subscribers 100 --messages 200 --via mgmt --topic t`,
	},
}

const (
	maxSubscribers     = 500_000
	maxFanoutMessages  = 1_000_000
	maxFanoutDelivered = 1_000_000_000
	syncMessage        = `{"action":"bench.sync"}`
)

type fanoutResult struct {
	report
	Subscribers int     `json:"subscribers"`
	Messages    int     `json:"messages"`
	Size        int     `json:"size"`
	Via         string  `json:"via"`
	Topic       string  `json:"topic,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Settle      float64 `json:"settle_s"`
	Concurrency int     `json:"concurrency"`
	Sources     int     `json:"sources"`
	PID         int     `json:"pid,omitempty"`
	PIDs        []int   `json:"pids,omitempty"` // with more than one: their CPU time is summed

	Subscribed       int64   `json:"subscribed"` // connections ready to receive
	Setup            float64 `json:"setup_s"`    // dials and subscriptions
	Published        int64   `json:"published"`
	Publish          float64 `json:"publish_s"` // sending the messages
	Expected         int64   `json:"expected"`  // subscribed × published
	Delivered        int64   `json:"deliveries"`
	Lost             int64   `json:"lost"`
	Duplicated       int64   `json:"duplicated"`
	Unexpected       int64   `json:"unexpected"` // this run's payloads out of place
	Foreign          int64   `json:"foreign"`    // frames of other senders, ignored
	Incomplete       int64   `json:"incomplete"` // subscribers missing a delivery
	ClosedEarly      int64   `json:"closed_early"`
	Delivery         float64 `json:"delivery_s"` // first send to last delivery
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	Latency          latency `json:"latency_ms"`

	ServerCPU            *float64 `json:"server_cpu_s,omitempty"` // first send to the end of the wait
	ServerCPUPerDelivery *float64 `json:"server_cpu_us_per_delivery,omitempty"`
}

func fanout(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fanout")
	var t target
	t.register(fs, getenv, flagWS|flagMgmt|flagDial|flagURLs|flagProto)
	subs := fs.Int("subscribers", 100, fmt.Sprintf("receiving connections (at most %d)", maxSubscribers))
	msgs := fs.Int("messages", 100, fmt.Sprintf("messages sent (at most %d; subscribers×messages at most %d)", maxFanoutMessages, maxFanoutDelivered))
	size := fs.Int("size", 100, fmt.Sprintf("payload bytes (at most %d)", maxSize))
	via := fs.String("via", "ws", "ws: send over a WebSocket connection; mgmt: through the management API; jetstream: to a JetStream subject a consumer reads; putevents: as EventBridge events a rule delivers")
	eventSource := fs.String("event-source", "switchboard.bench", "the Source of the events --via putevents sends")
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "the NATS server of --via jetstream")
	subject := fs.String("subject", "switchboard.bench", "the subject --via jetstream publishes to")
	topic := fs.String("topic", "", "publish to this topic; empty: broadcast to every connection")
	rate := fs.Float64("rate", 0, "messages sent per second; 0: as fast as the server takes them")
	settle := fs.Duration("settle", defaultSettle, "how long to wait for missing deliveries after the last one arrived")
	var pids pidList
	fs.Var(&pids, "pid", "process ID of the server, on this machine: report its CPU time per delivery; several, comma separated (the nodes of a cluster): their CPU time summed")
	if err := parseFlags(fs, args, fanoutHelp, stdout); err != nil {
		return err
	}
	which := flagWS | flagDial | flagURLs | flagProto
	switch *via {
	case "ws":
	case "mgmt":
		which |= flagMgmt
	case "jetstream":
		if *topic == "" || t.protocol == protoCentrifuge {
			return cli.Usagef("--via jetstream needs --topic, and the gateway's protocol")
		}
		if err := checkURL(ctx, "--nats-url", *natsURL, []string{"nats", "tls"}, t.allowRemote); err != nil {
			return err
		}
	case "putevents":
		if *topic == "" || t.protocol == protoCentrifuge || *eventSource == "" {
			return cli.Usagef("--via putevents needs --topic, --event-source, and the gateway's protocol")
		}
		which |= flagMgmt
	default:
		return cli.Usagef("--via %q: want ws, mgmt, jetstream or putevents", *via)
	}
	if err := t.check(ctx, which); err != nil {
		return err
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{{"--subscribers", *subs, 1, maxSubscribers}, {"--messages", *msgs, 1, maxFanoutMessages}, {"--size", *size, 0, maxSize}} {
		if err := checkRange(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if int64(*subs)*int64(*msgs) > maxFanoutDelivered {
		return cli.Usagef("--subscribers × --messages = %d: want at most %d", int64(*subs)*int64(*msgs), maxFanoutDelivered)
	}
	if *rate < 0 {
		return cli.Usagef("--rate %g: want 0 or more", *rate)
	}
	if *settle <= 0 || *settle > maxSettle {
		return cli.Usagef("--settle %s: want more than 0 and at most %s", *settle, maxSettle)
	}

	r := newRun("fanout", &t, stderr)
	f := &fanoutRun{run: r, proto: t.protocol, msgs: *msgs, base: time.Now(), tag: newTag()}
	res := fanoutResult{Subscribers: *subs, Messages: *msgs, Size: *size, Via: *via, Topic: *topic, Rate: *rate,
		Settle: settle.Seconds(), Concurrency: t.concurrency, Sources: t.sources, PID: pids.first(), PIDs: pids.many()}
	cpu := cpuMeter{run: r, pids: pids}
	var published atomic.Int64
	stop := r.progress(func() string {
		return fmt.Sprintf("%d/%d subscribed, %d/%d published, %d deliveries", f.subscribed.Load(), *subs,
			published.Load(), *msgs, f.delivered.Load())
	})
	defer stop()

	runCtx, cancel := context.WithTimeout(ctx, t.duration)
	defer cancel()
	d := newDialer(t.sources, t.protocol)
	defer d.close()
	all := make([]*websocket.Conn, *subs+1) // the last one publishes --via ws
	var (
		subscribeMsg []byte
		dials        sync.WaitGroup
		ready        sync.WaitGroup // each subscriber until it is ready or failed
	)
	switch {
	case t.protocol == protoCentrifuge:
		if *topic == "" {
			*topic = cfChannel
		}
		subscribeMsg = cfSubscribe(*topic)
		res.Topic = *topic
	case *topic != "":
		subscribeMsg, _ = json.Marshal(map[string]string{"action": "subscribe", "topic": *topic})
	}
	sem := make(chan struct{}, t.concurrency)
	header := userAgent("")
dialing:
	for i := range *subs {
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			break dialing
		}
		dials.Add(1)
		ready.Add(1)
		go func() {
			markReady := sync.OnceFunc(ready.Done)
			defer markReady()
			c, err := d.dial(runCtx, t.urls[i%len(t.urls)], header)
			<-sem
			if err != nil {
				if runCtx.Err() == nil {
					r.fail(fmt.Errorf("dial: %w", err))
				}
				dials.Done()
				return
			}
			all[i] = c
			f.readers.Add(1) // before dials.Done: the caller waits for dials, then readers
			dials.Done()
			defer f.readers.Done()
			f.subscriber(c, subscribeMsg, markReady)
		}()
	}
	dials.Wait()
	readyDone := waitGroupDone(&ready)
	select {
	case <-readyDone:
	case <-runCtx.Done():
	}
	res.Setup = round(time.Duration(since(f.base)).Seconds(), 3)

	var pub publisher
	if runCtx.Err() == nil && f.subscribed.Load() > 0 {
		var err error
		switch *via {
		case "jetstream":
			pub, err = newJetStreamPublisher(*natsURL, *subject, *topic, f.fail)
		case "putevents":
			pub = newEventsPublisher(t.mgmtURL, t.token, *eventSource, *topic)
		default:
			pub, err = f.newPublisher(runCtx, &t, d, *via, *topic, all)
		}
		if err != nil {
			r.fail(err)
		}
	}
	var publishStart, publishEnd int64
	if pub != nil {
		payload := make([]byte, 0, *size+40)
		cpu.begin()
		publishStart = since(f.base)
		for seq := range *msgs {
			if *rate > 0 && !sleep(runCtx, time.Duration(publishStart+int64(float64(seq)*1e9 / *rate)-since(f.base))) {
				break
			}
			if runCtx.Err() != nil {
				break
			}
			payload = appendPayload(payload[:0], *size, int64(seq), since(f.base), f.tag)
			if err := pub.publish(runCtx, payload); err != nil {
				if runCtx.Err() == nil {
					r.fail(fmt.Errorf("publish %d: %w", seq, err))
				}
				if pub.fatal(err) {
					break
				}
				continue
			}
			published.Add(1)
		}
		publishEnd = since(f.base)
		pub.close()
	}

	expected := f.subscribed.Load() * published.Load()
	if runCtx.Err() == nil && expected > 0 {
		f.await(runCtx, expected, *settle)
	}
	cpu.end() // a no-op when nothing was published
	truncated := runCtx.Err() != nil && ctx.Err() == nil
	f.closing.Store(true)
	closeAll(all)
	f.readers.Wait()
	stop()

	res.Subscribed, res.Published, res.Expected = f.subscribed.Load(), published.Load(), expected
	res.Publish = round(time.Duration(publishEnd-publishStart).Seconds(), 3)
	res.Delivered, res.Duplicated, res.Unexpected = f.delivered.Load(), f.duplicated.Load(), f.unexpected.Load()
	res.Foreign = f.foreign.Load()
	if published.Load() > 0 {
		res.Incomplete = f.subscribed.Load() - f.complete(int(published.Load()))
	}
	res.ClosedEarly = f.closedEarly.Load()
	if last := f.lastDelivery.Load(); last > publishStart && publishStart > 0 {
		res.Delivery = round(time.Duration(last-publishStart).Seconds(), 3)
		res.DeliveriesPerSec = perSecond(res.Delivered, time.Duration(last-publishStart))
	}
	res.Latency = f.hist.summary()
	res.ServerCPU, res.ServerCPUPerDelivery = cpu.figures(res.Delivered)
	var failures []string
	if !truncated && ctx.Err() == nil {
		res.Lost = max(expected-res.Delivered, 0)
		if res.Lost > 0 {
			failures = append(failures, fmt.Sprintf("%d deliveries lost", res.Lost))
		}
	}
	if res.Duplicated > 0 {
		failures = append(failures, fmt.Sprintf("%d deliveries duplicated", res.Duplicated))
	}
	if res.ClosedEarly > 0 {
		failures = append(failures, fmt.Sprintf("%d subscribers closed early", res.ClosedEarly))
	}
	res.report = r.report(truncated)
	return r.finish(ctx, stdout, res, failures)
}

// fanoutRun is the state the subscribers of one fanout run share.
type fanoutRun struct {
	*run
	proto string
	msgs  int
	base  time.Time
	tag   string // in every payload of this run

	readers      sync.WaitGroup
	mu           sync.Mutex
	counts       []int // deliveries of each subscriber that stopped reading, after the run
	closing      atomic.Bool
	subscribed   atomic.Int64
	delivered    atomic.Int64 // first deliveries of a sequence number to a subscriber
	duplicated   atomic.Int64
	unexpected   atomic.Int64
	foreign      atomic.Int64
	closedEarly  atomic.Int64
	lastDelivery atomic.Int64 // since base
	hist         histogram
}

// subscriber subscribes c (when subscribeMsg is set), syncs, calls ready,
// then counts deliveries until c is closed.
func (f *fanoutRun) subscriber(c *websocket.Conn, subscribeMsg []byte, ready func()) {
	seen := make([]uint64, (f.msgs+63)/64)
	isReady, got := false, 0
	defer func() {
		if isReady {
			f.mu.Lock()
			f.counts = append(f.counts, got)
			f.mu.Unlock()
		}
	}()
	msgs := [][]byte{subscribeMsg, []byte(syncMessage)}
	if f.proto == protoCentrifuge {
		msgs = msgs[:1] // the subscribe reply says it is in place
	}
	for _, m := range msgs {
		if m == nil {
			continue
		}
		if err := c.Write(context.Background(), websocket.MessageText, m); err != nil {
			f.fail(fmt.Errorf("subscribe: %w", err))
			return
		}
	}
	for {
		_, data, err := c.Read(context.Background())
		if err != nil {
			if !f.closing.Load() {
				f.closedEarly.Add(1)
				f.fail(fmt.Errorf("subscriber: %w", err))
			}
			return
		}
		now := since(f.base)
		refused := false
		eachMessage(f.proto, data, func(msg []byte) {
			if f.proto == protoCentrifuge && isCfPing(msg) {
				if err := cfPong(context.Background(), c); err != nil && !f.closing.Load() {
					f.fail(fmt.Errorf("pong: %w", err))
				}
				return
			}
			seq, ts, isPayload, isOurs := ours(msg, f.tag)
			switch {
			case !isReady && !isPayload: // the answer to the sync message, or the subscribe reply
				if f.proto == protoCentrifuge {
					if _, err := parseCfReply(msg); err != nil {
						f.fail(fmt.Errorf("subscribe: %w", err))
						refused = true
						return
					}
				}
				isReady = true
				f.subscribed.Add(1)
				ready()
			case !isOurs:
				f.foreign.Add(1)
			case !isReady || seq < 0 || seq >= int64(f.msgs):
				f.unexpected.Add(1)
			case seen[seq/64]&(1<<(seq%64)) != 0:
				f.duplicated.Add(1)
			default:
				seen[seq/64] |= 1 << (seq % 64)
				got++
				f.hist.record(time.Duration(now - ts))
				f.lastDelivery.Store(now)
				f.delivered.Add(1)
			}
		})
		if refused {
			return // not subscribed: the connection waits to be closed with the others
		}
	}
}

// complete returns how many subscribers received all of the first n
// messages; call it once the readers are done.
func (f *fanoutRun) complete(n int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var c int64
	for _, got := range f.counts {
		if got >= n {
			c++
		}
	}
	return c
}

// await returns once expected deliveries arrived, when none arrived for
// settle, or when ctx ends.
func (f *fanoutRun) await(ctx context.Context, expected int64, settle time.Duration) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last, changed := f.delivered.Load(), time.Now()
	for last < expected {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n := f.delivered.Load(); n != last {
			last, changed = n, time.Now()
		} else if time.Since(changed) >= settle {
			return
		}
	}
}

// publisher sends one fanout message.
type publisher interface {
	publish(ctx context.Context, payload []byte) error
	// fatal reports whether err ends the publishing.
	fatal(err error) bool
	close()
}

func (f *fanoutRun) newPublisher(ctx context.Context, t *target, d *dialer, via, topic string, all []*websocket.Conn) (publisher, error) {
	if via == "mgmt" {
		p := &mgmtPublisher{url: t.mgmtURL + "/@broadcast", token: t.token,
			client: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
		switch {
		case f.proto == protoCentrifuge:
			ch, _ := json.Marshal(topic)
			p.url = t.mgmtURL + cfPublishPath
			p.prefix = []byte(`{"channel":` + string(ch) + `,"data":"`)
			p.suffix = []byte(`"}`)
		case topic != "":
			p.url = t.mgmtURL + "/@topics/" + url.PathEscape(topic)
		}
		return p, nil
	}
	c, err := d.dial(ctx, t.url, userAgent("/publisher"))
	if err != nil {
		return nil, fmt.Errorf("dial publisher: %w", err)
	}
	all[len(all)-1] = c
	// The publisher receives its own broadcasts: read and discard them. A
	// server that closes it may drop messages it has not read yet.
	// In the centrifuge protocol, it reads the publish replies: an error
	// reply is a failed publish.
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				// A write cut off by the end of the run closes the connection
				// on this side: that is not the server's doing.
				if !f.closing.Load() && ctx.Err() == nil {
					f.fail(fmt.Errorf("publisher connection closed by the server: %w", err))
				}
				return
			}
			if f.proto != protoCentrifuge {
				continue
			}
			eachMessage(f.proto, data, func(msg []byte) {
				if isCfPing(msg) {
					if err := cfPong(context.Background(), c); err != nil && !f.closing.Load() {
						f.fail(fmt.Errorf("publisher pong: %w", err))
					}
					return
				}
				if id, err := parseCfReply(msg); err != nil {
					f.fail(fmt.Errorf("publish %d: %w", int64(id)-cfFirstID, err))
				}
			})
		}
	}()
	if f.proto == protoCentrifuge {
		ch, _ := json.Marshal(topic)
		return &cfPublisher{c: c, channel: ch}, nil
	}
	p := &wsPublisher{c: c}
	if topic != "" {
		t, _ := json.Marshal(topic)
		p.prefix = []byte(`{"action":"publish","topic":` + string(t) + `,"data":"`)
	} else {
		p.prefix = []byte(`{"action":"sendMessage","data":"`)
	}
	return p, nil
}

type wsPublisher struct {
	c      *websocket.Conn
	prefix []byte
	msg    []byte
}

func (p *wsPublisher) publish(ctx context.Context, payload []byte) error {
	p.msg = append(append(append(p.msg[:0], p.prefix...), payload...), `"}`...)
	return p.c.Write(ctx, websocket.MessageText, p.msg)
}

func (p *wsPublisher) fatal(error) bool { return true }
func (p *wsPublisher) close()           {} // closed with the subscribers

type mgmtPublisher struct {
	url, token     string
	client         *http.Client
	prefix, suffix []byte // around the payload in the body; none: the payload is the body
	body           []byte
}

func (p *mgmtPublisher) publish(ctx context.Context, payload []byte) error {
	body := payload
	if p.prefix != nil {
		p.body = append(append(append(p.body[:0], p.prefix...), payload...), p.suffix...)
		body = p.body
	}
	_, err := post(ctx, p.client, p.url, p.token, body)
	return err
}

// fatal: a refused request is counted and publishing goes on; a transport
// error ends it.
func (p *mgmtPublisher) fatal(err error) bool {
	var se *statusError
	return !errors.As(err, &se)
}

func (p *mgmtPublisher) close() { p.client.CloseIdleConnections() }

// statusError is a management API answer other than 2xx.
type statusError struct {
	Status int
	Body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %.200s", e.Status, e.Body) }

// post sends body to u and returns the HTTP status; a non-2xx answer is a *statusError.
func post(ctx context.Context, client *http.Client, u, token string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, &statusError{Status: resp.StatusCode, Body: string(b)}
	}
	_, _ = io.Copy(io.Discard, resp.Body) // keep the connection reusable
	return resp.StatusCode, nil
}
