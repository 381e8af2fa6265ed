package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// nodeEcho is the Node function BenchmarkFunctionEcho hosts.
const nodeEcho = `exports.echo = async (event) => ({ statusCode: 200, body: event.body });
`

// BenchmarkFunctionEcho measures one message's warm round trip over a
// WebSocket connection through a two-way route whose integration is, in
// the same server: "http", the built-in http integration to a backend in
// the benchmark's process (httptest) that answers with the message's body;
// "http-process", the same to the same backend in a process of its own
// (testdata/httpecho); "go", a hosted Go function built with aws-lambda-go
// (testdata/goecho) that does the same; "node", a hosted Node function that
// does the same. The hosted functions' figures over http's are what running
// a function locally costs over calling a local HTTP service; http-process
// shows how much of that is the process boundary alone. Each route runs
// back to back, then the four in turn ("interleaved"), which reports each
// route's time and the ratios of the others to http and of the functions
// to http-process.
func BenchmarkFunctionEcho(b *testing.B) {
	if _, err := exec.LookPath("node"); err != nil {
		b.Skip("node is not installed")
	}
	dir := b.TempDir()
	goecho := filepath.Join(dir, "goecho")
	if out, err := exec.Command("go", "build", "-o", goecho, "./testdata/goecho").CombinedOutput(); err != nil {
		b.Fatalf("go build ./testdata/goecho: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(nodeEcho), 0o600); err != nil {
		b.Fatal(err)
	}
	processURL := startHTTPEcho(b, dir)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var event struct{ Body string }
		if err := json.NewDecoder(r.Body).Decode(&event); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": 200, "body": event.Body})
	}))
	b.Cleanup(backend.Close)
	r := servertest.StartYAML(b, fmt.Sprintf(`
functions:
  goecho: {command: [%q], codeDir: %q, maxProcesses: 1}
  nodeecho: {runtime: nodejs20.x, handler: handler.echo, codeDir: %q, maxProcesses: 1}
routes:
  http: {integration: {type: http, url: %q}, routeResponse: true}
  http-process: {integration: {type: http, url: %q}, routeResponse: true}
  go: {integration: {type: lambda, function: goecho}, routeResponse: true}
  node: {integration: {type: lambda, function: nodeecho}, routeResponse: true}
limits: {messageRate: unlimited, idleTimeout: unlimited, pingInterval: off}
logging: {accessLog: false}
`, goecho, dir, dir, backend.URL, processURL))
	ctx := context.Background()
	routes := []string{"http", "http-process", "go", "node"}
	conns := make(map[string]*websocket.Conn)
	echo := func(b *testing.B, route string) {
		c := conns[route]
		if c == nil {
			c = testutil.Dial(b, r.WS, nil)
			conns[route] = c
		}
		msg := []byte(fmt.Sprintf(`{"action":%q,"data":"0123456789"}`, route))
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if string(got) != string(msg) {
			b.Fatalf("answer %s, want %s", got, msg)
		}
	}
	for _, route := range routes {
		echo(b, route) // dials; a hosted function's cold start
	}
	for _, route := range routes {
		b.Run(route, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				echo(b, route)
			}
		})
	}
	// One round trip through each route per operation: each function waits
	// between its invocations, as one does between a user's messages, and
	// the figures come from the same moments of a shared machine.
	b.Run("interleaved", func(b *testing.B) {
		took := make([]time.Duration, len(routes))
		for b.Loop() {
			for i, route := range routes {
				start := time.Now()
				echo(b, route)
				took[i] += time.Since(start)
			}
		}
		for i, route := range routes {
			b.ReportMetric(float64(took[i].Nanoseconds())/float64(b.N), route+"-ns/op")
		}
		for i, route := range routes[1:] {
			b.ReportMetric(float64(took[i+1])/float64(took[0]), route+"/http")
		}
		for i, route := range routes[2:] {
			b.ReportMetric(float64(took[i+2])/float64(took[1]), route+"/http-process")
		}
	})
}

// startHTTPEcho builds and starts testdata/httpecho, stopped when the
// benchmark ends, and returns its URL.
func startHTTPEcho(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "httpecho")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/httpecho").CombinedOutput(); err != nil {
		b.Fatalf("go build ./testdata/httpecho: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("httpecho: reading its URL: %v", err)
	}
	return strings.TrimSpace(url)
}
