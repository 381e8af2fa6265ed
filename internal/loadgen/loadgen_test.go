package loadgen_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/loadgen"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// benchConfig is the suite's gateway: a two-way echo $default route beside
// the zero-config routes, and /debug/pprof for the forced GC.
const benchConfig = `
pprof: true
routes:
  $default:    {integration: {type: echo}}
  subscribe:   {integration: {type: subscribe}}
  sendMessage: {integration: {type: broadcast}}
  publish:     {integration: {type: publish}}
limits:
  messageRate: unlimited # a few connections send as fast as they can
`

// result holds the figures the tests check, from any workload's line.
type result struct {
	Workload   string   `json:"workload"`
	URL        string   `json:"url"`
	URLs       []string `json:"urls"`
	PIDs       []int    `json:"pids"`
	MgmtURL    string   `json:"mgmt_url"`
	Truncated  bool     `json:"truncated"`
	Errors     int64    `json:"errors"`
	FirstError string   `json:"first_error"`
	Elapsed    float64  `json:"elapsed_s"`
	Duration   float64  `json:"duration_s"`

	N                 int      `json:"n"`
	Opened            int64    `json:"opened"`
	Failed            int64    `json:"failed"`
	ClosedEarly       int64    `json:"closed_early"`
	ConnsPerSec       float64  `json:"conns_per_s"`
	RSSBefore         int64    `json:"rss_before_bytes"`
	RSSHeld           int64    `json:"rss_held_bytes"`
	RSSAfterGC        int64    `json:"rss_gc_bytes"`
	GoroutinesHeld    int64    `json:"goroutines_held"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn"`
	Dial              latency  `json:"dial_latency_ms"`

	Connections int     `json:"connections"`
	Messages    int     `json:"messages"`
	Size        int     `json:"size"`
	Route       string  `json:"route"`
	Sent        int64   `json:"sent"`
	Received    int64   `json:"received"`
	Unexpected  int64   `json:"unexpected"`
	MsgsPerSec  float64 `json:"msgs_per_s"`
	Latency     latency `json:"latency_ms"`

	Subscribers      int     `json:"subscribers"`
	Via              string  `json:"via"`
	Topic            string  `json:"topic"`
	Subscribed       int64   `json:"subscribed"`
	Published        int64   `json:"published"`
	Expected         int64   `json:"expected"`
	Deliveries       int64   `json:"deliveries"`
	Lost             int64   `json:"lost"`
	Duplicated       int64   `json:"duplicated"`
	Incomplete       int64   `json:"incomplete"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`

	Requests       int64            `json:"requests"`
	OK             int64            `json:"ok"`
	Statuses       map[string]int64 `json:"statuses"`
	RequestsPerSec float64          `json:"requests_per_s"`
	Delivered      int64            `json:"delivered"`

	// With --pid: nil when left out of the line.
	ServerCPU            *float64 `json:"server_cpu_s"`
	ServerCPUPerConn     *float64 `json:"server_cpu_us_per_conn"`
	ServerCPUPerMessage  *float64 `json:"server_cpu_us_per_message"`
	ServerCPUPerDelivery *float64 `json:"server_cpu_us_per_delivery"`
	ServerCPUPerRequest  *float64 `json:"server_cpu_us_per_request"`
}

// checkNoCPU reports server CPU figures in the line of a run without --pid.
func (r result) checkNoCPU(t *testing.T) {
	t.Helper()
	for name, v := range map[string]*float64{"server_cpu_s": r.ServerCPU, "server_cpu_us_per_conn": r.ServerCPUPerConn,
		"server_cpu_us_per_message": r.ServerCPUPerMessage, "server_cpu_us_per_delivery": r.ServerCPUPerDelivery,
		"server_cpu_us_per_request": r.ServerCPUPerRequest} {
		if v != nil {
			t.Errorf("%s = %v without --pid, want it left out", name, *v)
		}
	}
}

type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// check reports latency figures out of order.
func (l latency) check(t *testing.T, name string, count uint64) {
	t.Helper()
	if l.Count != count {
		t.Errorf("%s count = %d, want %d", name, l.Count, count)
	}
	if !(0 <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s = %+v, want 0 <= p50 <= p90 <= p99 <= max", name, l)
	}
}

// bench runs `switchboard bench args...` and returns its one result line,
// parsed, and its error.
func bench(t *testing.T, args ...string) (result, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := loadgen.Main(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
	t.Logf("bench %s: err=%v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("bench %s: stdout = %q, want one JSON line", strings.Join(args, " "), stdout.String())
	}
	var r result
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("bench %s: result %q: %v", strings.Join(args, " "), lines[0], err)
	}
	t.Logf("result: %s", lines[0])
	return r, err
}

// mustBench is bench for a run that must succeed completely.
func mustBench(t *testing.T, args ...string) result {
	t.Helper()
	r, err := bench(t, args...)
	if err != nil {
		t.Fatalf("bench %s: %v", strings.Join(args, " "), err)
	}
	if r.Truncated || r.Errors != 0 {
		t.Fatalf("bench %s: truncated=%v errors=%d (%s), want a complete run", strings.Join(args, " "), r.Truncated, r.Errors, r.FirstError)
	}
	if r.Workload != args[0] {
		t.Errorf("workload = %q, want %q", r.Workload, args[0])
	}
	return r
}

func TestConns(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	tests := []struct {
		name    string
		sources string
	}{
		{"kernel source address", "0"},
		{"two source addresses", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The server runs in this process: its RSS is ours.
			r := mustBench(t, "conns", "--url", srv.WS, "-n", "30", "--concurrency", "7", "--sources", tt.sources,
				"--hold", "0s", "--pid", strconv.Itoa(os.Getpid()),
				"--gc-url", srv.HTTP+"/debug/pprof/heap?gc=1", "--metrics-url", srv.HTTP+"/metrics")
			if r.N != 30 || r.Opened != 30 || r.Failed != 0 || r.ClosedEarly != 0 {
				t.Errorf("n=%d opened=%d failed=%d closed_early=%d, want 30 opened of 30", r.N, r.Opened, r.Failed, r.ClosedEarly)
			}
			if r.ConnsPerSec <= 0 {
				t.Errorf("conns_per_s = %v, want > 0", r.ConnsPerSec)
			}
			if r.RSSBefore <= 0 || r.RSSHeld <= 0 || r.RSSAfterGC <= 0 {
				t.Errorf("rss before=%d held=%d gc=%d, want all > 0", r.RSSBefore, r.RSSHeld, r.RSSAfterGC)
			}
			// Other tests share this process: only the readings are checked, not the differences.
			if r.GoroutinesHeld <= 0 {
				t.Errorf("goroutines held = %d, want > 0", r.GoroutinesHeld)
			}
			// Present even when 0: a server may hold no goroutine per connection.
			if r.GoroutinesPerConn == nil {
				t.Errorf("goroutines_per_conn left out, want it with --metrics-url")
			}
			if r.ServerCPU == nil || r.ServerCPUPerConn == nil {
				t.Errorf("server_cpu_s = %v, server_cpu_us_per_conn = %v, want both with --pid", r.ServerCPU, r.ServerCPUPerConn)
			}
			r.Dial.check(t, "dial_latency_ms", 30)
		})
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	tests := []struct {
		name   string
		route  string
		window string
	}{
		{"raw payload", "%s", "1"},
		{"JSON template", `{"action":"echo","data":"%s"}`, "1"},
		{"pipelined", `{"action":"echo","data":"%s"}`, "8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustBench(t, "echo", "--url", srv.WS, "-c", "4", "-m", "25", "-s", "64", "--route", tt.route, "--window", tt.window)
			if r.Connections != 4 || r.Messages != 25 || r.Size != 64 || r.Route != tt.route {
				t.Errorf("inputs echoed: connections=%d messages=%d size=%d route=%q", r.Connections, r.Messages, r.Size, r.Route)
			}
			if r.Sent != 100 || r.Received != 100 || r.Unexpected != 0 || r.Lost != 0 {
				t.Errorf("sent=%d received=%d unexpected=%d lost=%d, want 100 received of 100", r.Sent, r.Received, r.Unexpected, r.Lost)
			}
			if r.MsgsPerSec <= 0 {
				t.Errorf("msgs_per_s = %v, want > 0", r.MsgsPerSec)
			}
			r.Latency.check(t, "latency_ms", 100)
			r.checkNoCPU(t)
		})
	}
}

// Without a $default route every answer is the Forbidden frame: the run
// fails and says why.
func TestEchoWithoutEchoRoute(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "")
	r, err := bench(t, "echo", "--url", srv.WS, "-c", "2", "-m", "3")
	if err == nil {
		t.Fatal("echo against a gateway that does not echo: err = nil, want the unexpected answers reported")
	}
	if r.Received != 0 || r.Unexpected != 6 || r.Errors == 0 || !strings.Contains(r.FirstError, "Forbidden") {
		t.Errorf("received=%d unexpected=%d errors=%d first_error=%q, want 6 unexpected Forbidden frames",
			r.Received, r.Unexpected, r.Errors, r.FirstError)
	}
}

func TestFanout(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	zero := servertest.StartYAML(t, "") // the sync message gets the Forbidden frame
	tests := []struct {
		name string
		url  string
		args []string
	}{
		{"broadcast via ws", srv.WS, []string{"--via", "ws"}},
		{"topic via ws", srv.WS, []string{"--via", "ws", "--topic", "t"}},
		{"broadcast via mgmt", srv.WS, []string{"--via", "mgmt"}},
		{"topic via mgmt", srv.WS, []string{"--via", "mgmt", "--topic", "t2", "--mgmt-url", srv.Management}},
		{"zero-config topic via ws", zero.WS, []string{"--topic", "t", "--rate", "1000"}},
		{"two source addresses", srv.WS, []string{"--sources", "2", "--concurrency", "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"fanout", "--url", tt.url, "--subscribers", "6", "--messages", "15", "--size", "80"}, tt.args...)
			r := mustBench(t, args...)
			if r.Subscribers != 6 || r.Messages != 15 || r.Size != 80 {
				t.Errorf("inputs echoed: subscribers=%d messages=%d size=%d", r.Subscribers, r.Messages, r.Size)
			}
			if r.Subscribed != 6 || r.Published != 15 || r.Expected != 90 {
				t.Errorf("subscribed=%d published=%d expected=%d, want 6, 15, 90", r.Subscribed, r.Published, r.Expected)
			}
			if r.Deliveries != 90 || r.Lost != 0 || r.Duplicated != 0 || r.Unexpected != 0 || r.Incomplete != 0 {
				t.Errorf("deliveries=%d lost=%d duplicated=%d unexpected=%d incomplete=%d, want 90 deliveries, none lost or duplicated",
					r.Deliveries, r.Lost, r.Duplicated, r.Unexpected, r.Incomplete)
			}
			if r.DeliveriesPerSec <= 0 {
				t.Errorf("deliveries_per_s = %v, want > 0", r.DeliveriesPerSec)
			}
			r.Latency.check(t, "latency_ms", 90)
			r.checkNoCPU(t)
		})
	}
}

func TestMgmt(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	tests := []struct {
		name string
		args []string
	}{
		{"mgmt URL given", []string{"--mgmt-url", srv.Management}},
		{"mgmt URL from the WebSocket URL", []string{"--url", srv.WS + "/dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustBench(t, append([]string{"mgmt", "-c", "4", "-n", "120", "--connections", "3", "-s", "50"}, tt.args...)...)
			if r.Requests != 120 || r.OK != 120 || r.Statuses["200"] != 120 || len(r.Statuses) != 1 {
				t.Errorf("requests=%d ok=%d statuses=%v, want 120 answered 200", r.Requests, r.OK, r.Statuses)
			}
			if r.Delivered != 120 || r.Lost != 0 {
				t.Errorf("delivered=%d lost=%d, want 120 delivered", r.Delivered, r.Lost)
			}
			if r.RequestsPerSec <= 0 {
				t.Errorf("requests_per_s = %v, want > 0", r.RequestsPerSec)
			}
			r.Latency.check(t, "latency_ms", 120)
			r.checkNoCPU(t)
		})
	}
}

// With --batch, -n counts deliveries, made by POST /@connections to many
// connections at once: the same pushes in fewer requests, none lost.
func TestMgmtBatch(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	r := mustBench(t, "mgmt", "--mgmt-url", srv.Management, "-c", "2", "-n", "250", "--connections", "10", "--batch", "10", "-s", "50")
	if r.Requests != 25 || r.OK != 25 || r.Statuses["200"] != 25 {
		t.Errorf("requests=%d ok=%d statuses=%v, want 25 answered 200", r.Requests, r.OK, r.Statuses)
	}
	if r.Delivered != 250 || r.Lost != 0 || r.DeliveriesPerSec <= 0 {
		t.Errorf("delivered=%d lost=%d deliveries_per_s=%v, want 250 delivered", r.Delivered, r.Lost, r.DeliveriesPerSec)
	}
}

// With --pid every workload reports the server's CPU time over its measured
// phase. The server runs in this process, so the figures are ours (the tests
// running beside it included); each run does enough work to use well over
// the 10ms clock tick.
func TestServerCPU(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		args    []string
		perUnit func(r result) *float64
	}{
		{"conns", []string{"conns", "--url", srv.WS, "-n", "300", "--concurrency", "20", "--hold", "0s"},
			func(r result) *float64 { return r.ServerCPUPerConn }},
		{"echo", []string{"echo", "--url", srv.WS, "-c", "4", "-m", "250", "--window", "4", "--route", `{"action":"echo","data":"%s"}`},
			func(r result) *float64 { return r.ServerCPUPerMessage }},
		{"fanout via ws", []string{"fanout", "--url", srv.WS, "--subscribers", "20", "--messages", "200"},
			func(r result) *float64 { return r.ServerCPUPerDelivery }},
		{"fanout via mgmt", []string{"fanout", "--url", srv.WS, "--subscribers", "20", "--messages", "200", "--via", "mgmt", "--topic", "cpu"},
			func(r result) *float64 { return r.ServerCPUPerDelivery }},
		{"mgmt", []string{"mgmt", "--url", srv.WS, "-c", "4", "-n", "2000", "--connections", "3"},
			func(r result) *float64 { return r.ServerCPUPerRequest }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustBench(t, append(tt.args, "--pid", pid)...)
			if r.ServerCPU == nil || *r.ServerCPU <= 0 {
				t.Errorf("server_cpu_s = %v, want > 0", deref(r.ServerCPU))
			}
			if p := tt.perUnit(r); p == nil || *p <= 0 {
				t.Errorf("server CPU per unit = %v, want > 0", deref(p))
			}
		})
	}
}

// deref prints a figure of a line, or that it was left out.
func deref(v *float64) any {
	if v == nil {
		return "left out"
	}
	return *v
}

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// Fields 14 and 15 (utime 250, stime 37) after a command name with
	// spaces and parentheses, as a process may name itself.
	line := "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 12345 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := loadgen.ParseStatCPUForTest(line)
	if want := 2870 * time.Millisecond; err != nil || got != want {
		t.Errorf("parse(%q) = %v, %v; want %v", line, got, err, want)
	}
	for _, bad := range []string{
		"",
		"4242 (srv",
		"4242 (srv) S 1 2 3",
		"4242 (srv) S 1 4242 4242 0 -1 4194560 1234 0 0 0 x 37 0 0",
		"4242 (srv) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 -1 0 0",
	} {
		if got, err := loadgen.ParseStatCPUForTest(bad); err == nil {
			t.Errorf("parse(%q) = %v, want an error", bad, got)
		}
	}
}

// A thread's time comes from the first field of its schedstat, in
// nanoseconds; the ticks win only when they counted more than two beyond
// it (threads that ended during the phase).
func TestThreadsCPU(t *testing.T) {
	t.Parallel()
	if got, err := loadgen.ParseSchedstatForTest("1002455794 93753081 948\n"); err != nil || got != 1002455794*time.Nanosecond {
		t.Errorf("parseSchedstat = %v, %v; want 1.002455794s", got, err)
	}
	for _, bad := range []string{"", "x 1 2", "-5 1 2"} {
		if got, err := loadgen.ParseSchedstatForTest(bad); err == nil {
			t.Errorf("parseSchedstat(%q) = %v, want an error", bad, got)
		}
	}
	ms := time.Millisecond
	for _, c := range []struct {
		fine, coarse time.Duration
		ok           bool
		want         time.Duration
	}{
		{123456 * time.Microsecond, 120 * ms, true, 123456 * time.Microsecond},
		{123456 * time.Microsecond, 140 * ms, true, 123456 * time.Microsecond},
		{100 * ms, 130 * ms, true, 130 * ms},
		{123 * ms, 120 * ms, false, 120 * ms},
	} {
		if got := loadgen.UsedCPUForTest(c.fine, c.coarse, c.ok); got != c.want {
			t.Errorf("usedCPU(%v, %v, %v) = %v, want %v", c.fine, c.coarse, c.ok, got, c.want)
		}
	}
	if runtime.GOOS != "linux" {
		return
	}
	// This process's own time: both measures, each at least the time it
	// spun.
	spin := time.Now()
	for time.Since(spin) < 50*ms {
	}
	fine, coarse, ok, err := loadgen.CPUTimeForTest(os.Getpid())
	if err != nil || !ok {
		t.Fatalf("cpuTime(self) = %v, %v, %v, %v; want both measures", fine, coarse, ok, err)
	}
	if fine < 50*ms || coarse < 40*ms {
		t.Errorf("cpuTime(self) = %v fine, %v coarse after 50ms of spinning; want both at least that", fine, coarse)
	}
}

// --duration ends a long run early; the line says so and the run is not a failure.
func TestDurationTruncates(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	tests := []struct {
		name string
		args []string
		done func(r result) (int64, int64) // done, asked
	}{
		{"echo", []string{"echo", "--url", srv.WS, "-c", "2", "-m", "1000000", "--duration", "200ms"},
			func(r result) (int64, int64) { return r.Received, 2 * 1000000 }},
		{"fanout", []string{"fanout", "--url", srv.WS, "--subscribers", "2", "--messages", "1000000", "--rate", "100", "--duration", "200ms"},
			func(r result) (int64, int64) { return r.Published, 1000000 }},
		{"mgmt", []string{"mgmt", "--url", srv.WS, "-c", "2", "-n", "100000000", "--duration", "200ms"},
			func(r result) (int64, int64) { return r.Requests, 100000000 }},
		{"conns", []string{"conns", "--url", srv.WS, "-n", "500000", "--concurrency", "2", "--hold", "0s", "--duration", "200ms"},
			func(r result) (int64, int64) { return r.Opened, 500000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := bench(t, tt.args...)
			if err != nil {
				t.Fatalf("err = %v, want nil: a truncated run is not a failure", err)
			}
			if !r.Truncated {
				t.Errorf("truncated = false, want true")
			}
			if r.Duration != 0.2 {
				t.Errorf("duration_s = %v, want 0.2", r.Duration)
			}
			if done, asked := tt.done(r); done >= asked {
				t.Errorf("did %d of %d, want the run cut short", done, asked)
			}
			if r.Errors != 0 {
				t.Errorf("errors = %d (%s), want none", r.Errors, r.FirstError)
			}
		})
	}
}

func TestRefusesRemoteTargets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"conns", []string{"conns", "--url", "ws://192.0.2.1:3001"}},
		{"echo", []string{"echo", "--url", "ws://192.0.2.1:3001/dev"}},
		{"fanout", []string{"fanout", "--url", "wss://192.0.2.1"}},
		{"fanout mgmt URL", []string{"fanout", "--via", "mgmt", "--mgmt-url", "http://192.0.2.1:3001"}},
		{"mgmt", []string{"mgmt", "--mgmt-url", "http://[2001:db8::1]:3001"}},
		{"mgmt WebSocket URL", []string{"mgmt", "--url", "ws://192.0.2.1:3001", "--mgmt-url", "http://127.0.0.1:3001"}},
		{"conns gc URL", []string{"conns", "--gc-url", "http://192.0.2.1/debug/pprof/heap?gc=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := loadgen.Main(t.Context(), tt.args, nil, &stdout, &stderr)
			if !errors.Is(err, loadgen.ErrRemote) {
				t.Errorf("Main(%q) = %v, want ErrRemote", tt.args, err)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing: no load was sent", stdout.String())
			}
		})
	}
}

func TestLocalhostIsLoopback(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	url := strings.Replace(srv.WS, "127.0.0.1", "localhost", 1)
	r := mustBench(t, "conns", "--url", url, "-n", "3", "--hold", "0s")
	if r.Opened != 3 {
		t.Errorf("opened = %d, want 3", r.Opened)
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no workload", nil, "no workload"},
		{"unknown workload", []string{"soak"}, "unknown workload"},
		{"too many connections", []string{"conns", "-n", "500001"}, "-n 500001"},
		{"too many sources", []string{"conns", "--sources", "50"}, "--sources 50"},
		{"sources with a name", []string{"conns", "--sources", "2", "--url", "ws://[::1]:3001"}, "--sources needs"},
		{"hold past duration", []string{"conns", "--hold", "10s", "--duration", "5s"}, "--hold"},
		{"duration over an hour", []string{"echo", "--duration", "2h"}, "--duration"},
		{"zero duration", []string{"echo", "--timeout", "0s"}, "--duration"},
		{"template without %s", []string{"echo", "--route", `{"action":"echo"}`}, "exactly one %s"},
		{"template with two %s", []string{"echo", "--route", "%s%s"}, "exactly one %s"},
		{"echo total over the cap", []string{"echo", "-c", "50000", "-m", "10000"}, "-c × -m"},
		{"message too big", []string{"echo", "-s", "2000000"}, "-s 2000000"},
		{"unknown via", []string{"fanout", "--via", "sqs"}, "--via"},
		{"one of several URLs not WebSocket", []string{"fanout", "--url", "ws://127.0.0.1:3001,http://127.0.0.1:3002"}, "--url"},
		{"several URLs where one is taken", []string{"echo", "--url", "ws://127.0.0.1:3001,ws://127.0.0.1:3002"}, "--url"},
		{"pid zero", []string{"fanout", "--pid", "1,0"}, "process ID"},
		{"pid not a number", []string{"mgmt", "--pid", "gw"}, "process ID"},
		{"fanout total over the cap", []string{"fanout", "--subscribers", "500000", "--messages", "1000000"}, "--subscribers ×"},
		{"negative rate", []string{"fanout", "--rate", "-1"}, "--rate"},
		{"mgmt URL scheme", []string{"mgmt", "--mgmt-url", "ws://127.0.0.1:3001"}, "--mgmt-url"},
		{"mgmt workers", []string{"mgmt", "-c", "0"}, "-c 0"},
		{"stray argument", []string{"mgmt", "extra"}, "unexpected argument"},
		{"batch over connections", []string{"mgmt", "--connections", "2", "--batch", "3"}, "--batch 3"},
		{"batch over the cap", []string{"mgmt", "--connections", "2000", "--batch", "1001"}, "--batch 1001"},
		{"unknown protocol", []string{"conns", "--protocol", "stomp"}, "--protocol"},
		{"route with the centrifuge protocol", []string{"echo", "--protocol", "centrifuge", "--route", "%s"}, "--route"},
		{"mgmt takes no protocol", []string{"mgmt", "--protocol", "centrifuge"}, "-protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := loadgen.Main(t.Context(), tt.args, nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Main(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := loadgen.Main(t.Context(), []string{"help"}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("help: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "Usage: switchboard bench <workload>") {
		t.Errorf("help printed %q, want the usage", stdout.String())
	}
	for _, w := range []string{"conns", "echo", "fanout", "mgmt", "start"} {
		stdout.Reset()
		stderr.Reset()
		err := loadgen.Main(t.Context(), []string{w, "-h"}, nil, &stdout, &stderr)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout.String(), "Usage: switchboard bench "+w) || !strings.Contains(stdout.String(), "--duration") || stderr.Len() != 0 {
			t.Errorf("%s -h: err=%v, stdout=%q, stderr=%q, want its usage and flags on stdout", w, err, stdout.String(), stderr.String())
		}
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		size                  int
		seq, ts               int64
		tag                   string
		wrapBefore, wrapAfter string
		wantLen               int
	}{
		{"padded", 100, 42, 1000, "0a1b2c3d", "", "", 100},
		{"too small for the numbers", 2, 12345, 6789, "0a1b2c3d", "", "", len("~12345~6789~0a1b2c3d")},
		{"inside a template with tildes", 50, 3, 99, "feedbeef", `{"a":"~1~x~","data":"`, `"}`, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := loadgen.AppendPayloadForTest(nil, tt.size, tt.seq, tt.ts, tt.tag)
			if len(p) != tt.wantLen {
				t.Errorf("len(payload %q) = %d, want %d", p, len(p), tt.wantLen)
			}
			msg := append(append([]byte(tt.wrapBefore), p...), tt.wrapAfter...)
			seq, ts, rest, ok := loadgen.ParsePayloadForTest(msg)
			if !ok || seq != tt.seq || ts != tt.ts || !bytes.HasPrefix(rest, []byte(tt.tag)) {
				t.Errorf("parse(%q) = %d, %d, %q, %v; want %d, %d, %q…, true", msg, seq, ts, rest, ok, tt.seq, tt.ts, tt.tag)
			}
		})
	}
	for _, s := range []string{"", "~", "~~", "~1~", "~x~2~", "~1~x~", `{"message": "Forbidden"}`} {
		if _, _, _, ok := loadgen.ParsePayloadForTest([]byte(s)); ok {
			t.Errorf("parse(%q) ok, want no payload", s)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h loadgen.HistogramForTest
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile(0.5) = %v, want 0", got)
	}
	// 1µs, 2µs, … 10000µs: the q quantile is q×10ms, within 1/64.
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
		want := time.Duration(q * 10000 * float64(time.Microsecond))
		got := h.Quantile(q)
		if diff := got - want; diff < -want/64 || diff > want/64 {
			t.Errorf("Quantile(%v) = %v, want %v within 1/64", q, got, want)
		}
	}
	if got := h.Quantile(1); got > 10*time.Millisecond {
		t.Errorf("Quantile(1) = %v, want at most the maximum, 10ms", got)
	}
}

// Given several --url, fanout spreads its subscribers over them in turn and
// sends through the first: against two gateways that share nothing, the
// subscribers of the second get none of the broadcasts, and the run says so.
func TestFanoutSpreadsOverURLs(t *testing.T) {
	t.Parallel()
	first := servertest.StartYAML(t, benchConfig)
	second := servertest.StartYAML(t, benchConfig)
	r, err := bench(t, "fanout", "--url", first.WS+","+second.WS, "--subscribers", "6", "--messages", "15", "--settle", "500ms")
	if err == nil || !strings.Contains(err.Error(), "45 deliveries lost") {
		t.Errorf("fanout over two unrelated gateways: err = %v, want 45 deliveries lost", err)
	}
	if r.Subscribed != 6 || r.Deliveries != 45 || r.Lost != 45 {
		t.Errorf("subscribed=%d deliveries=%d lost=%d, want 6 subscribed, 45 delivered and 45 lost (3 subscribers on each)",
			r.Subscribed, r.Deliveries, r.Lost)
	}
	if want := []string{first.WS, second.WS}; !slices.Equal(r.URLs, want) || r.URL != first.WS {
		t.Errorf("url=%q urls=%q, want %q and %q", r.URL, r.URLs, first.WS, want)
	}
}

// Given several --pid, every one is read (their CPU times summed) and they
// are echoed in the line.
func TestServerCPUSummed(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig)
	pid := strconv.Itoa(os.Getpid())
	r := mustBench(t, "fanout", "--url", srv.WS, "--subscribers", "20", "--messages", "200", "--pid", pid+","+pid)
	if r.ServerCPU == nil || *r.ServerCPU <= 0 || r.ServerCPUPerDelivery == nil {
		t.Errorf("server_cpu_s = %v, per delivery %v, want both", deref(r.ServerCPU), deref(r.ServerCPUPerDelivery))
	}
	if want := []int{os.Getpid(), os.Getpid()}; !slices.Equal(r.PIDs, want) {
		t.Errorf("pids = %v, want %v", r.PIDs, want)
	}
}

// With --any-order, echo counts each answer once in whatever order a
// concurrent route sends them; without it, an answer out of order fails
// the run. The route's server answers message 0 only once the gateway has
// queued message 1's answer, so that the answers come back reversed.
func TestEchoAnyOrder(t *testing.T) {
	t.Parallel()
	var srv *servertest.Running
	var mu sync.Mutex
	var queuedBefore int64 // the gateway's frames out when the run began
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := io.ReadAll(r.Body)
		var e struct {
			Body string `json:"body"`
		}
		_ = json.Unmarshal(event, &e)
		if seq, _, _, _ := loadgen.ParsePayloadForTest([]byte(e.Body)); seq == 0 {
			mu.Lock()
			before := queuedBefore
			mu.Unlock()
			deadline := time.Now().Add(10 * time.Second) // a bound, should message 1 never be answered
			for srv.Gateway().Stats().MessagesOut <= before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		b, _ := json.Marshal(map[string]any{"statusCode": 200, "body": e.Body})
		_, _ = w.Write(b)
	}))
	t.Cleanup(backend.Close)
	srv = servertest.StartYAML(t, `
ordering: concurrent
routes:
  $default: {integration: {type: http, url: "`+backend.URL+`"}, routeResponse: true}
limits: {messageRate: unlimited}
`)
	begin := func() {
		mu.Lock()
		queuedBefore = srv.Gateway().Stats().MessagesOut
		mu.Unlock()
	}
	begin()
	r, err := bench(t, "echo", "--url", srv.WS, "-c", "1", "-m", "2", "--window", "2")
	if err == nil || r.Unexpected == 0 {
		t.Errorf("echo without --any-order: err = %v, unexpected = %d; want the answer out of order reported", err, r.Unexpected)
	}
	begin()
	r = mustBench(t, "echo", "--url", srv.WS, "-c", "1", "-m", "2", "--window", "2", "--any-order")
	if r.Received != 2 || r.Unexpected != 0 || r.Lost != 0 {
		t.Errorf("echo --any-order: received=%d unexpected=%d lost=%d, want both answers received", r.Received, r.Unexpected, r.Lost)
	}
}

// TestFanoutViaJetStream: --via jetstream publishes the messages as events
// to a subject of the gateway's embedded NATS server, whose consumer reads
// them into the topic: every subscriber receives each once.
func TestFanoutViaJetStream(t *testing.T) {
	t.Parallel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	srv := servertest.StartYAML(t, benchConfig+fmt.Sprintf(`
cluster: {url: embedded, embedded: {listen: %q}}
consumers:
  - name: bench
    nats: {stream: BENCH, subjects: [switchboard.bench]}
    topic: $.topic
    data: $.data
`, addr))
	r := mustBench(t, "fanout", "--url", srv.WS, "--subscribers", "6", "--messages", "50", "--size", "80",
		"--via", "jetstream", "--nats-url", "nats://"+addr, "--subject", "switchboard.bench", "--topic", "t")
	if r.Subscribed != 6 || r.Published != 50 || r.Deliveries != 300 || r.Lost != 0 || r.Duplicated != 0 || r.Unexpected != 0 {
		t.Errorf("subscribed=%d published=%d deliveries=%d lost=%d duplicated=%d unexpected=%d, want 6, 50, 300 and none lost or duplicated",
			r.Subscribed, r.Published, r.Deliveries, r.Lost, r.Duplicated, r.Unexpected)
	}
	r.Latency.check(t, "latency_ms", 300)
}

// putEventsRule is a rule that reaches the bench's topic, with the
// target given.
const putEventsRule = `
events:
  rules:
    - name: bench
      pattern: {source: [switchboard.bench]}
      targets: [%s]
`

// TestFanoutViaPutEvents: --via putevents sends the messages as
// EventBridge events, which a rule's topic target publishes: every
// subscriber receives each once.
func TestFanoutViaPutEvents(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, benchConfig+fmt.Sprintf(putEventsRule, `{topic: $.detail.topic, data: $.detail.data}`))
	r := mustBench(t, "fanout", "--url", srv.WS, "--subscribers", "6", "--messages", "50", "--size", "80",
		"--via", "putevents", "--topic", "t")
	if r.Subscribed != 6 || r.Published != 50 || r.Deliveries != 300 || r.Lost != 0 || r.Duplicated != 0 || r.Unexpected != 0 {
		t.Errorf("subscribed=%d published=%d deliveries=%d lost=%d duplicated=%d unexpected=%d, want 6, 50, 300 and none lost or duplicated",
			r.Subscribed, r.Published, r.Deliveries, r.Lost, r.Duplicated, r.Unexpected)
	}
	r.Latency.check(t, "latency_ms", 300)
	// An event no rule takes is answered, and reaches no one: every
	// delivery is lost, and the run fails.
	srv = servertest.StartYAML(t, benchConfig)
	r, err := bench(t, "fanout", "--url", srv.WS, "--subscribers", "2", "--messages", "3", "--via", "putevents", "--topic", "t", "--settle", "200ms")
	if err == nil || r.Published != 3 || r.Lost != 6 {
		t.Errorf("with no rule: err=%v published=%d lost=%d, want a failed run, 3 published and 6 lost", err, r.Published, r.Lost)
	}
}

// TestFanoutViaPutEventsQueue: the events go through a rule into a queue
// whose trigger runs a Node function that publishes each to the topic.
func TestFanoutViaPutEventsQueue(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	code := `exports.handler = async (event) => {
  const failed = [];
  await Promise.all(event.Records.map(async (r) => {
    const { topic, data } = JSON.parse(r.body).detail;
    const res = await fetch(process.env.APIG_ENDPOINT + "/@topics/" + encodeURIComponent(topic), { method: "POST", body: data });
    await res.arrayBuffer();
    if (!res.ok) failed.push({ itemIdentifier: r.messageId });
  }));
  return { batchItemFailures: failed };
};`
	if err := os.WriteFile(filepath.Join(dir, "publish.js"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := servertest.StartYAML(t, benchConfig+fmt.Sprintf(`
functions:
  publish: {runtime: nodejs20.x, handler: publish.handler, codeDir: %q, maxProcesses: 2}
queues:
  - name: bench
    triggers: [{function: publish, reportBatchItemFailures: true}]
`, dir)+fmt.Sprintf(putEventsRule, `{queue: bench}`))
	r := mustBench(t, "fanout", "--url", srv.WS, "--subscribers", "6", "--messages", "50", "--size", "80",
		"--via", "putevents", "--topic", "t")
	if r.Subscribed != 6 || r.Published != 50 || r.Deliveries != 300 || r.Lost != 0 || r.Duplicated != 0 || r.Unexpected != 0 {
		t.Errorf("subscribed=%d published=%d deliveries=%d lost=%d duplicated=%d unexpected=%d, want 6, 50, 300 and none lost or duplicated",
			r.Subscribed, r.Published, r.Deliveries, r.Lost, r.Duplicated, r.Unexpected)
	}
	r.Latency.check(t, "latency_ms", 300)
}
