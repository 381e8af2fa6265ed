package lambdahost_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// newNodeHost hosts handler from testdata/nodefunc, skipping the test
// where node is not installed.
func newNodeHost(tb testing.TB, handler string, opts lambdahost.Options) *host {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		tb.Skip("node is not on PATH")
	}
	if opts.Name == "" {
		opts.Name = "nodefunc"
	}
	opts.Runtime = "nodejs20.x"
	opts.Handler = handler
	opts.CodeDir = "testdata/nodefunc"
	return newHost(tb, opts)
}

func TestNodeHandlers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, handler, event string
		want                 string // JSON, compared as values
	}{
		{"async", "handler.echo", `{"action":"sendMessage","data":"Hello World!"}`, `{"action":"sendMessage","data":"Hello World!"}`},
		{"async string", "handler.echo", `"hello"`, `"hello"`},
		{"async undefined is null", "handler.echo", `null`, `null`},
		{"nested export", "handler.nested.deep", `{}`, `"deep"`},
		{"ES module", "esm.handler", `{"n":1}`, `{"esm":true,"event":{"n":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newNodeHost(t, tt.handler, lambdahost.Options{})
			got := h.mustInvoke(t, tt.event)
			if !jsonEqual(t, got, tt.want) {
				t.Errorf("InvokeRaw(%s) with %s = %s, want %s", tt.event, tt.handler, got, tt.want)
			}
		})
	}
}

func jsonEqual(tb testing.TB, a, b string) bool {
	tb.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		tb.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		tb.Fatalf("%s: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

func TestNodeCallbackAndContext(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.callback", lambdahost.Options{Name: "cbfunc", Timeout: 10 * time.Second})
	out := h.mustInvoke(t, `{"x":1}`)
	var got struct {
		Event        map[string]int
		RequestID    string
		FunctionName string
		RemainingMs  int64
		Waits        bool
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("InvokeRaw = %s: %v", out, err)
	}
	if got.Event["x"] != 1 {
		t.Errorf("event = %v, want {x: 1}", got.Event)
	}
	if !uuidRE.MatchString(got.RequestID) {
		t.Errorf("context.awsRequestId = %q, want a UUID", got.RequestID)
	}
	if got.FunctionName != "cbfunc" {
		t.Errorf("context.functionName = %q, want cbfunc", got.FunctionName)
	}
	if got.RemainingMs <= 0 || got.RemainingMs > 10000 {
		t.Errorf("context.getRemainingTimeInMillis() = %d, want in (0, 10000]", got.RemainingMs)
	}
	if !got.Waits {
		t.Errorf("context.callbackWaitsForEmptyEventLoop = false, want true")
	}
}

func TestNodeFunctionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, handler string
		want          lambdahost.FunctionError
	}{
		{"thrown", "handler.throws", lambdahost.FunctionError{Type: "TypeError", Message: "bad input"}},
		{"callback", "handler.callbackError", lambdahost.FunctionError{Type: "RangeError", Message: "callback failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newNodeHost(t, tt.handler, lambdahost.Options{MaxProcs: 1})
			for i := range 2 { // the process survives its handler's errors
				_, err := h.invoke(t, `{}`)
				var fe *lambdahost.FunctionError
				if !errors.As(err, &fe) {
					t.Fatalf("InvokeRaw #%d: err = %v, want a *FunctionError", i, err)
				}
				if *fe != tt.want {
					t.Errorf("InvokeRaw #%d: FunctionError = %+v, want %+v", i, *fe, tt.want)
				}
			}
			if strings.Count(h.log.String(), "cold start") != 1 {
				t.Errorf("want one cold start; log:\n%s", h.log)
			}
		})
	}
}

func TestNodeInitErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, handler, wantType, wantMessage string
	}{
		{"module throws", "broken.handler", "Error", "broken at load"},
		{"missing export", "handler.missing", "Runtime.HandlerNotFound", "handler.missing is undefined or not exported"},
		{"malformed name", "handler", "Runtime.MalformedHandlerName", "bad handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newNodeHost(t, tt.handler, lambdahost.Options{})
			_, err := h.invoke(t, `{}`)
			if !errors.Is(err, lambdahost.ErrInit) {
				t.Fatalf("InvokeRaw: err = %v, want ErrInit", err)
			}
			var fe *lambdahost.FunctionError
			if !errors.As(err, &fe) || fe.Type != tt.wantType || !strings.Contains(fe.Message, tt.wantMessage) {
				t.Errorf("InvokeRaw: err = %v, want a %s FunctionError containing %q", err, tt.wantType, tt.wantMessage)
			}
		})
	}
}

func TestNodeExitIsCrash(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.exit", lambdahost.Options{})
	for i := range 2 { // each time in a new process
		if _, err := h.invoke(t, `{}`); !errors.Is(err, lambdahost.ErrCrashed) {
			t.Fatalf("InvokeRaw #%d: err = %v, want ErrCrashed", i, err)
		}
	}
}

func TestNodeTimeout(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.sleep", lambdahost.Options{MaxProcs: 1, Timeout: 2 * time.Second})
	stuck := h.pid(t, `{"ms":1}`)
	if _, err := h.invoke(t, `{"ms":20000}`); !errors.Is(err, lambdahost.ErrTimeout) {
		t.Fatalf("InvokeRaw(20s): err = %v, want ErrTimeout", err)
	}
	if got := h.pid(t, `{"ms":1}`); got == stuck {
		t.Errorf("after a timeout the function ran in the stuck process %d, want a new one", stuck)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return !alive(stuck) },
		"the stuck process %d is killed", stuck)
}

func TestNodeConcurrentInvocations(t *testing.T) {
	t.Parallel()
	const maxProcs, calls = 2, 6
	h := newNodeHost(t, "handler.sleep", lambdahost.Options{MaxProcs: maxProcs})
	var wg sync.WaitGroup
	outs := make([]string, calls)
	errs := make([]error, calls)
	for i := range calls {
		wg.Go(func() { outs[i], errs[i] = h.invoke(t, `{"ms":100}`) })
	}
	wg.Wait()
	distinct := make(map[int]bool)
	for i := range calls {
		var r struct{ PID int }
		if errs[i] == nil {
			errs[i] = json.Unmarshal([]byte(outs[i]), &r)
		}
		if errs[i] != nil {
			t.Errorf("invocation %d: %v", i, errs[i])
		}
		distinct[r.PID] = true
	}
	if len(distinct) > maxProcs {
		t.Errorf("%d invocations ran in %d processes, want at most %d", calls, len(distinct), maxProcs)
	}
}

func TestNodeEnvironmentAndOutput(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.env", lambdahost.Options{Name: "nodeenv", Env: map[string]string{"APIG_ENDPOINT": "http://127.0.0.1:9"}})
	var got struct{ Env map[string]string }
	if err := json.Unmarshal([]byte(h.mustInvoke(t, `{}`)), &got); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("testdata/nodefunc")
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "nodeenv",
		"LAMBDA_TASK_ROOT":         root,
		"_HANDLER":                 "handler.env",
		"APIG_ENDPOINT":            "http://127.0.0.1:9",
		"AWS_EXECUTION_ENV":        "AWS_Lambda_nodejs20.x",
	}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, got.Env[k], v)
		}
	}

	logger := newNodeHost(t, "handler.log", lambdahost.Options{Name: "nodelog"})
	if out := logger.mustInvoke(t, `{"msg":"hi from node"}`); out != `"logged"` {
		t.Errorf("InvokeRaw(log) = %s, want \"logged\"", out)
	}
	for _, want := range []string{"[nodelog] hi from node\n", "[nodelog] hi from node (stderr)\n"} {
		testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logger.out.String(), want) },
			"output has %q; output:\n%s", want, logger.out)
	}
}

func TestNodeInvokeProxyResponse(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.proxy", lambdahost.Options{})
	req := &integration.Request{
		RouteKey:  "sendMessage",
		EventType: apigw.EventMessage,
		RequestID: "req-1",
		Time:      time.Now(),
		Conn:      &integration.Conn{ID: "conn-1", ConnectedAt: time.Now()},
		Body:      []byte("ping"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := h.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if resp.StatusCode != 200 || string(resp.Body) != "got ping" || resp.Headers["X-Route"] != "sendMessage" {
		t.Errorf("Invoke = %d %v %q, want 200, X-Route sendMessage, \"got ping\"", resp.StatusCode, resp.Headers, resp.Body)
	}
}

// A cold start is bounded by InitTimeout and does not eat into Timeout, as on
// AWS, where the init phase has a limit of its own.
func TestColdStartHasItsOwnLimit(t *testing.T) {
	t.Parallel()
	t.Run("within InitTimeout", func(t *testing.T) {
		t.Parallel()
		// The module loads for 6 s, longer than the 5 s Timeout: only an
		// invocation whose clock starts after the start-up can succeed, and a
		// loaded machine still has 5 s to answer an event that takes none.
		h := newNodeHost(t, "slowstart.handler", lambdahost.Options{Timeout: 5 * time.Second, InitTimeout: 60 * time.Second})
		var out struct {
			LoadedInMs int `json:"loadedInMs"`
		}
		if err := json.Unmarshal([]byte(h.mustInvoke(t, `{}`)), &out); err != nil || out.LoadedInMs < 6000 {
			t.Errorf("answer %+v, %v: want a module that took 6 s to load, within the 5 s Timeout", out, err)
		}
	})
	t.Run("past InitTimeout", func(t *testing.T) {
		t.Parallel()
		h := newNodeHost(t, "slowstart.handler", lambdahost.Options{Timeout: 20 * time.Second, InitTimeout: 300 * time.Millisecond})
		if _, err := h.invoke(t, `{}`); !errors.Is(err, lambdahost.ErrInit) {
			t.Errorf("err = %v, want ErrInit when the start-up outlasts InitTimeout", err)
		}
	})
}

// An event that arrives in many reads of the bootstrap's socket is put
// together whole, the second time to a process frozen between invocations.
func TestNodeLargeEvent(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.echo", lambdahost.Options{MaxProcs: 1})
	event := `{"pad":"` + strings.Repeat("é", 1<<20) + `"}`
	for i := range 2 {
		if got, err := h.invoke(t, event); err != nil || got != event {
			t.Errorf("InvokeRaw #%d (%d bytes) = %d bytes, %v; want the event back", i, len(event), len(got), err)
		}
	}
}
