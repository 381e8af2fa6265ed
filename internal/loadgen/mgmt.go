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

	"github.com/switchboard-gateway/switchboard/internal/cli"
)

var mgmtHelp = &cli.Help{
	Usage: []string{"switchboard bench mgmt [flags]"},
	Text: `Opens --connections WebSocket connections that read and discard, finds their
IDs by their User-Agent in GET /@connections, then -c workers send -n
PostToConnection requests (POST /@connections/{id}, a body of -s bytes) over
keep-alive HTTP, spread over the connections. Reports requests/s, the
request latency, the HTTP statuses, and messages delivered to the
connections (lost: not there --settle after the last one arrived); given
--pid (the server, on this machine), its CPU time (/proc/PID/stat, Linux) per
request over the requests.

With --batch B, each request is POST /@connections with B connection IDs
(the one-call send to many of Switchboard's management API) and -n counts
deliveries, not requests: -n 50000 --batch 100 makes the same 50000 pushes
as -n 50000 alone, in 500 requests. Deliveries/s and server CPU per
delivery then compare the two.

Against a cluster, --url is the node the connections are opened on and
--mgmt-url the node the requests are sent to: another node, to measure a
delivery across nodes; --pid lists the nodes' processes, whose CPU times are
summed.`,
	Examples: []string{
		`switchboard bench mgmt --mgmt-url http://127.0.0.1:3001 -c 8 -n 2000`,
		`switchboard bench mgmt --mgmt-url http://127.0.0.1:3001 -c 4 -n 2000 --connections 10 --batch 10`,
	},
}

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
	Batch       int   `json:"batch,omitempty"`
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
	// DeliveriesPerSec is the pushes the accepted requests made, per second.
	DeliveriesPerSec float64 `json:"deliveries_per_s"`

	ServerCPU           *float64 `json:"server_cpu_s,omitempty"` // over the requests
	ServerCPUPerRequest *float64 `json:"server_cpu_us_per_request,omitempty"`
	ServerCPUPerPush    *float64 `json:"server_cpu_us_per_delivery,omitempty"`
}

// maxBatch bounds --batch: the gateway's default limits.maxRecipients.
const maxBatch = 1000

func mgmt(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mgmt")
	var t target
	t.register(fs, getenv, flagWS|flagMgmt)
	n := fs.Int("n", 10000, fmt.Sprintf("requests (at most %d)", maxMgmtRequests))
	workers := fs.Int("c", 32, fmt.Sprintf("requests in flight, each worker on its keep-alive HTTP connection (at most %d)", maxMgmtWorkers))
	nconns := fs.Int("connections", 4, fmt.Sprintf("WebSocket connections the requests are spread over (at most %d)", maxMgmtConnections))
	size := fs.Int("s", 100, fmt.Sprintf("request body bytes (at most %d)", maxSize))
	settle := fs.Duration("settle", defaultSettle, "how long to wait for missing deliveries after the last one arrived")
	var pids pidList
	fs.Var(&pids, "pid", "process ID of the server, on this machine: report its CPU time per request; several, comma separated (the nodes of a cluster): their CPU time summed")
	batch := fs.Int("batch", 1, fmt.Sprintf("connection IDs per request: above 1, POST /@connections to that many, and -n counts deliveries (at most %d)", maxBatch))
	if err := parseFlags(fs, args, mgmtHelp, stdout); err != nil {
		return err
	}
	if err := t.check(ctx, flagWS|flagMgmt); err != nil {
		return err
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{{"-n", *n, 1, maxMgmtRequests}, {"-c", *workers, 1, maxMgmtWorkers}, {"--connections", *nconns, 1, maxMgmtConnections}, {"-s", *size, 0, maxSize}, {"--batch", *batch, 1, maxBatch}} {
		if err := checkRange(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if *batch > *nconns {
		return cli.Usagef("--batch %d: want at most --connections (%d), so that no request lists a connection twice", *batch, *nconns)
	}
	if *settle <= 0 || *settle > maxSettle {
		return cli.Usagef("--settle %s: want more than 0 and at most %s", *settle, maxSettle)
	}

	r := newRun("mgmt", &t, stderr)
	res := mgmtResult{Requests: *n, Workers: *workers, Connections: *nconns, Size: *size, PID: pids.first(), PIDs: pids.many()}
	requests := int64(*n)
	if *batch > 1 {
		res.Batch = *batch
		requests = (int64(*n) + int64(*batch) - 1) / int64(*batch)
	}
	cpu := cpuMeter{run: r, pids: pids}
	tag := newTag()
	var completed, okCount, okPushes, delivered, closedEarly atomic.Int64
	var closing atomic.Bool
	stop := r.progress(func() string {
		return fmt.Sprintf("%d/%d requests, %d ok, %d delivered", completed.Load(), requests, okCount.Load(), delivered.Load())
	})
	defer stop()

	runCtx, cancel := context.WithTimeout(ctx, t.duration)
	defer cancel()
	d := newDialer(0, protoAPIGW)
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
	var connIDs []string
	if runCtx.Err() == nil && len(agents) == *nconns {
		ids, err := findIDs(runCtx, httpc, t.mgmtURL, t.token, agents)
		if err != nil {
			if runCtx.Err() == nil {
				r.fail(err)
			}
		} else {
			connIDs = ids
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
		// pushes(i) is how many deliveries request i makes; post(i) sends it.
		pushes := func(int64) int64 { return 1 }
		post := func(client *keepAlive, i int64) (int, error) {
			return client.post(runCtx, targets[i%int64(len(targets))], body)
		}
		if *batch > 1 {
			base, _ := url.Parse(t.mgmtURL)
			path := base.EscapedPath() + "/@connections"
			data, _ := json.Marshal(string(body))
			pushes = func(i int64) int64 { return min(int64(*batch), int64(*n)-i*int64(*batch)) }
			post = func(client *keepAlive, i int64) (int, error) {
				ids := make([]string, pushes(i))
				for k := range ids {
					ids[k] = connIDs[(i*int64(*batch)+int64(k))%int64(len(connIDs))]
				}
				req, _ := json.Marshal(struct {
					IDs  []string        `json:"connectionIds"`
					Data json.RawMessage `json:"data"`
				}{ids, data})
				return client.post(runCtx, path, req)
			}
		}
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
					if i >= requests || runCtx.Err() != nil {
						return
					}
					t0 := time.Now()
					status, err := post(client, i)
					if err != nil && runCtx.Err() != nil {
						return // cut short by --duration: not an answer
					}
					hist.record(time.Since(t0))
					lastDone.Store(since(start))
					completed.Add(1)
					statuses[min(max(status, 0), len(statuses)-1)].Add(1)
					if err != nil {
						r.fail(fmt.Errorf("request %d: %w", i, err))
						continue
					}
					okCount.Add(1)
					okPushes.Add(pushes(i))
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
		for last < okPushes.Load() && runCtx.Err() == nil && time.Since(changed) < *settle {
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
	_, res.ServerCPUPerPush = cpu.figures(okPushes.Load())
	res.DeliveriesPerSec = perSecond(okPushes.Load(), elapsed)
	var failures []string
	if !truncated && ctx.Err() == nil {
		if len(targets) == 0 {
			failures = append(failures, "no connection to post to")
		}
		res.Lost = max(okPushes.Load()-res.Delivered, 0)
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
