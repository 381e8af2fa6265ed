package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/loadgen"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The server command of TestStart: the test binary run with startServerEnv
// set to an address waits startDelay, then serves WebSocket there and
// answers every message with itself, the first one firstDelay late (as a
// function's cold start), until it is signalled.
const (
	startServerEnv = "LOADGEN_TEST_START_SERVER"
	startDelay     = 300 * time.Millisecond
	firstDelay     = 200 * time.Millisecond
)

func serveSlowly(addr string) int {
	time.Sleep(startDelay)
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			once.Do(func() { time.Sleep(firstDelay) })
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	})
	if err := http.ListenAndServe(addr, h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type startResult struct {
	Command  []string `json:"command"`
	Attempts int      `json:"attempts"`
	ReadyMs  float64  `json:"ready_ms"`
	FirstMs  float64  `json:"first_message_ms"`
	AnswerMs float64  `json:"first_answer_ms"`
	WarmMs   float64  `json:"warm_message_ms"`
	Exited   string   `json:"exited"`
	Stopped  string   `json:"stop_error"`
}

// TestStart: bench start runs a server command, measures the time until
// its first handshake and its first and warm answers, and stops it.
func TestStart(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := testutil.ClosedAddr(t)
	var r startResult
	if err := benchInto(t, &r, "start", "--url", "ws://"+addr, "--message", "ping-42", "--expect", "ping-42", "--repeat", "5",
		"--", "env", startServerEnv+"="+addr, exe); err != nil {
		t.Fatalf("bench start: %v", err)
	}
	if r.Attempts < 2 {
		t.Errorf("attempts = %d, want several: the server listens only after %v", r.Attempts, startDelay)
	}
	if r.ReadyMs < float64(startDelay.Milliseconds()) {
		t.Errorf("ready_ms = %v, want at least the server's %v start", r.ReadyMs, startDelay)
	}
	if r.FirstMs < float64(firstDelay.Milliseconds()) {
		t.Errorf("first_message_ms = %v, want at least the first answer's %v delay", r.FirstMs, firstDelay)
	}
	if want := r.ReadyMs + r.FirstMs; r.AnswerMs < want-0.01 || r.AnswerMs > want+0.01 {
		t.Errorf("first_answer_ms = %v, want ready_ms + first_message_ms = %v", r.AnswerMs, want)
	}
	if r.WarmMs <= 0 {
		t.Errorf("warm_message_ms = %v, want the median of 5 round trips", r.WarmMs)
	}
	if r.Exited != "" || r.Stopped != "" {
		t.Errorf("exited %q, stop_error %q: want a server that served, then ended on SIGTERM", r.Exited, r.Stopped)
	}
	// The command was stopped: nothing listens there any more.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, _, err := websocket.Dial(ctx, "ws://"+addr, nil); err == nil {
		c.CloseNow()
		t.Errorf("the server still answers after bench start returned")
	}
}

// TestStartCommandEnds: a command that ends before it serves is reported
// with its exit status, and the run fails.
func TestStartCommandEnds(t *testing.T) {
	t.Parallel()
	var r startResult
	err := benchInto(t, &r, "start", "--url", "ws://"+testutil.ClosedAddr(t), "--", "sh", "-c", "exit 3")
	if err == nil {
		t.Fatal("bench start of a command that exits at once succeeded")
	}
	if r.Exited != "exit status 3" || r.ReadyMs != 0 {
		t.Errorf("exited %q, ready_ms %v; want exit status 3 and no readiness", r.Exited, r.ReadyMs)
	}
	if !strings.Contains(err.Error(), "the command ended before a handshake succeeded: exit status 3") {
		t.Errorf("error %q, want it to say the command ended and how", err)
	}
}

// benchInto runs `switchboard bench args...`, parses its one result line
// into v and returns its error.
func benchInto(t *testing.T, v any, args ...string) error {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := loadgen.Main(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
	t.Logf("bench %s: err=%v\nstdout: %s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	line := strings.TrimSuffix(stdout.String(), "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Fatalf("bench %s: stdout = %q, want one JSON line", strings.Join(args, " "), stdout.String())
	}
	if err := json.Unmarshal([]byte(line), v); err != nil {
		t.Fatalf("bench %s: result %q: %v", strings.Join(args, " "), line, err)
	}
	return err
}
