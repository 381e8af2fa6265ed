// Package loadgen is `switchboard bench`, the load generator shipped with the
// binary: users load-test their own deployments with it, and the suite in
// bench/ compares the gateway with a bare WebSocket server and with a server
// on the centrifuge library, whose client protocol conns, echo and fanout
// also speak (--protocol centrifuge). It owns the five
// workloads (conns, echo, fanout, mgmt, start), their flags and their output:
// progress on stderr at most once a second and one JSON line of figures on
// stdout, the inputs echoed.
//
// Every run stops by itself: each size flag has a hard cap, --duration
// (default 60s) ends a run early and marks its result truncated, and every
// connection and goroutine is closed before Main returns. Only loopback
// targets are loaded unless --allow-remote is given.
package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
)

// Help is the help text of `switchboard bench`.
var Help = &cli.Help{
	Usage: []string{"switchboard bench <workload> [flags]"},
	Text: `Loads a Switchboard gateway (or any server speaking the API Gateway WebSocket
contract) and prints one JSON line of figures on stdout; progress goes to
stderr, at most once a second. Every run is bounded: --duration (default 60s)
ends it early and the result says "truncated": true, and each size flag has a
hard cap. Only loopback targets are loaded unless --allow-remote is given.
The exit status is non-zero when a request, dial or delivery failed.

Workloads:
  conns    open -n connections, --concurrency dials at a time, spreading source
           addresses over 127.0.0.2... with --sources; connections/s and, with
           --pid, the server's CPU time, RSS (and goroutines) per connection
  echo     -c connections each send -m messages of -s bytes through a route
           that replies (--route template); messages/s and round-trip latency
  fanout   --subscribers receive --messages broadcasts, or publishes to
           --topic, sent over WebSocket or the management API (--via);
           deliveries/s, delivery latency, lost and duplicated deliveries
  mgmt     -c workers POST -n PostToConnection requests over keep-alive HTTP
           to open connections that read and discard; requests/s and latency
  start    starts a server command and measures the time until its first
           handshake, its first message's round trip and a warm one's

Given --pid, the server's process on this machine (Linux), every workload
also reports the server's CPU time per unit of work over its measured phase.

conns, echo and fanout also speak the client protocol of the centrifuge
library (Centrifugo's core), JSON over WebSocket, with --protocol centrifuge:
a connection is open once its connect command is answered, echo calls the
RPC method "echo" with the payload, and fanout subscribes to a channel
(--topic, default "bench") and publishes in it, over WebSocket or, --via
mgmt, with POST --mgmt-url/api/publish.

echo and fanout --via ws send faster than a gateway's default per-connection
message rate (limits.messageRate, 100/s): give the gateway under test
limits: {messageRate: unlimited}, or the extra messages are refused.

Run 'switchboard bench <workload> -h' for a workload's flags.`,
	Examples: []string{
		`switchboard bench conns --url ws://127.0.0.1:3001 -n 100 --hold 1s`,
		`switchboard bench mgmt --mgmt-url http://127.0.0.1:3001 -n 1000`,
	},
}

// ErrRemote is returned for a target that is not a loopback address when
// --allow-remote was not given.
var ErrRemote = errors.New("bench: not a loopback address (pass --allow-remote to load a remote host)")

// Bounds shared by the workloads.
const (
	defaultURL         = "ws://127.0.0.1:3001"
	defaultDuration    = 60 * time.Second
	maxDuration        = time.Hour
	maxConcurrency     = 10_000
	maxSources         = 49 // 127.0.0.2 … 127.0.0.50
	maxSize            = 1 << 20
	handshakeTimeout   = 10 * time.Second
	closeConcurrency   = 256
	measureTimeout     = 10 * time.Second
	defaultSettle      = 5 * time.Second
	maxSettle          = time.Minute
	maxResponseBytes   = 64 << 20
	progressInterval   = time.Second
	userAgentPrefix    = "switchboard-bench"
	firstErrorMaxBytes = 300
)

// Main runs the workload named by args[0] with the flags that follow; getenv
// supplies SWITCHBOARD_TOKEN. The result line goes to stdout, progress and
// help to stderr. It returns an error when the run could not start, was
// interrupted through ctx, or saw failures (the result line is printed
// first); a run cut short by --duration is not a failure.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		return cli.Usagef("bench: no workload given (conns, echo, fanout, mgmt or start; see 'switchboard bench --help')")
	}
	var run func(context.Context, []string, func(string) string, io.Writer, io.Writer) error
	switch args[0] {
	case "conns":
		run = conns
	case "echo":
		run = echo
	case "fanout":
		run = fanout
	case "mgmt":
		run = mgmt
	case "start":
		run = start
	case "help", "-h", "--help":
		Help.Write(stdout, nil)
		return nil
	default:
		return cli.Usagef("bench: unknown workload %q (conns, echo, fanout, mgmt or start)", args[0])
	}
	if err := run(ctx, args[1:], getenv, stdout, stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("bench %s: %w", args[0], err)
	} else if err != nil {
		return err
	}
	return nil
}

// Which of the shared flags a workload takes.
const (
	flagWS    = 1 << iota // --url
	flagMgmt              // --mgmt-url, --token
	flagDial              // --concurrency, --sources
	flagURLs              // --url may list several gateways (the nodes of a cluster)
	flagProto             // --protocol
)

// target holds the shared flags: where to send load and how.
type target struct {
	url         string
	urls        []string // with flagURLs: every --url, the first also in url
	mgmtURL     string
	duration    time.Duration
	allowRemote bool
	sources     int
	concurrency int
	token       string
	protocol    string // with flagProto: protoAPIGW or protoCentrifuge
}

func (t *target) register(fs *flag.FlagSet, getenv func(string) string, which int) {
	if which&flagURLs != 0 {
		fs.StringVar(&t.url, "url", "", "WebSocket URL of the gateway (default "+defaultURL+", or the --mgmt-url's host); "+
			"several, comma separated (the nodes of a cluster): connections are spread over them in turn, and the first is the one sent to")
	} else if which&flagWS != 0 {
		fs.StringVar(&t.url, "url", "", "WebSocket URL of the gateway (default "+defaultURL+", or the --mgmt-url's host)")
	}
	if which&flagMgmt != 0 {
		fs.StringVar(&t.mgmtURL, "mgmt-url", "", "management API base URL, before /@connections (default: --url with http for ws)")
		fs.StringVar(&t.token, "token", getenv("SWITCHBOARD_TOKEN"), `bearer token sent to the management API (env SWITCHBOARD_TOKEN)`)
	}
	if which&flagDial != 0 {
		fs.IntVar(&t.concurrency, "concurrency", 100, fmt.Sprintf("WebSocket dials in flight at a time (at most %d)", maxConcurrency))
		fs.IntVar(&t.sources, "sources", 0, fmt.Sprintf("spread client source addresses over 127.0.0.2 … 127.0.0.(1+N), to pass the ~28k ephemeral ports of one address (at most %d; 0: the kernel's choice)", maxSources))
	}
	if which&flagProto != 0 {
		fs.StringVar(&t.protocol, "protocol", protoAPIGW, "the client protocol: "+protoAPIGW+
			" (the API Gateway WebSocket contract) or "+protoCentrifuge+" (the centrifuge library's, JSON)")
	}
	fs.DurationVar(&t.duration, "duration", defaultDuration, "hard cap on the run's time; a run cut short reports \"truncated\": true (at most 1h)")
	fs.DurationVar(&t.duration, "timeout", defaultDuration, "the same as --duration")
	fs.BoolVar(&t.allowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
}

// check validates the shared flags and fills the derived URLs.
func (t *target) check(ctx context.Context, which int) error {
	if t.duration <= 0 || t.duration > maxDuration {
		return cli.Usagef("--duration %s: want more than 0 and at most %s", t.duration, maxDuration)
	}
	if which&flagProto != 0 && t.protocol != protoAPIGW && t.protocol != protoCentrifuge {
		return fmt.Errorf("bench: --protocol %q: want %s or %s", t.protocol, protoAPIGW, protoCentrifuge)
	}
	if which&flagWS != 0 {
		if t.url == "" && t.mgmtURL != "" {
			t.url = swapScheme(t.mgmtURL, map[string]string{"http": "ws", "https": "wss"})
		}
		if t.url == "" {
			t.url = defaultURL
		}
		t.urls = []string{t.url}
		if which&flagURLs != 0 {
			t.urls = strings.Split(t.url, ",")
			for i := range t.urls {
				t.urls[i] = strings.TrimSpace(t.urls[i])
			}
			t.url = t.urls[0]
		}
		for _, u := range t.urls {
			if err := checkURL(ctx, "--url", u, []string{"ws", "wss"}, t.allowRemote); err != nil {
				return err
			}
		}
	}
	if which&flagMgmt != 0 {
		if t.mgmtURL == "" {
			base := t.url
			if base == "" {
				base = defaultURL
			}
			t.mgmtURL = swapScheme(base, map[string]string{"ws": "http", "wss": "https"})
		}
		t.mgmtURL = strings.TrimRight(t.mgmtURL, "/")
		if err := checkURL(ctx, "--mgmt-url", t.mgmtURL, []string{"http", "https"}, t.allowRemote); err != nil {
			return err
		}
	}
	if which&flagDial != 0 {
		if t.concurrency < 1 || t.concurrency > maxConcurrency {
			return cli.Usagef("--concurrency %d: want 1 to %d", t.concurrency, maxConcurrency)
		}
		if t.sources < 0 || t.sources > maxSources {
			return cli.Usagef("--sources %d: want 0 to %d", t.sources, maxSources)
		}
		for _, raw := range t.urls {
			if t.sources == 0 {
				break
			}
			u, _ := url.Parse(raw) // checked above
			ip := net.ParseIP(u.Hostname())
			if u.Hostname() != "localhost" && (ip == nil || ip.To4() == nil || !ip.IsLoopback()) {
				return cli.Usagef("--sources needs a 127.x.x.x or localhost target, not %q", u.Hostname())
			}
		}
	}
	return nil
}

// urlList returns every --url when there are several, nil otherwise.
func (t *target) urlList() []string {
	if len(t.urls) < 2 {
		return nil
	}
	return t.urls
}

// swapScheme replaces raw's scheme by its image in m; raw is returned as is
// when its scheme is not in m.
func swapScheme(raw string, m map[string]string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if to, found := m[strings.ToLower(scheme)]; ok && found {
		return to + "://" + rest
	}
	return raw
}

// checkURL parses raw and refuses a host that is not loopback unless
// allowRemote. A name is resolved and every address must be loopback.
func checkURL(ctx context.Context, name, raw string, schemes []string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	okScheme := false
	for _, s := range schemes {
		okScheme = okScheme || u.Scheme == s
	}
	if !okScheme || u.Host == "" {
		return fmt.Errorf("%s %q: want a %s URL", name, raw, strings.Join(schemes, " or "))
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s %s", ErrRemote, name, raw)
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%s: resolve %s: %w", name, host, err)
	}
	for _, a := range addrs {
		if !a.IsLoopback() {
			return fmt.Errorf("%w: %s %s resolves to %s", ErrRemote, name, raw, a)
		}
	}
	return nil
}

// newFlagSet returns a flag set for a workload: it prints nothing itself.
func newFlagSet(name string) *flag.FlagSet { return cli.NewFlagSet("bench " + name) }

// parseFlags parses a workload's flags: -h prints help on stdout.
func parseFlags(fs *flag.FlagSet, args []string, help *cli.Help, stdout io.Writer) error {
	if err := cli.ParseFlags(fs, args, help, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// checkRange reports a flag outside [lo, hi].
func checkRange(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return cli.Usagef("%s %d: want %d to %d", name, v, lo, hi)
	}
	return nil
}

// report is the part of every result line common to all workloads.
type report struct {
	Workload   string   `json:"workload"`
	Protocol   string   `json:"protocol,omitempty"` // for the workloads that take --protocol
	URL        string   `json:"url,omitempty"`
	URLs       []string `json:"urls,omitempty"` // when --url named several
	MgmtURL    string   `json:"mgmt_url,omitempty"`
	Started    string   `json:"started"`
	Duration   float64  `json:"duration_s"` // the cap
	Elapsed    float64  `json:"elapsed_s"`
	Truncated  bool     `json:"truncated"`
	Errors     int64    `json:"errors"`
	FirstError string   `json:"first_error,omitempty"`
}

// run is the frame of one workload run: its deadline, its error count, its
// progress line and its result.
type run struct {
	name   string
	t      *target
	start  time.Time
	stderr io.Writer

	errs  atomic.Int64
	mu    sync.Mutex
	first error
}

func newRun(name string, t *target, stderr io.Writer) *run {
	return &run{name: name, t: t, start: time.Now(), stderr: stderr}
}

// fail counts a failure and keeps the first one's text.
func (r *run) fail(err error) {
	r.errs.Add(1)
	r.mu.Lock()
	if r.first == nil {
		r.first = err
	}
	r.mu.Unlock()
}

func (r *run) report(truncated bool) report {
	rep := report{
		Workload:  r.name,
		Protocol:  r.t.protocol,
		URL:       r.t.url,
		URLs:      r.t.urlList(),
		MgmtURL:   r.t.mgmtURL,
		Started:   r.start.UTC().Format(time.RFC3339),
		Duration:  r.t.duration.Seconds(),
		Elapsed:   round(time.Since(r.start).Seconds(), 3),
		Truncated: truncated,
		Errors:    r.errs.Load(),
	}
	r.mu.Lock()
	if r.first != nil {
		rep.FirstError = r.first.Error()
		if len(rep.FirstError) > firstErrorMaxBytes {
			rep.FirstError = rep.FirstError[:firstErrorMaxBytes] + "…"
		}
	}
	r.mu.Unlock()
	return rep
}

// progress prints line() to stderr every second until the returned stop is
// called; stop waits for the printing goroutine and may be called again.
func (r *run) progress(line func() string) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(r.stderr, "bench %s: %s (%s)\n", r.name, line(), time.Since(r.start).Round(time.Second))
			}
		}
	}()
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// finish prints result as one JSON line and returns the run's error: ctx's
// when the caller cancelled it, a summary of failures otherwise.
func (r *run) finish(ctx context.Context, stdout io.Writer, result any, failures []string) error {
	b, err := json.Marshal(result)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := r.errs.Load(); n > 0 {
		r.mu.Lock()
		first := r.first
		r.mu.Unlock()
		failures = append([]string{fmt.Sprintf("%d errors (first: %v)", n, first)}, failures...)
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// since returns nanoseconds from base on the monotonic clock: timestamps
// embedded in payloads are relative to it.
func since(base time.Time) int64 { return int64(time.Since(base)) }

// perSecond returns n/seconds, 0 when no time passed.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round(float64(n)/d.Seconds(), 1)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// dialer opens WebSocket client connections, rotating over the source
// addresses, and begins the session of the protocol spoken. It is safe for
// concurrent use; close releases its transports.
type dialer struct {
	proto      string // protoAPIGW or protoCentrifuge; empty is protoAPIGW
	clients    []*http.Client
	transports []*http.Transport
	next       atomic.Uint64
}

func newDialer(sources int, proto string) *dialer {
	d := &dialer{proto: proto}
	for i := range max(sources, 1) {
		nd := &net.Dialer{Timeout: handshakeTimeout}
		if sources > 0 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
			// Let connect() pick the port for the whole 4-tuple: a bind()
			// would reserve it for every destination, and ports lingering in
			// TIME_WAIT could not be reused.
			nd.Control = bindAddressNoPort
		}
		tr := &http.Transport{
			DialContext:         nd.DialContext,
			TLSHandshakeTimeout: handshakeTimeout,
			DisableCompression:  true,
		}
		d.transports = append(d.transports, tr)
		d.clients = append(d.clients, &http.Client{Transport: tr})
	}
	return d
}

// dial opens one connection with an unlimited read limit and, in the
// centrifuge protocol, sends the connect command and waits for its reply;
// the handshake is bounded by handshakeTimeout and ctx.
func (d *dialer) dial(ctx context.Context, u string, header http.Header) (*websocket.Conn, error) {
	i := d.next.Add(1) - 1
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: d.clients[i%uint64(len(d.clients))],
		HTTPHeader: header,
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(-1)
	if d.proto == protoCentrifuge {
		if err := cfHandshake(ctx, c); err != nil {
			_ = c.CloseNow()
			return nil, err
		}
	}
	return c, nil
}

func (d *dialer) close() {
	for _, tr := range d.transports {
		tr.CloseIdleConnections()
	}
}

// closeAll closes every non-nil connection with a normal close handshake,
// closeConcurrency at a time, and returns when all are closed.
func closeAll(conns []*websocket.Conn) {
	sem := make(chan struct{}, closeConcurrency)
	var wg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.Close(websocket.StatusNormalClosure, "")
		}()
	}
	wg.Wait()
}

// userAgent returns the User-Agent header of the bench's connections.
func userAgent(suffix string) http.Header {
	h := http.Header{}
	h.Set("User-Agent", userAgentPrefix+suffix)
	return h
}

// waitGroupDone returns a channel closed when wg's count reaches zero. The
// goroutine it starts ends then too, so wg must reach zero eventually.
func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// sleep waits for d or ctx, whichever ends first, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
