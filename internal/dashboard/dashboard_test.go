package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/tail"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Every tail stream, server and browser must be gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }

var testRoutes = []dashboard.RouteInfo{
	{RouteKey: "$default", Integration: "echo", TwoWay: true},
	{RouteKey: "orders", Integration: "http", Target: "http://127.0.0.1:8080/orders", TwoWay: false},
	{RouteKey: "sendMessage", Integration: "broadcast"},
}

func get(t *testing.T, h http.Handler, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestAssets(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	tests := []struct {
		name, path, contentType, contains string
	}{
		{"dashboard page", "/_/", "text/html; charset=utf-8", "<title>Switchboard dashboard</title>"},
		{"chat page", "/_/chat", "text/html; charset=utf-8", "<title>Switchboard chat</title>"},
		{"dashboard script", "/_/dashboard.js", "text/javascript; charset=utf-8", "async function api(path, options = {})"},
		{"chat script", "/_/chat.js", "text/javascript; charset=utf-8", "action: 'sendMessage'"},
		{"stylesheet", "/_/style.css", "text/css; charset=utf-8", ".topbar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, h, tt.path, nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d, want 200", tt.path, resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.contentType)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("GET %s: Cache-Control %q, want no-cache", tt.path, got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tt.path, got)
			}
			if resp.Header.Get("ETag") == "" {
				t.Errorf("GET %s: no ETag", tt.path)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("GET %s: body lacks %q", tt.path, tt.contains)
			}
			if strings.HasPrefix(tt.contentType, "text/html") {
				if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
					t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self'", tt.path, csp)
				}
			}
		})
	}
}

// The pages load nothing from elsewhere: no CDN, no external fonts or scripts.
func TestAssetsAreSelfContained(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	for _, path := range []string{"/_/", "/_/chat", "/_/dashboard.js", "/_/chat.js", "/_/style.css"} {
		body := readAll(t, get(t, h, path, nil))
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "url(http"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: body contains %q", path, bad)
			}
		}
	}
}

func TestAssetRevalidation(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	first := get(t, h, "/_/dashboard.js", nil)
	readAll(t, first)
	etag := first.Header.Get("ETag")
	resp := get(t, h, "/_/dashboard.js", http.Header{"If-None-Match": {etag}})
	readAll(t, resp)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match %s: status %d, want 304", etag, resp.StatusCode)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	for _, path := range []string{
		"/_/nope", "/_/index.html", "/_/assets/index.html", "/_/chat/", "/_/chat/x",
		"/_/style.css/x", "/_/api", "/_/api/", "/_/api/nope", "/_/api/routes/x",
	} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			resp := get(t, h, path, nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
			}
			// Under /_/api/ a JSON message; elsewhere a page that links
			// to the dashboard.
			ct := resp.Header.Get("Content-Type")
			if path == "/_/api" || strings.HasPrefix(path, "/_/api/") {
				var m struct{ Message string }
				if ct != "application/json" || json.Unmarshal([]byte(body), &m) != nil || !strings.Contains(m.Message, "GET "+path) {
					t.Errorf("GET %s: %s %q, want a JSON message naming the path", path, ct, body)
				}
			} else if !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, `href="/_/"`) ||
				resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("GET %s: %s %q (CSP %q), want a page linking to /_/", path, ct, body, resp.Header.Get("Content-Security-Policy"))
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	tests := []struct{ path, location string }{
		{"/_", "/_/"},
		{"/_?x=1", "/_/?x=1"},
	}
	for _, tt := range tests {
		resp := get(t, h, tt.path, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != tt.location {
			t.Errorf("GET %s: %d Location %q, want 301 %q", tt.path, resp.StatusCode, resp.Header.Get("Location"), tt.location)
		}
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, golden string
		opts         dashboard.Options
	}{
		{"configured", "routes.json", dashboard.Options{Stage: "dev", Routes: testRoutes}},
		{"none", "routes-empty.json", dashboard.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, dashboard.New(tt.opts), "/_/api/routes", nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var indented bytes.Buffer
			if err := json.Indent(&indented, []byte(body), "", "  "); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			golden(t, tt.golden, indented.Bytes())
		})
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	want := gateway.Stats{Connections: 3, Connects: 10, Disconnects: 7, MessagesIn: 1234, MessagesOut: 98765}
	tests := []struct {
		name  string
		stats func() gateway.Stats
		want  gateway.Stats
	}{
		{"from the gateway", func() gateway.Stats { return want }, want},
		{"nil serves zeros", nil, gateway.Stats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, dashboard.New(dashboard.Options{Stats: tt.stats}), "/_/api/stats", nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var got gateway.Stats
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got != tt.want {
				t.Errorf("stats = %+v, want %+v", got, tt.want)
			}
			for _, field := range []string{"connections", "connects", "disconnects", "messagesIn", "messagesOut"} {
				if !strings.Contains(body, `"`+field+`"`) {
					t.Errorf("body %s lacks %q", body, field)
				}
			}
		})
	}
}

// event is one Server-Sent Event, or one comment.
type event struct {
	name, data, comment string
}

// readEvent reads the next event or comment, skipping retry fields.
func readEvent(t *testing.T, r *bufio.Reader) event {
	t.Helper()
	var ev event
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v (partial event %+v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev != (event{}) {
				return ev
			}
		case strings.HasPrefix(line, ":"):
			ev.comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// serveTail serves the dashboard on a real server and opens its tail stream.
// done is closed when the stream's handler has returned.
func serveTail(t *testing.T, opts dashboard.Options) (resp *http.Response, stop context.CancelFunc, done <-chan struct{}) {
	t.Helper()
	h := dashboard.New(opts)
	finished := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/_/api/tail" {
			close(finished)
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a broken stream fails, not hangs
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/_/api/tail", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /_/api/tail: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_/api/tail: status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	return resp, cancel, finished
}

func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the tail handler did not return", what)
	}
}

func record(route string) tail.Record {
	return tail.Record{
		Time: time.Now(), ConnectionID: "R1kmxc2VNjMCFIA=", RequestID: "req-" + route, RouteKey: route,
		EventType: "MESSAGE", Integration: "broadcast", Status: 200, Latency: 1500 * time.Microsecond, Bytes: 42,
	}
}

func TestTailStream(t *testing.T) {
	t.Parallel()
	hub := tail.New(10, 16)
	for _, route := range []string{"first", "second", "third"} {
		hub.Publish(record(route))
	}
	resp, stop, done := serveTail(t, dashboard.Options{Tail: hub})
	r := bufio.NewReader(resp.Body)

	decode := func(ev event) tail.Record {
		t.Helper()
		if ev.name != "" {
			t.Fatalf("event %q, want an unnamed record event", ev.name)
		}
		var rec tail.Record
		if err := json.Unmarshal([]byte(ev.data), &rec); err != nil {
			t.Fatalf("record %q: %v", ev.data, err)
		}
		return rec
	}
	for _, want := range []string{"first", "second", "third"} {
		if got := decode(readEvent(t, r)); got.RouteKey != want {
			t.Fatalf("kept record: route %q, want %q", got.RouteKey, want)
		}
	}
	live := record("live")
	live.Status, live.Error = 0, "Internal server error"
	hub.Publish(live)
	ev := readEvent(t, r)
	if !strings.Contains(ev.data, `"latencyNs":1500000`) {
		t.Errorf("record %s: want the latency as latencyNs in nanoseconds", ev.data)
	}
	got := decode(ev)
	if got.RouteKey != "live" || got.Error != live.Error || got.Latency != live.Latency || got.Bytes != 42 ||
		got.ConnectionID != live.ConnectionID || !got.Time.Equal(live.Time) {
		t.Errorf("live record = %+v, want %+v", got, live)
	}

	stop() // the client leaves
	waitDone(t, done, "after the client left")
}

func TestTailHeartbeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hub  *tail.Hub
	}{
		{"with a hub", tail.New(10, 16)},
		{"nil hub", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, stop, done := serveTail(t, dashboard.Options{Tail: tt.hub, Heartbeat: 10 * time.Millisecond})
			r := bufio.NewReader(resp.Body)
			for range 2 {
				if ev := readEvent(t, r); ev.comment != "heartbeat" {
					t.Fatalf("got %+v, want a heartbeat comment", ev)
				}
			}
			stop()
			waitDone(t, done, "after the client left")
		})
	}
}

// A HEAD request gets the stream's headers and no stream.
func TestTailHead(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{Tail: tail.New(10, 16)})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/_/api/tail", nil)) // returns, or the test times out
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /_/api/tail: %d %q, want 200 text/event-stream", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// gatedWriter is a ResponseWriter whose writes wait until gate is closed,
// as if the client had stopped reading.
type gatedWriter struct {
	header  http.Header
	gate    chan struct{}
	writing chan struct{} // closed at the first write
	once    sync.Once

	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *gatedWriter) Header() http.Header { return w.header }
func (w *gatedWriter) WriteHeader(int)     {}
func (w *gatedWriter) Flush()              {}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *gatedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestTailDropped(t *testing.T) {
	t.Parallel()
	hub := tail.New(10, 1) // the subscriber buffers one record
	h := dashboard.New(dashboard.Options{Tail: hub})
	w := &gatedWriter{header: http.Header{}, gate: make(chan struct{}), writing: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/_/api/tail", nil))
	}()

	select {
	case <-w.writing: // subscribed, and stuck on its first write
	case <-time.After(5 * time.Second):
		t.Fatal("the tail handler never wrote")
	}
	for i := range 5 {
		hub.Publish(record("r" + strconv.Itoa(i)))
	}
	close(w.gate)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(w.String(), "event: dropped\ndata: {\"dropped\":4}\n\n")
	}, "no dropped event for the 4 lost records; stream so far:\n%s", w)
	out := w.String()
	if !strings.Contains(out, `"routeKey":"r0"`) {
		t.Errorf("the buffered record r0 is missing:\n%s", out)
	}
	if strings.Index(out, `"routeKey":"r0"`) > strings.Index(out, "event: dropped") {
		t.Errorf("the dropped event came before the record that was buffered first:\n%s", out)
	}
	cancel()
	waitDone(t, done, "after the request context ended")
}

// The lead mounts the dashboard in the server; check what a client of the
// real gateway sees.
func TestMountedInServer(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.HTTP + "/_")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/_/" {
		t.Errorf("GET /_: %d Location %q, want a redirect to /_/", resp.StatusCode, resp.Header.Get("Location"))
	}
	client.CloseIdleConnections()

	if status, body := testutil.Get(t, srv.HTTP+"/_/"); status != http.StatusOK || !strings.Contains(body, "Switchboard dashboard") {
		t.Errorf("GET /_/: %d, want 200 and the dashboard", status)
	}
	if status, _ := testutil.Get(t, srv.HTTP+"/_/nope"); status != http.StatusNotFound {
		t.Errorf("GET /_/nope: %d, want 404", status)
	}
	status, body := testutil.Get(t, srv.HTTP+"/_/api/routes")
	var routes struct {
		Stage  string                `json:"stage"`
		Routes []dashboard.RouteInfo `json:"routes"`
	}
	if err := json.Unmarshal([]byte(body), &routes); status != http.StatusOK || err != nil {
		t.Fatalf("GET /_/api/routes: %d %q: %v", status, body, err)
	}
	found := false
	for _, r := range routes.Routes {
		found = found || (r.RouteKey == "sendMessage" && r.Integration == "broadcast")
	}
	if routes.Stage != "dev" || !found {
		t.Errorf("GET /_/api/routes = %s, want stage dev and sendMessage -> broadcast", body)
	}
}
