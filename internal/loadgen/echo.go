package loadgen

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
)

var echoHelp = &cli.Help{
	Usage: []string{"switchboard bench echo [flags]"},
	Text: `Opens -c connections; once all are open, each sends -m text messages through
a route that answers every message (the gateway's echo integration, a mock,
or a two-way Lambda route that returns the body), with at most --window
messages waiting for their answer; with --any-order, the answers of one
connection may come in any order (a route that runs a connection's messages
concurrently), each counted once. A message is --route with %s replaced by a
payload of -s bytes carrying the connection's sequence number and the send
time, which the answer must contain. With --protocol centrifuge, a message
is an rpc command calling the method "echo" with the payload, and --route is
not taken. Reports messages/s (answers received, from the first
send to the last answer) and the round-trip latency; given --pid (the server,
on this machine), its CPU time (/proc/PID/stat, Linux) per answered message.

A gateway without configuration has no echo route, but its sendMessage
broadcasts to every connection, the sender included: with one connection
(-c 1), each message comes back to its sender.`,
	Examples: []string{
		`switchboard bench echo --url ws://127.0.0.1:3001 -c 1 -m 50 -s 100 --route '{"action":"sendMessage","data":"%s"}'`,
	},
}

const (
	maxEchoConns    = 50_000
	maxEchoMessages = 10_000_000
	maxEchoTotal    = 100_000_000
	maxWindow       = 10_000
)

type echoResult struct {
	report
	Connections int    `json:"connections"`
	Messages    int    `json:"messages"` // per connection
	Size        int    `json:"size"`
	Route       string `json:"route"`
	Window      int    `json:"window"`
	AnyOrder    bool   `json:"any_order,omitempty"`
	Concurrency int    `json:"concurrency"`
	Sources     int    `json:"sources"`
	PID         int    `json:"pid,omitempty"`

	Opened     int64   `json:"opened"`
	Sent       int64   `json:"sent"`
	Received   int64   `json:"received"`   // answers carrying the expected sequence number
	Unexpected int64   `json:"unexpected"` // other frames, except other senders' payloads
	Foreign    int64   `json:"foreign"`    // payloads of other senders, ignored
	Lost       int64   `json:"lost"`       // sent and never answered, when not truncated
	Seconds    float64 `json:"messaging_s"`
	MsgsPerSec float64 `json:"msgs_per_s"`
	Latency    latency `json:"latency_ms"`

	ServerCPU       *float64 `json:"server_cpu_s,omitempty"` // over the messages
	ServerCPUPerMsg *float64 `json:"server_cpu_us_per_message,omitempty"`
}

func echo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("echo")
	var t target
	t.register(fs, getenv, flagWS|flagDial|flagProto)
	conns := fs.Int("c", 50, fmt.Sprintf("connections (at most %d)", maxEchoConns))
	msgs := fs.Int("m", 1000, fmt.Sprintf("messages per connection (at most %d; c×m at most %d)", maxEchoMessages, maxEchoTotal))
	size := fs.Int("s", 100, fmt.Sprintf("payload bytes put in place of %%s (at most %d)", maxSize))
	tmpl := fs.String("route", "%s", `message template; %s is replaced by the payload, e.g. '{"action":"echo","data":"%s"}'`)
	window := fs.Int("window", 1, fmt.Sprintf("messages of one connection waiting for their answer (at most %d)", maxWindow))
	anyOrder := fs.Bool("any-order", false, "accept one connection's answers in any order, each once (a concurrent route)")
	pid := fs.Int("pid", 0, "process ID of the server, on this machine: report its CPU time per message")
	if err := parseFlags(fs, args, echoHelp, stdout); err != nil {
		return err
	}
	if err := t.check(ctx, flagWS|flagDial|flagProto); err != nil {
		return err
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{{"-c", *conns, 1, maxEchoConns}, {"-m", *msgs, 1, maxEchoMessages}, {"-s", *size, 0, maxSize}, {"--window", *window, 1, maxWindow}} {
		if err := checkRange(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if int64(*conns)*int64(*msgs) > maxEchoTotal {
		return cli.Usagef("-c × -m = %d: want at most %d", int64(*conns)*int64(*msgs), maxEchoTotal)
	}
	if t.protocol == protoCentrifuge {
		routeSet := false
		fs.Visit(func(f *flag.Flag) { routeSet = routeSet || f.Name == "route" })
		if routeSet {
			return fmt.Errorf("bench: --route: not taken with --protocol %s (messages are rpc commands calling %q)", protoCentrifuge, cfEchoMethod)
		}
		*tmpl = `{"id":N,"rpc":{"method":"` + cfEchoMethod + `","data":"%s"}}`
	}
	prefix, suffix, ok := strings.Cut(*tmpl, "%s")
	if !ok || strings.Contains(suffix, "%s") {
		return cli.Usagef("--route %q: want exactly one %%s", *tmpl)
	}

	r := newRun("echo", &t, stderr)
	e := &echoRun{run: r, proto: t.protocol, prefix: prefix, suffix: suffix, size: *size, msgs: *msgs, window: *window, anyOrder: *anyOrder, tag: newTag()}
	res := echoResult{Connections: *conns, Messages: *msgs, Size: *size, Route: *tmpl, Window: *window, AnyOrder: *anyOrder,
		Concurrency: t.concurrency, Sources: t.sources, PID: *pid}
	cpu := cpuMeter{run: r, pids: onePID(*pid)}

	runCtx, cancel := context.WithTimeout(ctx, t.duration)
	defer cancel()
	d := newDialer(t.sources, t.protocol)
	defer d.close()
	all := make([]*websocket.Conn, *conns)
	var opened atomic.Int64
	stop := r.progress(func() string {
		if !e.started.Load() {
			return fmt.Sprintf("%d/%d connections open", opened.Load(), *conns)
		}
		return fmt.Sprintf("%d/%d answers, %d unexpected", e.received.Load(), opened.Load()*int64(*msgs), e.unexpected.Load())
	})
	defer stop()

	sem := make(chan struct{}, t.concurrency)
	var dials sync.WaitGroup
	header := userAgent("")
dialing:
	for i := range *conns {
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			break dialing
		}
		dials.Add(1)
		go func() {
			defer dials.Done()
			c, err := d.dial(runCtx, t.url, header)
			<-sem
			if err != nil {
				if runCtx.Err() == nil {
					r.fail(fmt.Errorf("dial: %w", err))
				}
				return
			}
			opened.Add(1)
			all[i] = c
		}()
	}
	dials.Wait()

	var workers sync.WaitGroup
	if runCtx.Err() == nil {
		cpu.begin()
		e.base = time.Now()
		e.started.Store(true)
		for _, c := range all {
			if c == nil {
				continue
			}
			workers.Add(1)
			go func() {
				defer workers.Done()
				e.work(runCtx, c)
			}()
		}
		workers.Wait()
		cpu.end()
	}
	truncated := runCtx.Err() != nil && ctx.Err() == nil
	closeAll(all)
	stop()

	res.Opened = opened.Load()
	res.Sent, res.Received, res.Unexpected = e.sent.Load(), e.received.Load(), e.unexpected.Load()
	res.Foreign = e.foreign.Load()
	elapsed := time.Duration(e.lastAnswer.Load())
	res.Seconds = round(elapsed.Seconds(), 3)
	res.MsgsPerSec = perSecond(res.Received, elapsed)
	res.Latency = e.hist.summary()
	res.ServerCPU, res.ServerCPUPerMsg = cpu.figures(res.Received)
	var failures []string
	if !truncated && ctx.Err() == nil {
		res.Lost = res.Sent - res.Received - res.Unexpected
		if res.Lost > 0 {
			failures = append(failures, fmt.Sprintf("%d messages not answered", res.Lost))
		}
	}
	if res.Unexpected > 0 {
		failures = append(failures, fmt.Sprintf("%d unexpected frames", res.Unexpected))
	}
	res.report = r.report(truncated)
	return r.finish(ctx, stdout, res, failures)
}

// echoRun is the state the connections of one echo run share.
type echoRun struct {
	*run
	proto          string
	prefix, suffix string
	size, msgs     int
	window         int
	anyOrder       bool   // answers of one connection in any order
	tag            string // in every payload of this run

	base       time.Time
	started    atomic.Bool
	sent       atomic.Int64
	received   atomic.Int64
	unexpected atomic.Int64
	foreign    atomic.Int64
	lastAnswer atomic.Int64 // since base
	hist       histogram
}

// work sends msgs messages on c, window at a time, and reads their answers,
// until all are answered or ctx ends; a connection error ends it too (and
// closes c).
func (e *echoRun) work(ctx context.Context, c *websocket.Conn) {
	credits := make(chan struct{}, e.window)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		next := int64(0)
		var answered []bool // with anyOrder: by sequence number
		if e.anyOrder {
			answered = make([]bool, e.msgs)
		}
		for got := 0; got < e.msgs; {
			_, data, err := c.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					e.fail(fmt.Errorf("read: %w", err))
				}
				return
			}
			now := since(e.base)
			eachMessage(e.proto, data, func(msg []byte) {
				if e.proto == protoCentrifuge && isCfPing(msg) {
					if err := cfPong(ctx, c); err != nil && ctx.Err() == nil {
						e.fail(fmt.Errorf("pong: %w", err))
					}
					return
				}
				seq, ts, isPayload, isOurs := ours(msg, e.tag)
				if isPayload && !isOurs {
					e.foreign.Add(1) // another sender's broadcast
					return
				}
				got++
				if isOurs && e.anyOrder && seq >= 0 && seq < int64(len(answered)) && !answered[seq] {
					answered[seq] = true
					e.hist.record(time.Duration(now - ts))
					e.received.Add(1)
					e.lastAnswer.Store(now)
				} else if isOurs && !e.anyOrder && seq == next {
					e.hist.record(time.Duration(now - ts))
					e.received.Add(1)
					e.lastAnswer.Store(now)
					next++
				} else {
					e.unexpected.Add(1)
					e.fail(fmt.Errorf("answer %d: unexpected frame %.100q", next, msg))
				}
				select {
				case <-credits:
				default: // more frames than messages sent: the server's own
				}
			})
		}
	}()
	msg := make([]byte, 0, len(e.prefix)+e.size+len(e.suffix)+40)
	var payload []byte // in the centrifuge protocol
sending:
	for seq := range e.msgs {
		select {
		case credits <- struct{}{}:
		case <-readerDone:
			break sending
		case <-ctx.Done():
			break sending
		}
		if e.proto == protoCentrifuge {
			payload = appendPayload(payload[:0], e.size, int64(seq), since(e.base), e.tag)
			msg = appendCfRPC(msg[:0], uint32(cfFirstID+seq), cfEchoMethod, payload)
		} else {
			msg = append(msg[:0], e.prefix...)
			msg = appendPayload(msg, e.size, int64(seq), since(e.base), e.tag)
			msg = append(msg, e.suffix...)
		}
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			if ctx.Err() == nil {
				e.fail(fmt.Errorf("write: %w", err))
			}
			_ = c.CloseNow() // ends the reader
			break
		}
		e.sent.Add(1)
	}
	<-readerDone
}
