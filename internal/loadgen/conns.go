package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
)

var connsHelp = &cli.Help{
	Usage: []string{"switchboard bench conns [flags]"},
	Text: `Opens -n WebSocket connections to --url, --concurrency dials at a time, and
keeps them open for --hold after the last one connected; each connection
reads and discards what it receives. Reports connections/s (from the first
dial to the last connect) and the handshake latency. Given --pid (a process
on this machine: the server), reports its CPU time (/proc/PID/stat, Linux)
per connection over the connects, and its RSS (VmRSS) per connection, at the
end of --hold without a forced GC, and again after a GET of --gc-url (the
gateway run with --pprof: http://HOST:PORT/debug/pprof/heap?gc=1); given
--metrics-url, its goroutines per connection. Past ~28k connections, spread
the source addresses with --sources. With --protocol centrifuge, a
connection counts as open once the server answered its connect command.`,
	Examples: []string{
		`switchboard bench conns --url ws://127.0.0.1:3001 -n 200 --hold 1s`,
		`switchboard bench conns --url ws://127.0.0.1:3001 -n 200 --concurrency 50 --sources 2 --hold 1s --pid PID --metrics-url http://127.0.0.1:3001/metrics`,
	},
}

const maxConns = 500_000

type connsResult struct {
	report
	N           int     `json:"n"`
	Concurrency int     `json:"concurrency"`
	Sources     int     `json:"sources"`
	Hold        float64 `json:"hold_s"`
	PID         int     `json:"pid,omitempty"`
	GCURL       string  `json:"gc_url,omitempty"`
	MetricsURL  string  `json:"metrics_url,omitempty"`

	Opened      int64   `json:"opened"`
	Failed      int64   `json:"failed"`
	ClosedEarly int64   `json:"closed_early"` // by the server or the network before the end of the run
	Connect     float64 `json:"connect_s"`    // first dial to last connect
	ConnsPerSec float64 `json:"conns_per_s"`
	Dial        latency `json:"dial_latency_ms"`

	ServerCPU         *float64 `json:"server_cpu_s,omitempty"` // over the connects
	ServerCPUPerConn  *float64 `json:"server_cpu_us_per_conn,omitempty"`
	RSSBefore         int64    `json:"rss_before_bytes,omitempty"`
	RSSHeld           int64    `json:"rss_held_bytes,omitempty"`
	RSSPerConn        float64  `json:"rss_per_conn_bytes,omitempty"`
	RSSAfterGC        int64    `json:"rss_gc_bytes,omitempty"`
	RSSPerConnGC      float64  `json:"rss_per_conn_gc_bytes,omitempty"`
	GoroutinesBefore  int64    `json:"goroutines_before,omitempty"`
	GoroutinesHeld    int64    `json:"goroutines_held,omitempty"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"` // a server may hold none: 0 is a figure
}

func conns(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("conns")
	var t target
	t.register(fs, getenv, flagWS|flagDial|flagProto)
	n := fs.Int("n", 1000, fmt.Sprintf("connections to open (at most %d)", maxConns))
	hold := fs.Duration("hold", 5*time.Second, "how long the connections stay open after the last connect, before measuring")
	pid := fs.Int("pid", 0, "process ID of the server, on this machine: report its CPU time and RSS per connection")
	gcURL := fs.String("gc-url", "", "URL to GET after the first RSS reading, to force a GC in the server; RSS is read again after it")
	metricsURL := fs.String("metrics-url", "", `URL of the server's goroutine count: Prometheus text with go_goroutines, or JSON with "goroutines"`)
	if err := parseFlags(fs, args, connsHelp, stdout); err != nil {
		return err
	}
	if err := t.check(ctx, flagWS|flagDial|flagProto); err != nil {
		return err
	}
	if err := checkRange("-n", *n, 1, maxConns); err != nil {
		return err
	}
	if *hold < 0 || *hold >= t.duration {
		return cli.Usagef("--hold %s: want 0 or more and less than --duration (%s)", *hold, t.duration)
	}
	for _, u := range []struct{ name, url string }{{"--gc-url", *gcURL}, {"--metrics-url", *metricsURL}} {
		if u.url != "" {
			if err := checkURL(ctx, u.name, u.url, []string{"http", "https"}, t.allowRemote); err != nil {
				return err
			}
		}
	}

	r := newRun("conns", &t, stderr)
	res := connsResult{N: *n, Concurrency: t.concurrency, Sources: t.sources, Hold: hold.Seconds(),
		PID: *pid, GCURL: *gcURL, MetricsURL: *metricsURL}
	httpc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer httpc.CloseIdleConnections()
	measure := func(rssOut, gOut *int64) {
		if *pid > 0 {
			v, err := rss(*pid)
			if err != nil {
				r.fail(err)
			}
			*rssOut = v
		}
		if gOut != nil && *metricsURL != "" {
			v, err := goroutines(ctx, httpc, *metricsURL, t.token)
			if err != nil {
				r.fail(err)
			}
			*gOut = v
		}
	}
	measure(&res.RSSBefore, &res.GoroutinesBefore)
	cpu := cpuMeter{run: r, pids: onePID(*pid)}

	runCtx, cancel := context.WithTimeout(ctx, t.duration)
	defer cancel()
	d := newDialer(t.sources, t.protocol)
	defer d.close()
	var (
		opened, failed, closedEarly atomic.Int64
		lastConnect                 atomic.Int64 // since start
		closing                     atomic.Bool
		dials, readers              sync.WaitGroup
		hist                        histogram
	)
	all := make([]*websocket.Conn, *n)
	sem := make(chan struct{}, t.concurrency)
	header := userAgent("")
	stop := r.progress(func() string {
		return fmt.Sprintf("%d/%d opened, %d failed, %d closed early", opened.Load(), *n, failed.Load(), closedEarly.Load())
	})
	cpu.begin()
	start := time.Now()
dialing:
	for i := range *n {
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			break dialing
		}
		dials.Add(1)
		go func() {
			t0 := time.Now()
			c, err := d.dial(runCtx, t.url, header)
			<-sem
			if err != nil {
				if runCtx.Err() == nil {
					failed.Add(1)
					r.fail(fmt.Errorf("dial: %w", err))
				}
				dials.Done()
				return
			}
			hist.record(time.Since(t0))
			opened.Add(1)
			lastConnect.Store(since(start))
			all[i] = c
			readers.Add(1) // before dials.Done: the caller waits for dials, then readers
			dials.Done()
			defer readers.Done()
			for {
				_, data, err := c.Read(context.Background())
				if err == nil {
					err = answerPings(context.Background(), t.protocol, c, data)
				}
				if err != nil {
					if !closing.Load() {
						closedEarly.Add(1)
					}
					return
				}
			}
		}()
	}
	dials.Wait()
	cpu.end()
	connected := time.Duration(lastConnect.Load())

	if runCtx.Err() == nil && opened.Load() > 0 && sleep(runCtx, *hold) {
		measure(&res.RSSHeld, &res.GoroutinesHeld)
		if *gcURL != "" {
			if _, err := httpGet(ctx, httpc, *gcURL, t.token); err != nil {
				r.fail(fmt.Errorf("gc: %w", err))
			}
			measure(&res.RSSAfterGC, nil)
		}
	}
	truncated := runCtx.Err() != nil && ctx.Err() == nil
	closing.Store(true)
	closeAll(all)
	readers.Wait()
	stop()

	res.Opened, res.Failed, res.ClosedEarly = opened.Load(), failed.Load(), closedEarly.Load()
	res.Connect = round(connected.Seconds(), 3)
	res.ConnsPerSec = perSecond(res.Opened, connected)
	res.Dial = hist.summary()
	if res.Opened > 0 {
		perConn := func(after, before int64) float64 {
			if after == 0 {
				return 0
			}
			return round(float64(after-before)/float64(res.Opened), 2)
		}
		res.RSSPerConn = perConn(res.RSSHeld, res.RSSBefore)
		res.RSSPerConnGC = perConn(res.RSSAfterGC, res.RSSBefore)
		if res.GoroutinesHeld > 0 {
			g := round(float64(res.GoroutinesHeld-res.GoroutinesBefore)/float64(res.Opened), 2)
			res.GoroutinesPerConn = &g
		}
	}
	res.ServerCPU, res.ServerCPUPerConn = cpu.figures(res.Opened)
	res.report = r.report(truncated)
	var failures []string
	if res.ClosedEarly > 0 {
		failures = append(failures, fmt.Sprintf("%d connections closed early", res.ClosedEarly))
	}
	return r.finish(ctx, stdout, res, failures)
}
