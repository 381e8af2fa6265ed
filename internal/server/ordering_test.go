package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// sleeper is a Node function that sleeps as long as a message asks and
// answers with its own clock's start and end of the invocation.
const sleeper = `exports.work = async (event) => {
  const { seq, ms } = JSON.parse(event.body);
  const start = Date.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { statusCode: 200, body: JSON.stringify({ seq, start, end: Date.now(), pid: process.pid }) };
};
`

// run is one invocation as the function recorded it, in milliseconds of its clock.
type run struct {
	Seq   int   `json:"seq"`
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	PID   int   `json:"pid"`
}

// startSleeper serves the sleeper behind the route "work" with the given
// route settings, function processes and top-level settings.
func startSleeper(t *testing.T, routeExtra string, procs int, top string) *servertest.Running {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(sleeper), 0o600); err != nil {
		t.Fatal(err)
	}
	return servertest.Start(t, loadYAML(t, dir, fmt.Sprintf(`
functions:
  f: {runtime: nodejs20.x, handler: handler.work, codeDir: ., maxProcesses: %d, initTimeout: 60s}
routes:
  work: {integration: {type: lambda, function: f}, routeResponse: true%s}
limits: {messageRate: unlimited}
%s`, procs, routeExtra, top)))
}

// burst sends n messages on c at once, each asking for ms of sleep, and
// returns the function's runs in the order their answers arrived.
func burst(t *testing.T, c *websocket.Conn, n, ms int) []run {
	t.Helper()
	for i := range n {
		testutil.Write(t, c, fmt.Sprintf(`{"action":"work","seq":%d,"ms":%d}`, i, ms))
	}
	runs := make([]run, 0, n)
	for range n {
		_, s := testutil.Read(t, c, 2*time.Minute)
		var r run
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatalf("answer %d: %q: %v", len(runs), s, err)
		}
		runs = append(runs, r)
	}
	return runs
}

// mostAtOnce is the most runs that were under way at one instant.
func mostAtOnce(runs []run) int {
	most := 0
	for _, a := range runs {
		n := 0
		for _, b := range runs {
			if b.Start <= a.Start && a.Start < b.End {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// Fifty messages of one connection through a concurrent route run at
// once, as API Gateway would invoke the function for each: every one
// started, by the function's own clock, before the first one ended. (A
// connection starts at most maxMessagesInFlight, 32 by default: this one
// may start 64.)
func TestConcurrentRouteRunsANodeFunctionForEachMessage(t *testing.T) {
	t.Parallel()
	const n = 50
	srv := startSleeper(t, ", ordering: concurrent", n, "maxMessagesInFlight: 64\n")
	if o := srv.Gateway().OptionsForTest(); o.Routes["work"].Ordering != gateway.Concurrent {
		t.Fatalf("route ordering %v, want concurrent", o.Routes["work"].Ordering)
	}
	c := testutil.Dial(t, srv.WS, nil)
	// The first burst starts the processes (cold starts spread over time);
	// the second finds them warm.
	burst(t, c, n, 1)
	runs := burst(t, c, n, 2000)
	seen := map[int]bool{}
	var lastStart, firstEnd int64 = 0, runs[0].End
	for _, r := range runs {
		seen[r.Seq] = true
		lastStart, firstEnd = max(lastStart, r.Start), min(firstEnd, r.End)
	}
	if len(seen) != n {
		t.Fatalf("%d different messages answered, want %d", len(seen), n)
	}
	if lastStart >= firstEnd {
		t.Errorf("the last invocation started at %d, after the first ended at %d: they did not all run at once (at most %d did)", lastStart, firstEnd, mostAtOnce(runs))
	}
}

// The same messages through an ordered route (the default) run one after
// another: each started after the previous one ended, in the order sent,
// although the function could run fifty at once.
func TestOrderedRouteRunsANodeFunctionInOrder(t *testing.T) {
	t.Parallel()
	const n = 50
	srv := startSleeper(t, "", n, "")
	c := testutil.Dial(t, srv.WS, nil)
	runs := burst(t, c, n, 20)
	for i, r := range runs {
		if r.Seq != i {
			t.Fatalf("answer %d is message %d's, want them in the order sent", i, r.Seq)
		}
		if i > 0 && r.Start < runs[i-1].End {
			t.Errorf("message %d started at %d, before message %d ended at %d", i, r.Start, i-1, runs[i-1].End)
		}
	}
}

// A connection's concurrent messages beyond the function's processes wait
// for one to be free, then run: all are answered, never more at once than
// the function's processes.
func TestConcurrentMessagesBeyondTheFunctionsProcessesWait(t *testing.T) {
	t.Parallel()
	const n, procs = 9, 3
	srv := startSleeper(t, ", ordering: concurrent", procs, "")
	c := testutil.Dial(t, srv.WS, nil)
	runs := burst(t, c, n, 300)
	seen, pids := map[int]bool{}, map[int]bool{}
	for _, r := range runs {
		seen[r.Seq], pids[r.PID] = true, true
	}
	if len(seen) != n {
		t.Errorf("%d different messages answered, want %d", len(seen), n)
	}
	if len(pids) > procs {
		t.Errorf("%d processes ran the function, want at most %d", len(pids), procs)
	}
	if got := mostAtOnce(runs); got != procs {
		t.Errorf("at most %d invocations ran at once, want %d (the function's processes)", got, procs)
	}
}

// ordering and maxMessagesInFlight reach the gateway; absent, it applies
// its defaults.
func TestOrderingSettingsReachTheGateway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml   string
		wantOrdering gateway.Ordering
		wantRoute    gateway.Ordering
		wantInFlight int
	}{
		{"absent", "routes: {$default: {integration: {type: echo}}}\n", gateway.Ordered, gateway.OrderingDefault, gateway.DefaultInboxSize},
		{"set", "ordering: concurrent\nmaxMessagesInFlight: 64\nroutes: {$default: {integration: {type: echo}, ordering: ordered}}\n", gateway.Concurrent, gateway.Ordered, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := servertest.StartYAML(t, tt.yaml).Gateway().OptionsForTest()
			if o.Ordering != tt.wantOrdering || o.Routes["$default"].Ordering != tt.wantRoute || o.InboxSize != tt.wantInFlight {
				t.Errorf("ordering %v, route's %v, in flight %d; want %v, %v, %d",
					o.Ordering, o.Routes["$default"].Ordering, o.InboxSize, tt.wantOrdering, tt.wantRoute, tt.wantInFlight)
			}
		})
	}
}

// README's example of ordering loads and does what its comments say.
func TestReadmeOrderingExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "#### Ordered or concurrent")
	_, block, ok2 := strings.Cut(after, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no YAML block under \"Ordered or concurrent\"")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(sleeper), 0o600); err != nil {
		t.Fatal(err)
	}
	// The function it names, which the example leaves out.
	cfg := loadYAML(t, dir, block+"functions:\n  chat: {runtime: nodejs20.x, handler: handler.work, codeDir: .}\n")
	o := servertest.Start(t, cfg).Gateway().OptionsForTest()
	if o.Ordering != gateway.Ordered || o.InboxSize != gateway.DefaultInboxSize || o.Routes["sendMessage"].Ordering != gateway.Concurrent {
		t.Errorf("ordering %v, in flight %d, sendMessage's ordering %v; want ordered, %d, concurrent",
			o.Ordering, o.InboxSize, o.Routes["sendMessage"].Ordering, gateway.DefaultInboxSize)
	}
}
