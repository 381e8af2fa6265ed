package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const mgmtUsage = `Usage: switchboard bench mgmt [flags]

Opens --connections WebSocket connections that read and discard, finds their
IDs by their User-Agent in GET /@connections, then -c workers send -n
PostToConnection requests (POST /@connections/{id}, a body of -s bytes) over
keep-alive HTTP, spread over the connections. Reports requests/s, the
request latency, the HTTP statuses, and messages delivered to the
connections (lost: not there --settle after the last one arrived); given
--pid (the server, on this machine), its CPU time (/proc/PID/stat, Linux) per
request over the requests.

Against a cluster, --url is the node the connections are opened on and
--mgmt-url the node the requests are sent to: another node, to measure a
delivery across nodes; --pid lists the nodes' processes, whose CPU times are
summed.

Examples:
  switchboard bench mgmt --mgmt-url http://127.0.0.1:3001 -c 32 -n 100000
  switchboard bench mgmt --url ws://127.0.0.1:3001 --mgmt-url http://127.0.0.1:3002 --pid 101,102,103
`

const (
	maxMgmtRequests    = 100_000_000
	maxMgmtWorkers     = 10_000
	maxMgmtConnections = 10_000
	listPageLimit      = 1000
	findTimeout        = 10 * time.Second
)

type mgmtResult struct {
	report
	Requests    int   `json:"n"`
	Workers     int   `json:"c"`
	Connections int   `json:"connections"`
	Size        int   `json:"size"`
	PID         int   `json:"pid,omitempty"`
	PIDs        []int `json:"pids,omitempty"` // with more than one: their CPU time is summed

	Completed      int64            `json:"requests"` // answered, whatever the status
	OK             int64            `json:"ok"`
	Statuses       map[string]int64 `json:"statuses"` // "200": n; "error": transport errors
	Seconds        float64          `json:"requests_s"`
	RequestsPerSec float64          `json:"requests_per_s"`
	Latency        latency          `json:"latency_ms"`
	Delivered      int64            `json:"delivered"`
	Lost           int64            `json:"lost"`

	ServerCPU           *float64 `json:"server_cpu_s,omitempty"` // over the requests
	ServerCPUPerRequest *float64 `json:"server_cpu_us_per_request,omitempty"`
}

func mgmt(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mgmt", mgmtUsage, stderr)
	var t target
	t.register(fs, getenv, flagWS|flagMgmt)
	n := fs.Int("n", 10000, fmt.Sprintf("requests (at most %d)", maxMgmtRequests))
	workers := fs.Int("c", 32, fmt.Sprintf("requests in flight, each worker on its keep-alive HTTP connection (at most %d)", maxMgmtWorkers))
	nconns := fs.Int("connections", 4, fmt.Sprintf("WebSocket connections the requests are spread over (at most %d)", maxMgmtConnections))
	size := fs.Int("s", 100, fmt.Sprintf("request body bytes (at most %d)", maxSize))
	settle := fs.Duration("settle", defaultSettle, "how long to wait for missing deliveries after the last one arrived")
	var pids pidList
	fs.Var(&pids, "pid", "process ID of the server, on this machine: report its CPU time per request; several, comma separated (the nodes of a cluster): their CPU time summed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := t.check(ctx, flagWS|flagMgmt); err != nil {
		return err
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{{"-n", *n, 1, maxMgmtRequests}, {"-c", *workers, 1, maxMgmtWorkers}, {"--connections", *nconns, 1, maxMgmtConnections}, {"-s", *size, 0, maxSize}} {
		if err := checkRange(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if *settle <= 0 || *settle > maxSettle {
		return fmt.Errorf("bench: --settle %s: want more than 0 and at most %s", *settle, maxSettle)
	}

	r := newRun("mgmt", &t, stderr)
	res := mgmtResult{Requests: *n, Workers: *workers, Connections: *nconns, Size: *size, PID: pids.first(), PIDs: pids.many()}
	cpu := cpuMeter{run: r, pids: pids}
	tag := newTag()
	var completed, okCount, delivered, closedEarly atomic.Int64
	var closing atomic.Bool
	stop := r.progress(func() string {
		return fmt.Sprintf("%d/%d requests, %d ok, %d delivered", completed.Load(), *n, okCount.Load(), delivered.Load())
	})
	defer stop()

	runCtx, cancel := context.WithTimeout(ctx, t.duration)
	defer cancel()
	d := newDialer(0)
	defer d.close()
	httpc := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: *workers,
		MaxConnsPerHost:     *workers,
		DisableCompression:  true,
	}}
	defer httpc.CloseIdleConnections()

	// Connections named by their User-Agent, so that the list finds them.
	agents := make(map[string]int, *nconns)
	all := make([]*websocket.Conn, *nconns)
	var readers sync.WaitGroup
	for i := range *nconns {
		suffix := "/" + tag + "/" + strconv.Itoa(i)
		c, err := d.dial(runCtx, t.url, userAgent(suffix))
		if err != nil {
			if runCtx.Err() == nil {
				r.fail(fmt.Errorf("dial: %w", err))
			}
			break
		}
		agents[userAgentPrefix+suffix] = i
		all[i] = c
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, data, err := c.Read(context.Background())
				if err != nil {
					if !closing.Load() {
						closedEarly.Add(1)
						r.fail(fmt.Errorf("connection closed: %w", err))
					}
					return
				}
				if _, _, _, isOurs := ours(data, tag); isOurs {
					delivered.Add(1)
				}
			}
		}()
	}

	var targets []string // paths, after the management URL's host
	if runCtx.Err() == nil && len(agents) == *nconns {
		ids, err := findIDs(runCtx, httpc, t.mgmtURL, t.token, agents)
		if err != nil {
			if runCtx.Err() == nil {
				r.fail(err)
			}
		} else {
			base, _ := url.Parse(t.mgmtURL) // checked by t.check
			for _, id := range ids {
				targets = append(targets, base.EscapedPath()+"/@connections/"+url.PathEscape(id))
			}
		}
	}

	var (
		statuses [600]atomic.Int64 // by HTTP status; 0: transport error
		hist     histogram
		next     atomic.Int64
		lastDone atomic.Int64 // since start
		start    = time.Now()
		wg       sync.WaitGroup
	)
	if len(targets) > 0 {
		cpu.begin()
		body := appendPayload(nil, *size, 0, 0, tag)
		for range *workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client, err := newKeepAlive(t.mgmtURL, t.token)
				if err != nil {
					r.fail(err)
					return
				}
				defer client.close()
				for {
					i := next.Add(1) - 1
					if i >= int64(*n) || runCtx.Err() != nil {
						return
					}
					t0 := time.Now()
					status, err := client.post(runCtx, targets[i%int64(len(targets))], body)
					if err != nil && runCtx.Err() != nil {
						return // cut short by --duration: not an answer
					}
					hist.record(time.Since(t0))
					lastDone.Store(since(start))
					completed.Add(1)
					statuses[min(max(status, 0), len(statuses)-1)].Add(1)
					if err != nil {
						r.fail(fmt.Errorf("POST %s: %w", targets[i%int64(len(targets))], err))
						continue
					}
					okCount.Add(1)
				}
			}()
		}
		wg.Wait()
		cpu.end()
	}
	elapsed := time.Duration(lastDone.Load())

	// Wait for the deliveries of the accepted requests.
	if runCtx.Err() == nil && okCount.Load() > 0 {
		tick := time.NewTicker(10 * time.Millisecond)
		last, changed := delivered.Load(), time.Now()
		for last < okCount.Load() && runCtx.Err() == nil && time.Since(changed) < *settle {
			select {
			case <-runCtx.Done():
			case <-tick.C:
			}
			if v := delivered.Load(); v != last {
				last, changed = v, time.Now()
			}
		}
		tick.Stop()
	}
	truncated := runCtx.Err() != nil && ctx.Err() == nil
	closing.Store(true)
	closeAll(all)
	readers.Wait()
	stop()

	res.Completed, res.OK, res.Delivered = completed.Load(), okCount.Load(), delivered.Load()
	res.Statuses = map[string]int64{}
	for code := range statuses {
		if v := statuses[code].Load(); v > 0 {
			key := strconv.Itoa(code)
			if code == 0 {
				key = "error"
			}
			res.Statuses[key] = v
		}
	}
	res.Seconds = round(elapsed.Seconds(), 3)
	res.RequestsPerSec = perSecond(res.Completed, elapsed)
	res.Latency = hist.summary()
	res.ServerCPU, res.ServerCPUPerRequest = cpu.figures(res.Completed)
	var failures []string
	if !truncated && ctx.Err() == nil {
		if len(targets) == 0 {
			failures = append(failures, "no connection to post to")
		}
		res.Lost = max(res.OK-res.Delivered, 0)
		if res.Lost > 0 {
			failures = append(failures, fmt.Sprintf("%d deliveries lost", res.Lost))
		}
	}
	res.report = r.report(truncated)
	return r.finish(ctx, stdout, res, failures)
}

// findIDs pages through GET base/@connections until every User-Agent in
// agents is found, and returns the connection IDs in agents' order. A
// connection may be listed a moment after its handshake: it retries for
// findTimeout.
func findIDs(ctx context.Context, client *http.Client, base, token string, agents map[string]int) ([]string, error) {
	ids := make([]string, len(agents))
	found := 0
	deadline := time.Now().Add(findTimeout)
	for {
		cursor := ""
		for {
			u := base + "/@connections?limit=" + strconv.Itoa(listPageLimit)
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			body, err := httpGet(ctx, client, u, token)
			if err != nil {
				return nil, fmt.Errorf("list connections: %w", err)
			}
			var page struct {
				Items []struct {
					ConnectionID string `json:"connectionId"`
					Identity     struct {
						UserAgent string `json:"userAgent"`
					} `json:"identity"`
				} `json:"items"`
				NextCursor string `json:"nextCursor"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return nil, fmt.Errorf("list connections: %w", err)
			}
			for _, it := range page.Items {
				if i, ok := agents[it.Identity.UserAgent]; ok && ids[i] == "" {
					ids[i] = it.ConnectionID
					found++
				}
			}
			if page.NextCursor == "" || page.NextCursor == cursor {
				break
			}
			cursor = page.NextCursor
		}
		if found == len(agents) {
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("list connections: found %d of the bench's %d connections in GET %s/@connections", found, len(agents), base)
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}
